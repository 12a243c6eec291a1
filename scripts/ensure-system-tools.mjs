#!/usr/bin/env node
// `npm test`'s pretest: make sure the system tools the tests drive are installed.
// As root on Debian, install what is missing with apt-get; otherwise say exactly what to install.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** tool → how to tell it is there, and the Debian package that brings it. */
const tools = [
  { name: 'kcat', check: () => onPath('kcat'), pkg: 'kcat' },
  { name: 'prometheus', check: () => onPath('prometheus'), pkg: 'prometheus' },
  { name: 'promtool', check: () => onPath('promtool'), pkg: 'prometheus' },
  { name: 'alertmanager', check: () => onPath('prometheus-alertmanager') || onPath('alertmanager'), pkg: 'prometheus-alertmanager' },
  { name: 'chromium', check: () => existsSync('/usr/bin/chromium'), pkg: 'chromium' },
  { name: 'python3 onnx', check: () => spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0, pkg: 'python3-onnx' },
  { name: 'docker-compose', check: () => onPath('docker-compose'), pkg: 'docker-compose' },
  { name: 'kubectl', check: () => onPath('kubectl'), pkg: 'kubectl' },
];

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

const missing = tools.filter((t) => !t.check());
if (missing.length === 0) process.exit(0);

const packages = [...new Set(missing.map((t) => t.pkg))];
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const isDebian = existsSync('/etc/debian_version') && onPath('apt-get');
const command = `apt-get update && apt-get install -y ${packages.join(' ')}`;

if (!isRoot || !isDebian) {
  console.error(`crystalwatch tests need: ${missing.map((t) => t.name).join(', ')}.`);
  console.error(
    isDebian
      ? `Install them with: sudo sh -c '${command}'`
      : `Install the Debian/Ubuntu packages ${packages.join(', ')} (or their equivalents) and run npm test again.`,
  );
  process.exit(1);
}

console.error(`pretest: installing ${packages.join(' ')} with apt-get (missing: ${missing.map((t) => t.name).join(', ')})`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
const still = tools.filter((t) => !t.check());
if (still.length > 0) {
  console.error(`pretest: still missing after apt-get: ${still.map((t) => t.name).join(', ')}`);
  process.exit(1);
}
