/** The shared stage lifecycle (src/config/stage-lifecycle.ts): start once, close once, close during start, work after close. */
import { describe, expect, it } from 'vitest';
import { StageClosedError, StageLifecycle } from '../src/config/stage-lifecycle.js';

/** A stage whose open() and shut() finish when the test says so, and which records what ran. */
class GatedStage extends StageLifecycle {
  readonly calls: string[] = [];
  openGate = deferred();
  shutGate = deferred();
  constructor(
    private readonly failOpen?: Error,
    startWaitMs?: number,
  ) {
    super({ stage: 'gated', startWaitMs });
  }
  protected async open(): Promise<void> {
    this.calls.push('open');
    await this.openGate.promise;
    if (this.failOpen) throw this.failOpen;
    this.calls.push('opened');
  }
  protected async shut(): Promise<void> {
    this.calls.push('shut');
    await this.shutGate.promise;
    this.calls.push('shut done');
  }
  protected override interrupt(): void {
    this.calls.push('interrupt');
  }
  work(): string {
    this.throwIfClosed('work()');
    return 'done';
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('StageLifecycle', () => {
  it("a second start() returns the first one's promise and open() runs once", async () => {
    const stage = new GatedStage();
    const first = stage.start();
    const second = stage.start();
    expect(second).toBe(first);
    stage.openGate.resolve();
    await first;
    await stage.start();
    expect(stage.calls).toEqual(['open', 'opened']);
    stage.shutGate.resolve();
    await stage.close();
  });

  it("a second close() returns the first one's promise: neither resolves before shut() has finished", async () => {
    const stage = new GatedStage();
    stage.openGate.resolve();
    await stage.start();
    const first = stage.close();
    const second = stage.close();
    expect(second).toBe(first);
    let settled = false;
    void second.then(() => {
      settled = true;
    });
    await new Promise<void>((r) => setImmediate(r));
    expect(stage.calls).toEqual(['open', 'opened', 'interrupt', 'shut']);
    expect(settled).toBe(false);
    stage.shutGate.resolve();
    await Promise.all([first, second]);
    expect(settled).toBe(true);
    expect(stage.calls).toEqual(['open', 'opened', 'interrupt', 'shut', 'shut done']);
  });

  it('close() during start() interrupts, waits for open() to settle, then shuts', async () => {
    const stage = new GatedStage();
    const starting = stage.start();
    const closing = stage.close();
    await new Promise<void>((r) => setImmediate(r));
    expect(stage.calls).toEqual(['open', 'interrupt']); // shut() waits for open()
    stage.shutGate.resolve();
    stage.openGate.resolve();
    await Promise.all([starting, closing]);
    expect(stage.calls).toEqual(['open', 'interrupt', 'opened', 'shut', 'shut done']);
  });

  it('close() during a start() that never settles lets go after startWaitMs', async () => {
    const stage = new GatedStage(undefined, 50);
    void stage.start();
    stage.shutGate.resolve();
    await stage.close();
    expect(stage.calls).toEqual(['open', 'interrupt', 'shut', 'shut done']);
  });

  it('a failed open() closes the stage and start() rejects with that error', async () => {
    const stage = new GatedStage(new Error('broker unreachable at 127.0.0.1:1'));
    stage.openGate.resolve();
    stage.shutGate.resolve();
    await expect(stage.start()).rejects.toThrow('broker unreachable at 127.0.0.1:1');
    expect(stage.calls).toEqual(['open', 'interrupt', 'shut', 'shut done']);
    expect(stage.closeRequested).toBe(true);
  });

  it('start() and guarded work after close() fail with StageClosedError naming the stage', async () => {
    const stage = new GatedStage();
    stage.shutGate.resolve();
    await stage.close();
    const error = await stage.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(StageClosedError);
    expect((error as StageClosedError).message).toBe('gated: start() after close(); a closed stage does nothing, create and start a new one');
    expect(() => stage.work()).toThrow(StageClosedError);
    expect(stage.calls).toEqual(['interrupt', 'shut', 'shut done']); // open() never ran
  });
});
