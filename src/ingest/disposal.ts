/**
 * Where a camera's files go when ingest is done with them: rejected files to quarantine
 * (with `<name>.reason.json`, a metric and one warning line), ingested ones to the archive
 * or nowhere (`--after move|delete`), each with its sidecar.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../config/logger.js';
import type { CameraContext } from './context.js';
import { moveFile, moveIfExists, sidecarPathFor, unlinkIfExists, writeReason } from './files.js';
import type { RejectReason } from './image.js';

export class FolderDisposal {
  constructor(
    private readonly camera: string,
    private readonly watchDir: string,
    private readonly archiveDir: string,
    private readonly quarantineDir: string,
    private readonly ctx: Pick<CameraContext, 'after' | 'ledger' | 'metrics' | 'stats'>,
    private readonly log: Logger,
  ) {}

  /** Moves `rel` (and its sidecar) to quarantine and says why; a file gone meanwhile is no error. */
  async quarantine(rel: string, reason: RejectReason, detail: string): Promise<void> {
    const abs = join(this.watchDir, rel);
    let size: number | undefined;
    try {
      size = (await lstat(abs)).size;
    } catch {
      /* reported below */
    }
    try {
      const to = await moveFile(abs, join(this.quarantineDir, rel));
      await moveIfExists(sidecarPathFor(abs), sidecarPathFor(to));
      await writeReason(to, { reason, detail, camera: this.camera, source: abs, size, at: new Date().toISOString() });
      this.ctx.metrics.rejected.inc({ camera: this.camera, reason });
      this.ctx.stats.rejected += 1;
      this.log.warn({ file: rel, reason, detail, quarantine: to }, `frame rejected (${reason}): ${detail}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.error(
        { err, file: rel, reason, detail },
        `frame rejected (${reason}) but moving it to ${this.quarantineDir} failed; fix that folder's permissions`,
      );
    }
  }

  /** `--after`: only ever run once Kafka acknowledged the frame and the ledger says so. */
  async afterIngest(abs: string, rel: string, frameId: string): Promise<void> {
    try {
      if (this.ctx.after === 'move') {
        const to = await moveIfExists(abs, join(this.archiveDir, rel));
        if (to) await moveIfExists(sidecarPathFor(abs), sidecarPathFor(to));
      } else if (this.ctx.after === 'delete') {
        await unlinkIfExists(abs);
        await unlinkIfExists(sidecarPathFor(abs));
      }
      // The file left the folder: the ledger can drop its entry.
      if (this.ctx.after !== 'keep') await this.ctx.ledger.note([{ t: 'done', camera: this.camera, path: rel }]).catch(() => undefined);
    } catch (err) {
      this.log.error({ err, file: rel, frameId }, `frame is in Kafka but --after ${this.ctx.after} failed; it stays in place and is not sent again`);
    }
  }
}
