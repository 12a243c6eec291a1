/**
 * One writer per trail: two processes appending to one audit.jsonl would fork the chain.
 * The lock file holds the owner's pid; a lock left by a process that is gone (kill -9) is
 * taken over. (Same rule as the ingest ledger's lock.)
 */
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { processIsAlive } from '../config/process-alive.js';

export async function takeLock(lockPath: string, what: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return () => unlink(lockPath).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && processIsAlive(owner)) {
      const who = owner === process.pid ? 'this process (an AuditTrail already open on it)' : `process ${owner}`;
      throw new Error(`${what} is in use by ${who}; open one AuditTrail per data dir, or stop that process`);
    }
    await unlink(lockPath).catch(() => undefined); // stale: its owner is gone
  }
  throw new Error(`${what}: could not take ${lockPath}; remove it if no crystalwatch process is running`);
}
