/**
 * Explicit lifecycles (STYLE.md, after Fastify/undici): everything that holds a
 * resource is started in order and closed in reverse order, once, on SIGINT/SIGTERM
 * or when the caller asks.
 */
import type { Logger } from '../config/logger.js';

export interface Closeable {
  close(): Promise<void>;
}

export interface AddOptions {
  /**
   * Parts added one after the other with the same phase close together (concurrently), as one
   * step of the reverse order: consumers that need nothing from one another stop in parallel,
   * so a shutdown costs the slowest of them, not their sum.
   */
  phase?: string;
}

export class Lifecycle {
  private readonly parts: { name: string; part: Closeable; phase?: string }[] = [];
  private closing: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  /** Records a started part; it is closed before every part added earlier (except its own phase's). */
  add<T extends Closeable>(name: string, part: T, options: AddOptions = {}): T {
    this.parts.push({ name, part, phase: options.phase });
    return part;
  }

  /** Idempotent: closes every part in reverse order, logging (not throwing) failures. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const reversed = [...this.parts].reverse();
      while (reversed.length > 0) {
        const first = reversed.shift()!;
        const step = [first];
        while (first.phase !== undefined && reversed[0]?.phase === first.phase) step.push(reversed.shift()!);
        await Promise.all(step.map(({ name, part }) => this.closePart(name, part)));
      }
    })();
    return this.closing;
  }

  private async closePart(name: string, part: Closeable): Promise<void> {
    const started = Date.now();
    try {
      await part.close();
      this.logger.debug({ part: name, ms: Date.now() - started }, 'closed');
    } catch (err) {
      this.logger.error({ part: name, err }, `closing ${name} failed`);
    }
  }
}

/**
 * Closes the lifecycle on the first SIGINT/SIGTERM, and exits at once on a second
 * one (an operator pressing Ctrl-C twice means it). Returns a function that removes
 * the handlers.
 */
export function closeOnSignals(lifecycle: Lifecycle, logger: Logger, onClosed: () => void = () => {}): () => void {
  let signalled = false;
  const handler = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(130);
    }
    signalled = true;
    logger.info({ signal }, 'shutting down');
    void lifecycle.close().then(onClosed);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/**
 * Everything is closed: should a straggler (a socket, a library's timer) still hold the event loop
 * `afterMs` later, name it through `say` and exit anyway (docker stop and Kubernetes SIGKILL at
 * 10 s). The timer is unref'd: a process with nothing left exits without it.
 */
export function exitPastStragglers(say: (resources: string[]) => void, afterMs = 1000): void {
  setTimeout(() => {
    say(process.getActiveResourcesInfo());
    process.exit(process.exitCode ?? 0);
  }, afterMs).unref();
}
