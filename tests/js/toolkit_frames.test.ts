import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { animationFrames, FrameBatch, Ticker, type Clock, type Scheduler } from "../../js/toolkit/frames";

/** A scheduler run by hand: `frame()` runs what was asked for. */
class ManualFrames implements Scheduler {
  callbacks = new Map<number, () => void>();
  requests = 0;
  cancelled: number[] = [];
  request(callback: () => void): number {
    this.requests += 1;
    this.callbacks.set(this.requests, callback);
    return this.requests;
  }
  cancel(handle: unknown): void {
    this.cancelled.push(handle as number);
    this.callbacks.delete(handle as number);
  }
  frame(): void {
    const due = [...this.callbacks.values()];
    this.callbacks.clear();
    for (const callback of due) callback();
  }
}

type Batch = { ids: string[] };

function batcher(scheduler: Scheduler): { frames: FrameBatch<Batch>; drawn: Batch[] } {
  const drawn: Batch[] = [];
  const frames = new FrameBatch<Batch>(() => ({ ids: [] }), (batch) => drawn.push(batch), scheduler);
  return { frames, drawn };
}

describe("FrameBatch", () => {
  it("draws everything added before a frame once, at the frame", () => {
    const scheduler = new ManualFrames();
    const { frames, drawn } = batcher(scheduler);
    for (const id of ["a", "b", "c"]) frames.add((batch) => batch.ids.push(id));
    expect(scheduler.requests).toBe(1);
    expect(frames.pending).toBe(true);
    expect(drawn).toEqual([]);
    scheduler.frame();
    expect(drawn).toEqual([{ ids: ["a", "b", "c"] }]);
    expect(frames.pending).toBe(false);
    // The next change asks for the next frame, with a fresh batch.
    frames.add((batch) => batch.ids.push("d"));
    expect(scheduler.requests).toBe(2);
    scheduler.frame();
    expect(drawn).toEqual([{ ids: ["a", "b", "c"] }, { ids: ["d"] }]);
  });

  it("draws at once on flush, and not again at the frame", () => {
    const scheduler = new ManualFrames();
    const { frames, drawn } = batcher(scheduler);
    frames.add((batch) => batch.ids.push("a"));
    frames.flush();
    expect(drawn).toEqual([{ ids: ["a"] }]);
    expect(scheduler.cancelled).toEqual([1]);
    scheduler.frame();
    expect(drawn).toHaveLength(1);
  });

  it("cancels its frame and drops its batch when disposed", () => {
    const scheduler = new ManualFrames();
    const { frames, drawn } = batcher(scheduler);
    frames.add((batch) => batch.ids.push("a"));
    frames.dispose();
    expect(scheduler.cancelled).toEqual([1]);
    scheduler.frame();
    frames.flush();
    expect(drawn).toEqual([{ ids: [] }]);
  });
});

describe("animationFrames", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("uses the window's animation frames", () => {
    const win = { requestAnimationFrame: vi.fn(() => 7), cancelAnimationFrame: vi.fn() };
    const scheduler = animationFrames(win as unknown as Window);
    const callback = vi.fn();
    const handle = scheduler.request(callback);
    expect(handle).toBe(7);
    (win.requestAnimationFrame.mock.calls[0] as unknown as [(time: number) => void])[0](0);
    expect(callback).toHaveBeenCalledTimes(1);
    scheduler.cancel(handle);
    expect(win.cancelAnimationFrame).toHaveBeenCalledWith(7);
  });

  it("falls back to 16 ms timeouts without a window", () => {
    const scheduler = animationFrames(null);
    const { frames, drawn } = batcher(scheduler);
    frames.add((batch) => batch.ids.push("a"));
    frames.add((batch) => batch.ids.push("b"));
    vi.advanceTimersByTime(15);
    expect(drawn).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(drawn).toEqual([{ ids: ["a", "b"] }]);
    frames.add((batch) => batch.ids.push("c"));
    frames.dispose();
    vi.advanceTimersByTime(100);
    expect(drawn).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("Ticker", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("ticks once a second while running, on the global timers by default", () => {
    const tick = vi.fn();
    const ticker = new Ticker(tick);
    ticker.run(true);
    ticker.run(true); // already ticking: still one interval
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(999);
    expect(tick).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2001);
    expect(tick).toHaveBeenCalledTimes(3);
    ticker.run(false);
    expect(ticker.running).toBe(false);
    vi.advanceTimersByTime(5000);
    expect(tick).toHaveBeenCalledTimes(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops when disposed", () => {
    const tick = vi.fn();
    const ticker = new Ticker(tick, undefined, 250);
    ticker.run(true);
    vi.advanceTimersByTime(500);
    ticker.dispose();
    vi.advanceTimersByTime(500);
    expect(tick).toHaveBeenCalledTimes(2);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("takes a clock of its own", () => {
    const started: { callback: () => void; ms: number }[] = [];
    const cleared: unknown[] = [];
    const clock: Clock = {
      setInterval: (callback, ms) => started.push({ callback, ms }),
      clearInterval: (handle) => cleared.push(handle),
    };
    const tick = vi.fn();
    const ticker = new Ticker(tick, clock);
    ticker.run(true);
    expect(started.map((s) => s.ms)).toEqual([1000]);
    started[0].callback();
    expect(tick).toHaveBeenCalledTimes(1);
    ticker.run(false);
    expect(cleared).toEqual([1]);
  });
});
