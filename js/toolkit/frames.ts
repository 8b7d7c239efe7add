/**
 * Timing for the views: `FrameBatch` collects what changed between two animation frames and
 * draws it once per frame (markdown is re-parsed per render, and a stream sends many patches
 * a frame); `Ticker` repeats a callback while something runs (the elapsed time of a run).
 *
 * Both take their timer source as a parameter, so that tests can drive them with fake timers
 * or by hand.
 */

/** Calls a callback once, soon (at the next animation frame in a browser). */
export interface Scheduler {
  request(callback: () => void): unknown;
  cancel(handle: unknown): void;
}

/** Repeats a callback every `ms` milliseconds. */
export interface Clock {
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** The animation frames of `win`, or 16 ms timeouts where it has none (a test's DOM). */
export function animationFrames(win: Window | null | undefined): Scheduler {
  if (win?.requestAnimationFrame) {
    return {
      request: (callback) => win.requestAnimationFrame(() => callback()),
      cancel: (handle) => win.cancelAnimationFrame(handle as number),
    };
  }
  // Looked up at each call, not bound now: fake timers installed later still apply.
  return {
    request: (callback) => setTimeout(callback, 16),
    cancel: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}

/** The global setInterval (looked up at each call, for the same reason). */
export const intervals: Clock = {
  setInterval: (callback, ms) => setInterval(callback, ms),
  clearInterval: (handle) => clearInterval(handle as ReturnType<typeof setInterval>),
};

/**
 * What changed since the last frame, folded into one batch by `add` and drawn by `draw` at
 * the next frame: however many changes arrive in between, a frame draws once.
 */
export class FrameBatch<B> {
  private batch: B;
  private handle: unknown = null;

  constructor(
    private readonly empty: () => B,
    private readonly draw: (batch: B) => void,
    private readonly scheduler: Scheduler,
  ) {
    this.batch = empty();
  }

  /** Fold a change into the batch (`fold` mutates it) and ask for a frame. */
  add(fold: (batch: B) => void): void {
    fold(this.batch);
    if (this.handle !== null) return;
    this.handle = this.scheduler.request(() => this.flush());
  }

  /** Whether a frame is asked for and not drawn yet. */
  get pending(): boolean {
    return this.handle !== null;
  }

  /** Draw the batch now (a frame does this) and start the next one empty. */
  flush(): void {
    if (this.handle !== null) this.scheduler.cancel(this.handle);
    this.handle = null;
    const batch = this.batch;
    this.batch = this.empty();
    this.draw(batch);
  }

  /** Forget the batch and the frame asked for. */
  dispose(): void {
    if (this.handle !== null) this.scheduler.cancel(this.handle);
    this.handle = null;
    this.batch = this.empty();
  }
}

/** Calls `tick` every `period` ms while `run(true)` is in force. */
export class Ticker {
  private handle: unknown = null;

  constructor(
    private readonly tick: () => void,
    private readonly clock: Clock = intervals,
    private readonly period = 1000,
  ) {}

  get running(): boolean {
    return this.handle !== null;
  }

  /** Start ticking (when `on` and not ticking yet) or stop (when not `on`). */
  run(on: boolean): void {
    if (on && this.handle === null) {
      this.handle = this.clock.setInterval(this.tick, this.period);
    } else if (!on && this.handle !== null) {
      this.clock.clearInterval(this.handle);
      this.handle = null;
    }
  }

  dispose(): void {
    this.run(false);
  }
}
