import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { ChatState } from "../../js/chat_state";
import { ChatView } from "../../js/chat_view";
import { emptyLiveBatch, foldLive, LiveState, type LiveEvent } from "../../js/live";
import { animationFrames } from "../../js/toolkit/frames";
import { emptyState, noChanges, type Changes, type RunInfo } from "../../js/view_state";
import { fakeObjectUrls } from "./fixtures";

const changed = (partial: Partial<Changes>, ...ids: string[]): LiveEvent => ({
  kind: "ops",
  changes: { ...noChanges(), ...partial, items: new Set(ids) },
});

describe("foldLive", () => {
  it("merges the changes of several batches of ops", () => {
    const batch = emptyLiveBatch();
    foldLive(batch, changed({ run: true }, "a"));
    foldLive(batch, changed({ added: true }, "b"));
    expect(batch).toEqual({ reset: false, changes: { run: true, error: false, added: true, items: new Set(["a", "b"]) }, images: [] });
  });

  it("drops the changes around a reset (the state is drawn whole), not the images", () => {
    const batch = emptyLiveBatch();
    foldLive(batch, changed({}, "a"));
    foldLive(batch, { kind: "images", fileIds: ["f1"] });
    foldLive(batch, { kind: "reset" });
    foldLive(batch, changed({ error: true }, "b"));
    foldLive(batch, { kind: "images", fileIds: ["f2"] });
    expect(batch).toEqual({ reset: true, changes: null, images: ["f1", "f2"] });
  });
});

describe("LiveState", () => {
  it("keeps a snapshot's images, then tells its views once", () => {
    const urls = fakeObjectUrls();
    const live = new LiveState(null);
    const events: LiveEvent[] = [];
    live.subscribe((event) => events.push(event));
    live.receive({ type: "snapshot", state: null, images: ["f1", "f2"] }, [new Uint8Array([1]), new Uint8Array([2])]);
    expect(events).toEqual([{ kind: "images", fileIds: ["f1", "f2"] }]);
    live.receive({ type: "snapshot", state: emptyState(), images: ["f3"] }, [new Uint8Array([3])]);
    expect(events.slice(1)).toEqual([{ kind: "reset" }]);
    expect(["f1", "f2", "f3"].every((id) => live.images.has(id))).toBe(true);
    live.dispose();
    urls.restore();
  });
});

function run(status: string, now: number): RunInfo {
  return {
    id: "run_1",
    thread_id: "thread_1",
    assistant_id: "asst_1",
    model: "test",
    status,
    created_at: 100,
    started_at: 100,
    finished_at: status === "in_progress" ? null : now,
    usage: null,
    error: null,
  };
}

describe("the chat panel's live turn", () => {
  let host: HTMLElement;
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(105_000); // 5 s after the run started
    host = document.createElement("div");
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("is a live state: patches reach it only while a turn streams", () => {
    const state = new ChatState(emptyState(), []);
    const events: string[] = [];
    state.subscribe((event) => events.push(event.kind));
    state.receive({ type: "patch", ops: [{ op: "run", run: run("in_progress", 0) }] });
    expect(events).toEqual([]);
    state.receive({ type: "live", turn: 0, state: emptyState() });
    state.receive({ type: "patch", ops: [{ op: "run", run: run("in_progress", 0) }] });
    expect(state.live?.state.run?.status).toBe("in_progress");
    state.setTurns([emptyState()]);
    expect(events).toEqual(["reset", "ops", "conversation", "reset"]);
    expect(state.live).toBeNull();
    state.dispose();
  });

  it("draws once per frame and ticks its elapsed time on the view's clock", () => {
    const state = new ChatState(emptyState(), []);
    const view = new ChatView(host, state, { send: () => undefined, stop: () => undefined }, { frames: animationFrames(null) });
    const elapsed = (): string | null | undefined => host.querySelector("[data-testid=ipa-chat-live] .ipa-elapsed")?.textContent;
    state.receive({ type: "live", turn: 0, state: { ...emptyState(), run: run("in_progress", 0) } });
    state.receive({ type: "patch", ops: [{ op: "error", error: null }] });
    expect(elapsed()).toBeUndefined(); // not drawn before the frame
    vi.advanceTimersByTime(16);
    expect(elapsed()).toBe("5 s");
    vi.advanceTimersByTime(1000);
    expect(elapsed()).toBe("6 s");
    vi.advanceTimersByTime(2000);
    expect(elapsed()).toBe("8 s");
    // The run ends: its time stays; the clock stops with the live turn.
    state.receive({ type: "patch", ops: [{ op: "run", run: run("completed", 108) }] });
    vi.advanceTimersByTime(3000);
    expect(elapsed()).toBe("8 s");
    state.receive({ type: "live", turn: 0, state: null });
    vi.advanceTimersByTime(16);
    expect(elapsed()).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
    view.dispose();
  });
});
