import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import widget, { type ChatPanelModel } from "../../js/chat_panel";
import { ChatState } from "../../js/chat_state";
import { ChatView, type ChatActions } from "../../js/chat_view";
import { emptyState, type Item, type RunInfo, type ViewState } from "../../js/view_state";
import { FakeModel as BaseFakeModel, fakeObjectUrls, nextFrame, props } from "./fixtures";

/** A chat panel's model, with the traits' defaults. */
class FakeModel extends BaseFakeModel<ChatPanelModel> {
  constructor(attrs: Partial<ChatPanelModel> = {}) {
    super({
      history: emptyState(),
      turns: [],
      images: {},
      busy: false,
      queued: [],
      attachments: false,
      placeholder: "Message Assistant…",
      _uid: "chat-1",
      ...attrs,
    });
  }
}

function message(id: string, role: string, text: string, status = "completed"): Item {
  return { kind: "message", id, run_id: null, role, status, blocks: [{ type: "text", text }] };
}

function run(status: string): RunInfo {
  return {
    id: "run_1",
    thread_id: "thread_1",
    assistant_id: "asst_1",
    model: "test",
    status,
    created_at: 100,
    started_at: 100,
    finished_at: status === "in_progress" ? null : 101,
    usage: null,
    error: null,
  };
}

let ids = 0;

function turn(user: string, reply: string | null, status = "completed"): ViewState {
  ids += 1;
  const items = [message(`u-${ids}`, "user", user)];
  if (reply !== null) items.push(message(`a-${ids}`, "assistant", reply));
  return { run: run(status), items, error: null };
}

class Recorder implements ChatActions {
  sent: { text: string; files: string[] }[] = [];
  stops = 0;
  send(text: string, files: { name: string }[]): void {
    this.sent.push({ text, files: files.map((f) => f.name) });
  }
  stop(): void {
    this.stops += 1;
  }
}

function key(target: HTMLElement, init: KeyboardEventInit): KeyboardEvent {
  const event = new KeyboardEvent("keydown", { bubbles: true, cancelable: true, ...init });
  target.dispatchEvent(event);
  return event;
}

function type(view: ChatView, text: string): void {
  view.input.value = text;
  view.input.dispatchEvent(new Event("input", { bubbles: true }));
}

let urls: ReturnType<typeof fakeObjectUrls>;
let host: HTMLElement;
beforeEach(() => {
  urls = fakeObjectUrls();
  host = document.createElement("div");
  document.body.append(host);
});
afterEach(() => {
  urls.restore();
  host.remove();
});

describe("rendering the conversation", () => {
  it("shows the history, then each finished turn with its run", () => {
    const history = { ...emptyState(), items: [message("m1", "user", "earlier question"), message("m2", "assistant", "earlier **answer**")] };
    const state = new ChatState(history, [turn("hi", "echo: hi"), turn("/sleep 30", null, "cancelled")]);
    const view = new ChatView(host, state, new Recorder());

    const shown = host.querySelector("[data-testid=ipa-chat-history]") as HTMLElement;
    expect(shown.hidden).toBe(false);
    expect(shown.querySelectorAll(".ipa-msg")).toHaveLength(2);
    expect(shown.querySelector(".ipa-role-assistant strong")?.textContent).toBe("answer");
    const turns = host.querySelectorAll("[data-testid=ipa-chat-turn]");
    expect(turns).toHaveLength(2);
    expect(turns[0].querySelector(".ipa-role-assistant")?.textContent).toContain("echo: hi");
    expect(turns[0].querySelector(".ipa-run .ipa-badge")?.textContent).toBe("completed");
    expect(turns[1].querySelector(".ipa-run .ipa-badge")?.textContent).toBe("cancelled");
    view.dispose();
    expect(host.childElementCount).toBe(0);
  });

  it("hides an empty history", () => {
    const view = new ChatView(host, new ChatState(emptyState(), []), new Recorder());
    expect((host.querySelector("[data-testid=ipa-chat-history]") as HTMLElement).hidden).toBe(true);
    view.dispose();
  });

  it("streams the live turn, then shows it once among the turns", async () => {
    const state = new ChatState(emptyState(), []);
    const view = new ChatView(host, state, new Recorder());
    const start = { ...emptyState(), items: [message("u1", "user", "hello")] };
    state.receive({ type: "live", turn: 0, state: start });
    state.receive({ type: "patch", ops: [{ op: "run", run: run("in_progress") }, { op: "item", item: message("a1", "assistant", "echo:", "in_progress") }] });
    state.receive({ type: "patch", ops: [{ op: "text", id: "a1", index: 0, text: " hello" }] });
    await nextFrame();
    const live = host.querySelector("[data-testid=ipa-chat-live]") as HTMLElement;
    expect(live.hidden).toBe(false);
    expect(live.querySelector(".ipa-role-assistant")?.textContent).toContain("echo: hello");
    expect(live.querySelector(".ipa-cursor")).not.toBeNull();

    // The kernel writes the finished turn, then says the live one ended.
    state.setTurns([turn("hello", "echo: hello")]);
    state.receive({ type: "live", turn: 0, state: null });
    await nextFrame();
    expect(live.hidden).toBe(true);
    expect(host.querySelectorAll(".ipa-role-assistant")).toHaveLength(1);
    expect(host.querySelectorAll("[data-testid=ipa-chat-turn]")).toHaveLength(1);
    view.dispose();
  });

  it("ignores a snapshot of a turn the kernel has already finished", () => {
    const state = new ChatState(emptyState(), [turn("a", "echo: a")]);
    state.receive({ type: "snapshot", live: { turn: 0, state: turn("a", "echo") }, images: [] });
    expect(state.live).toBeNull();
    state.receive({ type: "snapshot", live: { turn: 1, state: turn("b", null, "in_progress") }, images: [] });
    expect(state.live?.turn).toBe(1);
  });
});

describe("sanitised markdown", () => {
  it("renders no script, event handler or javascript: link from any message", () => {
    const evil = [
      "<script>window.pwned = 1</script>",
      '<img src="x" onerror="window.pwned = 2">',
      "[click](javascript:window.pwned=3)",
      '<a href="#" onclick="window.pwned = 4">x</a>',
      "![tracker](https://example.com/t.png)",
    ].join("\n\n");
    const history = { ...emptyState(), items: [message("m1", "assistant", evil)] };
    const state = new ChatState(history, [turn(evil, evil)]);
    const view = new ChatView(host, state, new Recorder());
    expect(host.querySelector("script")).toBeNull();
    expect(host.querySelector("[onerror], [onclick]")).toBeNull();
    expect(host.querySelectorAll(".ipa-text a")).toHaveLength(12); // 4 per message, 3 messages
    for (const link of host.querySelectorAll(".ipa-text a")) {
      expect(link.getAttribute("href") ?? "").not.toMatch(/^\s*javascript:/i);
    }
    expect(host.querySelector(".ipa-msg img")).toBeNull(); // model-written image URLs are links
    expect((window as unknown as { pwned?: number }).pwned).toBeUndefined();
    view.dispose();
  });
});

describe("the input box", () => {
  it("sends on Enter and clears the box", () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions);
    type(view, "hello there");
    const event = key(view.input, { key: "Enter" });
    expect(event.defaultPrevented).toBe(true);
    expect(actions.sent).toEqual([{ text: "hello there", files: [] }]);
    expect(view.input.value).toBe("");
    expect(view.sendButton.disabled).toBe(true);
    view.dispose();
  });

  it("recalls the last message with Up in an empty box", () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions);
    type(view, "first\nsecond line");
    key(view.input, { key: "Enter" });
    const event = key(view.input, { key: "ArrowUp" });
    expect(event.defaultPrevented).toBe(true);
    expect(view.input.value).toBe("first\nsecond line");
    key(view.input, { key: "ArrowUp" }); // the box is not empty now: Up moves the caret
    expect(view.input.value).toBe("first\nsecond line");
    view.dispose();
  });

  it("puts messages that Stop took off the queue back into the box", () => {
    const state = new ChatState(emptyState(), []);
    const view = new ChatView(host, state, new Recorder());
    type(view, "typed since");
    state.receive({ type: "unsent", texts: ["queued one", "queued two"] });
    expect(view.input.value).toBe("queued one\n\nqueued two\n\ntyped since");
    expect(view.sendButton.disabled).toBe(false);
    view.dispose();
  });

  it("shows the line breaks of what a person typed", () => {
    const state = new ChatState(emptyState(), [turn("line one\nline two", "a\nb")]);
    const view = new ChatView(host, state, new Recorder());
    expect(host.querySelector(".ipa-role-user .ipa-text br")).not.toBeNull();
    expect(host.querySelector(".ipa-role-assistant .ipa-text br")).toBeNull();
    view.dispose();
  });

  it("keeps Shift+Enter for a new line", () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions);
    type(view, "line one");
    const event = key(view.input, { key: "Enter", shiftKey: true });
    expect(event.defaultPrevented).toBe(false); // the browser inserts the line break
    expect(actions.sent).toEqual([]);
    type(view, "line one\nline two\nline three");
    expect(view.input.rows).toBe(3);
    key(view.input, { key: "Enter" });
    expect(actions.sent).toEqual([{ text: "line one\nline two\nline three", files: [] }]);
    view.dispose();
  });

  it("sends nothing blank, nor while an IME composes", () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions);
    type(view, "   ");
    key(view.input, { key: "Enter" });
    type(view, "日本");
    key(view.input, { key: "Enter", isComposing: true });
    expect(actions.sent).toEqual([]);
    view.sendButton.click();
    expect(actions.sent).toEqual([{ text: "日本", files: [] }]);
    view.dispose();
  });

  it("keeps keys from the notebook's shortcuts", () => {
    const view = new ChatView(host, new ChatState(emptyState(), []), new Recorder());
    const outside = vi.fn();
    host.addEventListener("keydown", outside);
    key(view.input, { key: "a" });
    key(view.input, { key: "Enter", shiftKey: true });
    key(view.input, { key: "Escape" });
    expect(outside).not.toHaveBeenCalled();
    view.dispose();
  });

  it("keeps a draft across views of the same model", () => {
    const state = new ChatState(emptyState(), []);
    const first = new ChatView(host, state, new Recorder());
    type(first, "half-written");
    first.dispose();
    const second = new ChatView(host, state, new Recorder());
    expect(second.input.value).toBe("half-written");
    second.dispose();
  });

  it("attaches files and sends them with the message", async () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions, { attachments: true });
    expect(view.attachButton.hidden).toBe(false);
    await view.addFiles([new File(["a,b\n1,2\n"], "data.csv")]);
    expect(host.querySelector("[data-testid=ipa-chat-chip]")?.textContent).toContain("data.csv (8 B)");
    expect(view.sendButton.disabled).toBe(false); // a file alone is worth sending
    key(view.input, { key: "Enter" });
    expect(actions.sent).toEqual([{ text: "", files: ["data.csv"] }]);
    expect(host.querySelector("[data-testid=ipa-chat-chip]")).toBeNull();
    view.dispose();
  });

  it("offers no attachments unless the panel takes them", () => {
    const view = new ChatView(host, new ChatState(emptyState(), []), new Recorder());
    expect(view.attachButton.hidden).toBe(true);
    view.dispose();
  });
});

describe("the Stop button", () => {
  it("works only while a turn runs, once", () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions);
    expect(view.stopButton.disabled).toBe(true);
    view.stopButton.click();
    expect(actions.stops).toBe(0);

    view.setBusy(true);
    expect(view.stopButton.disabled).toBe(false);
    view.stopButton.click();
    expect(actions.stops).toBe(1);
    expect(view.stopButton.disabled).toBe(true);
    expect(view.stopButton.textContent).toBe("Stopping…");
    view.stopButton.click();
    expect(actions.stops).toBe(1);

    view.setBusy(false);
    expect(view.stopButton.disabled).toBe(true);
    expect(view.stopButton.textContent).toBe("Stop");
    view.setBusy(true);
    expect(view.stopButton.disabled).toBe(false);
    view.dispose();
  });

  it("leaves the box usable while a reply streams", () => {
    const actions = new Recorder();
    const view = new ChatView(host, new ChatState(emptyState(), []), actions, { busy: true });
    expect(view.input.disabled).toBe(false);
    type(view, "next question");
    key(view.input, { key: "Enter" });
    expect(actions.sent).toEqual([{ text: "next question", files: [] }]);
    view.setQueued(["next question"]);
    expect(host.querySelector("[data-testid=ipa-chat-queued]")?.textContent).toBe("Queued: next question");
    view.dispose();
  });
});

describe("the ChatPanel module", () => {
  it("talks to the kernel through its model", async () => {
    const model = new FakeModel({ turns: [turn("hi", "echo: hi")] });
    const cleanup = (await widget.initialize?.(props(model))) as () => void;
    expect(model.sent.map((m) => m.content)).toEqual([{ type: "snapshot?" }]);
    const el = document.createElement("div");
    const dispose = (await widget.render?.(props(model, el))) as () => void;
    expect(el.querySelector(".ipa-role-assistant")?.textContent).toContain("echo: hi");
    const input = el.querySelector("[data-testid=ipa-chat-input]") as HTMLTextAreaElement;
    const stop = el.querySelector("[data-testid=ipa-chat-stop]") as HTMLButtonElement;
    expect(input.placeholder).toBe("Message Assistant…");

    input.value = "/sleep 30";
    input.dispatchEvent(new Event("input"));
    key(input, { key: "Enter" });
    expect(model.sent[1]).toEqual({ content: { type: "send", text: "/sleep 30", files: [] }, buffers: [] });

    model.set("busy", true);
    expect(stop.disabled).toBe(false);
    stop.click();
    expect(model.sent[2].content).toEqual({ type: "stop" });

    // The turn's stream, then its end, as the kernel sends them.
    model.emit("msg:custom", { type: "live", turn: 1, state: turn("/sleep 30", null, "in_progress") }, []);
    model.emit("msg:custom", { type: "patch", ops: [{ op: "run", run: run("cancelled") }] }, []);
    await nextFrame();
    expect(el.querySelector("[data-testid=ipa-chat-live] .ipa-run .ipa-badge")?.textContent).toBe("cancelled");
    model.set("turns", [turn("hi", "echo: hi"), turn("/sleep 30", null, "cancelled")]);
    model.set("busy", false);
    await nextFrame();
    expect(el.querySelectorAll("[data-testid=ipa-chat-turn]")).toHaveLength(2);
    expect(stop.disabled).toBe(true);

    dispose();
    expect(el.childElementCount).toBe(0);
    cleanup();
    expect(model.listeners()).toBe(0);
  });

  it("sends attached files as binary buffers", async () => {
    const model = new FakeModel({ attachments: true });
    const cleanup = (await widget.initialize?.(props(model))) as () => void;
    const el = document.createElement("div");
    const dispose = (await widget.render?.(props(model, el))) as () => void;
    const fileInput = el.querySelector("[data-testid=ipa-chat-file]") as HTMLInputElement;
    Object.defineProperty(fileInput, "files", { value: [new File(["hello"], "notes.txt")], configurable: true });
    fileInput.dispatchEvent(new Event("change"));
    await vi.waitFor(() => expect(el.querySelector("[data-testid=ipa-chat-chip]")).not.toBeNull());
    const input = el.querySelector("[data-testid=ipa-chat-input]") as HTMLTextAreaElement;
    input.value = "read it";
    key(input, { key: "Enter" });
    const { content, buffers } = model.sent[1];
    expect(content).toEqual({ type: "send", text: "read it", files: ["notes.txt"] });
    expect(new TextDecoder().decode(buffers[0] as ArrayBuffer)).toBe("hello");
    dispose();
    cleanup();
  });

  it("shows the images of the synced state", async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const history: ViewState = {
      ...emptyState(),
      items: [{ kind: "message", id: "m1", run_id: null, role: "assistant", status: "completed", blocks: [{ type: "image", file_id: "file-1" }] }],
    };
    const model = new FakeModel({ history });
    const cleanup = (await widget.initialize?.(props(model))) as () => void;
    const el = document.createElement("div");
    const dispose = (await widget.render?.(props(model, el))) as () => void;
    expect(el.querySelector(".ipa-image-pending")).not.toBeNull();
    model.set("images", { "file-1": new DataView(png.buffer) });
    await nextFrame();
    const img = el.querySelector("img.ipa-image") as HTMLImageElement;
    expect(img.src).toMatch(/^blob:fake\//);
    expect(urls.made.size).toBe(1);
    dispose();
    cleanup();
  });
});

// The bundle esbuild made (npm run build; js/check.sh builds before it tests).
const BUNDLE = join(process.cwd(), "src", "ipyassistant", "static", "chat_panel.js");

describe.skipIf(!existsSync(BUNDLE))("the built bundle", () => {
  it("is a self-contained ES module that renders a conversation", async () => {
    const built = (await import(/* @vite-ignore */ pathToFileURL(BUNDLE).href)) as { default: typeof widget };
    const model = new FakeModel({ turns: [turn("hi", "echo: **hi**")], _uid: "chat-bundle" });
    const cleanup = (await built.default.initialize?.(props(model))) as () => void;
    const el = document.createElement("div");
    const dispose = (await built.default.render?.(props(model, el))) as () => void;
    expect(el.querySelector("[data-testid=ipa-chat-turn] .ipa-role-assistant strong")?.textContent).toBe("hi");
    expect(el.querySelector("[data-testid=ipa-chat-input]")).not.toBeNull();
    dispose();
    cleanup();
  });
});
