import { describe, expect, it } from "vitest";

import { applyOps, emptyState, fileIds, noChanges, type ViewState } from "../../js/view_state";
import { OPS_FIXTURES, opsFixture } from "./fixtures";

describe("applyOps", () => {
  it.each(OPS_FIXTURES)("replays the Python reducer's ops of %s to its final state", (name) => {
    const fixture = opsFixture(name);
    const state = emptyState();
    for (const batch of fixture.batches) applyOps(state, batch);
    expect(state).toEqual(fixture.final);
  });

  it("reaches the same state however the ops are batched", () => {
    const fixture = opsFixture("tool_round_trip");
    const one = emptyState();
    applyOps(one, fixture.batches.flat());
    const many = emptyState();
    for (const op of fixture.batches.flat()) applyOps(many, [op]);
    expect(one).toEqual(many);
  });

  it("does not share objects with the ops it applied", () => {
    const item = { kind: "message", id: "m", run_id: null, role: "assistant", status: "in_progress", blocks: [] } as const;
    const op = { op: "item" as const, item: { ...item, blocks: [{ type: "text" as const, text: "a" }] } };
    const state = emptyState();
    applyOps(state, [op, { op: "text", id: "m", index: 0, text: "b" }]);
    expect(op.item.blocks[0].text).toBe("a");
    expect((state.items[0] as { blocks: { text: string }[] }).blocks[0].text).toBe("ab");
  });

  it("ignores ops for items it does not know, and reports what changed", () => {
    const state: ViewState = emptyState();
    const changes = applyOps(state, [
      { op: "text", id: "nope", index: 0, text: "lost" },
      { op: "append", id: "nope", field: "arguments", text: "{}" },
      { op: "set", id: "nope", fields: { status: "completed" } },
    ], noChanges());
    expect(state).toEqual(emptyState());
    expect(changes.items.size).toBe(0);
    expect(changes.added).toBe(false);
  });

  it("lists the images a state shows", () => {
    const fixture = opsFixture("code_interpreter");
    expect(fileIds(fixture.final)).toHaveLength(1);
  });
});
