/**
 * The OPC UA server's pure parts: option checks (what a plant must not run with), the coalescing
 * of per-frame updates, the password check, and that importing the module leaves node-opcua unloaded.
 */
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { PendingCameraValues } from '../src/opcua/camera-values.js';
import { passwordChecker } from '../src/opcua/security.js';
import { OpcUaServer, OpcUaOptionsError, isLoopbackHost, resolveOpcUaOptions, type OpcUaServerOptions } from '../src/opcua/index.js';

const base: OpcUaServerOptions = { security: 'None', dataDir: '/tmp/cw', onAcknowledge: () => {}, onStartRun: () => {}, onEndRun: () => {} };

describe('OPC UA options', () => {
  it('defaults to 127.0.0.1:4840, 64 cameras, no users', () => {
    expect(resolveOpcUaOptions(base)).toMatchObject({ host: '127.0.0.1', port: 4840, maxCameras: 64, users: [] });
  });

  it('refuses security None on a host other machines can reach, and says what to do', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'scada-gw.plant.example']) {
      expect(() => new OpcUaServer({ ...base, host })).toThrow(OpcUaOptionsError);
      expect(() => resolveOpcUaOptions({ ...base, host })).toThrow(new RegExp(`got host "${host.replace(/\./g, '\\.')}".*SignAndEncrypt`));
    }
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', '[::1]', 'localhost']) expect(() => resolveOpcUaOptions({ ...base, host })).not.toThrow();
    expect(resolveOpcUaOptions({ ...base, host: '0.0.0.0', security: 'SignAndEncrypt' }).host).toBe('0.0.0.0');
  });

  it('knows loopback hosts', () => {
    expect(['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1', 'LOCALHOST'].map(isLoopbackHost)).toEqual([true, true, true, true, true]);
    expect(['0.0.0.0', '::', '192.168.1.10', '128.0.0.1', 'localhost.example.com'].map(isLoopbackHost)).toEqual([false, false, false, false, false]);
  });

  it('refuses bad ports, camera limits, security modes, users and missing hooks, naming the value', () => {
    expect(() => resolveOpcUaOptions({ ...base, port: 70000 })).toThrow(/port must be an integer 0–65535.*70000/);
    expect(() => resolveOpcUaOptions({ ...base, maxCameras: 0 })).toThrow(/maxCameras must be an integer ≥ 1, got 0/);
    expect(() => resolveOpcUaOptions({ ...base, security: 'Sign' as never })).toThrow(/None, SignAndEncrypt, got "Sign"/);
    expect(() => resolveOpcUaOptions({ ...base, dataDir: '' })).toThrow(/dataDir is required/);
    expect(() => resolveOpcUaOptions({ ...base, users: [{ username: 'op', password: 'short' }] })).toThrow(/users\[0\] \("op"\): password must be at least 8/);
    expect(() => resolveOpcUaOptions({ ...base, users: [{ username: ' ', password: 'long-enough' }] })).toThrow(/users\[0\]\.username/);
    expect(() =>
      resolveOpcUaOptions({
        ...base,
        users: [
          { username: 'op', password: 'long-enough' },
          { username: 'op', password: 'other-pass' },
        ],
      }),
    ).toThrow(/"op" is listed twice/);
    expect(() => resolveOpcUaOptions({ ...base, onAcknowledge: undefined as never })).toThrow(/onAcknowledge must be a function/);
  });
});

describe('OPC UA per-frame updates', () => {
  it('merge into one pending record per camera; take hands them over once', () => {
    const pending = new PendingCameraValues(8);
    expect(pending.admit('cam-1')).toBe('added');
    for (let i = 1; i <= 100; i++) pending.merge('cam-1', { pPG: i / 100, predicted: i > 50 ? 'pg' : 'cex' });
    pending.merge('cam-1', { framesPerSecond: 4, pPG: undefined });
    expect(pending.admit('cam-1')).toBe('known');
    expect([...pending.take()]).toEqual([['cam-1', { pPG: 1, predicted: 'pg', framesPerSecond: 4 }]]);
    expect(pending.hasPending).toBe(false);
    expect(pending.take().size).toBe(0);
  });

  it('admit at most maxCameras cameras and refuse invalid ids', () => {
    const pending = new PendingCameraValues(2);
    expect(['a', 'b', 'c', 'a'].map((camera) => pending.admit(camera))).toEqual(['added', 'added', 'full', 'known']);
    expect(pending.noteRefused('c')).toBe(true);
    expect(pending.noteRefused('c')).toBe(false);
    expect(() => pending.admit('../etc')).toThrow(/camera id "\.\.\/etc" must be/);
    expect(pending.cameras).toEqual(['a', 'b']);
  });
});

describe('OPC UA passwords', () => {
  it('accept exactly the configured user and password', () => {
    const check = passwordChecker([{ username: 'operator', password: 'crystal-batch-42' }]);
    expect(check('operator', 'crystal-batch-42')).toBe(true);
    expect(check('operator', 'crystal-batch-43')).toBe(false);
    expect(check('operator', '')).toBe(false);
    expect(check('Operator', 'crystal-batch-42')).toBe(false);
    expect(check('nobody', '')).toBe(false);
  });
});

describe('OPC UA loading', () => {
  it('does not load node-opcua until a server starts', async () => {
    const require = createRequire(import.meta.url);
    const loaded = () => Object.keys(require.cache).some((path) => /node_modules[\\/]node-opcua/.test(path));
    new OpcUaServer(base).updateCamera('cam-1', { pPG: 0.1 });
    expect(loaded()).toBe(false);
    await import('node-opcua'); // the probe sees it once it is loaded
    expect(loaded()).toBe(true);
  });
});
