import { describe, expect, it, vi } from "vitest";

import { ChatState } from "../../js/chat_state";
import { ChatView, type ChatActions } from "../../js/chat_view";
import { failureHint, StatusBar, streamedTokens } from "../../js/status_bar";
import { emptyState, type RunInfo, type ViewState } from "../../js/view_state";

function run(status: string, extra: Partial<RunInfo> = {}): RunInfo {
  return {
    id: "run_1", thread_id: "thread_1", assistant_id: "asst_1", model: "test", status,
    created_at: 100, started_at: 101, finished_at: null, usage: null, error: null, ...extra,
  };
}

function reply(text: string, runInfo: RunInfo | null): ViewState {
  return {
    ...emptyState(),
    run: runInfo,
    items: [
      { kind: "message", id: "m0", run_id: null, role: "user", status: "completed", blocks: [{ type: "text", text: "hi\nthere" }] },
      { kind: "message", id: "m1", run_id: "run_1", role: "assistant", status: "in_progress", blocks: [{ type: "text", text }] },
    ],
  };
}

describe("the status bar", () => {
  it("says starting… before the first event, then counts streamed tokens live", () => {
    const bar = new StatusBar(document);
    bar.render({ state: emptyState(), live: true, note: "Using model 'test'", now: 100 });
    expect(bar.root.textContent).toContain("starting…");
    expect(bar.root.querySelector(".ipa-status-note")?.textContent).toBe("Using model 'test'");
    bar.render({ state: reply("one two, three", run("in_progress")), live: true, now: 107 });
    expect(bar.root.querySelector(".ipa-status-tokens")?.textContent).toBe("~4 tokens");
    expect(bar.root.querySelector(".ipa-status-elapsed")?.textContent).toBe("7 s");
  });

  it("keeps the live clock when the run ends, and shows the usage instead of the count", () => {
    const bar = new StatusBar(document);
    const usage = { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 };
    bar.render({ state: reply("x", run("completed", { finished_at: 107, usage })), live: false, now: 999 });
    expect(bar.root.querySelector(".ipa-status-elapsed")?.textContent).toBe("7 s");
    expect(bar.root.querySelector(".ipa-status-tokens")?.textContent).toBe("7 tokens");
  });

  it("shows a failed run's error, its hint and Retry", () => {
    const bar = new StatusBar(document);
    const retry = vi.fn();
    const error = { code: "rate_limit_exceeded", message: "slow down" };
    bar.render({ state: reply("", run("failed", { finished_at: 101, error })), live: false, retry, now: 0 });
    expect(bar.root.querySelector("[data-testid=ipa-status-hint]")?.textContent).toContain("wait a moment, then Retry");
    expect(bar.root.textContent).not.toContain("tokens");
    const button = bar.root.querySelector<HTMLButtonElement>(".ipa-status-retry")!;
    expect(button.getAttribute("aria-label")).toBe("Retry");
    button.click();
    expect(retry).toHaveBeenCalledOnce();
  });

  it("hints at how to choose a model, and names the upstream that failed", () => {
    expect(failureHint("model_not_found", "The model 'x' is not available.")).toContain("%assistant model NAME");
    expect(failureHint("server_error", "openai:gpt-4o at https://a.example/v1 answered 503: down")).toContain(
      "openai:gpt-4o at https://a.example/v1",
    );
    expect(streamedTokens(emptyState())).toBe(0);
  });
});

describe("the chat panel's affordances", () => {
  function chat(turns: ViewState[], busy = false): { view: ChatView; actions: ChatActions } {
    const actions: ChatActions = { send: vi.fn(), stop: vi.fn() };
    const host = document.createElement("div");
    const view = new ChatView(host, new ChatState(emptyState(), turns), actions, {
      busy,
      frames: { request: (callback) => callback(), cancel: () => undefined },
      clock: { setInterval: () => 0, clearInterval: () => undefined },
    });
    return { view, actions };
  }

  it("retries a failed last turn with its message, line breaks kept", () => {
    const error = { code: "rate_limit_exceeded", message: "slow down" };
    const { view, actions } = chat([reply("", run("failed", { finished_at: 101, error }))]);
    view.root.querySelector<HTMLButtonElement>(".ipa-status-retry")!.click();
    expect(actions.send).toHaveBeenCalledWith("hi\nthere", []);
  });

  it("regenerates a finished last turn", () => {
    const { view, actions } = chat([reply("done", run("completed", { finished_at: 102 }))]);
    const again = view.root.querySelector<HTMLButtonElement>(".ipa-status-regenerate")!;
    expect(again.getAttribute("aria-label")).toBe("Regenerate");
    again.click();
    expect(actions.send).toHaveBeenCalledWith("hi\nthere", []);
  });

  it("stops the reply on Esc in the box", () => {
    const { view, actions } = chat([], true);
    view.input.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(actions.stop).toHaveBeenCalledOnce();
  });
});
