/**
 * The anywidget module of `ipyassistant.jupyter.ChatPanel`: a conversation (the thread's
 * history, then one turn per message sent) above an input box.
 *
 * The conversation is rendered with render.ts, turn by turn, in RunView's style. The kernel's
 * messages and traits (see the Python module's docstring) feed a `ChatState`, one per model and
 * shared by its views (made in anywidget's `initialize`); `ChatView` draws it and follows it.
 * Both are exported so that they can be tested without Jupyter.
 *
 * Keys in the input box: Enter sends, Shift+Enter starts a new line. Key events stay inside
 * the box (they do not reach JupyterLab's notebook shortcuts).
 */

import type { AnyModel, Initialize, Render } from "@anywidget/types";

import { isViewState } from "./live";
import { ImageStore, makeContext, RunRenderer, toBytes, type RenderContext } from "./render";
import { applyOps, cloneState, emptyState, noChanges, type Changes, type Op, type ViewState } from "./view_state";

/** The synced traits of the Python `ChatPanel` widget. */
export interface ChatPanelModel {
  /** The thread's messages from before the panel (a view state without run). */
  history: ViewState;
  /** The finished turns, one view state each. */
  turns: ViewState[];
  /** Image bytes by file id (binary buffers, as DataViews). */
  images: Record<string, DataView>;
  /** Whether a turn is running. */
  busy: boolean;
  /** Messages waiting for the running turn. */
  queued: string[];
  /** Whether files can be attached. */
  attachments: boolean;
  placeholder: string;
  _uid: string;
}

/** The turn that is streaming: its index among the turns, and its view state. */
export interface LiveTurn {
  turn: number;
  state: ViewState;
}

export type PanelMessage =
  | { type: "live"; turn: number; state: ViewState | null }
  | { type: "patch"; ops: Op[] }
  | { type: "image"; file_id: string }
  | { type: "snapshot"; live: LiveTurn | null; images?: string[] };

/** A file picked for the next message. */
export interface Attachment {
  name: string;
  data: ArrayBuffer;
}

export type ChatEvent =
  | { kind: "conversation"; full: boolean }
  | { kind: "live" }
  | { kind: "ops"; changes: Changes }
  | { kind: "images"; fileIds: string[] };

type Buffer = DataView | ArrayBuffer | ArrayBufferView;

/** Files larger than this (all of a message's together) are refused: the notebook's
 * websocket would drop the message. */
export const MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024;

/** What a model shows: the conversation, the live turn, images, and the unsent input. */
export class ChatState {
  history: ViewState;
  turns: ViewState[];
  live: LiveTurn | null = null;
  readonly images = new ImageStore();
  /** Which cards the user opened or closed, by item id. */
  readonly open = new Map<string, boolean>();
  /** The text typed and not sent: kept when a view is rendered again. */
  draft = "";
  /** The files picked and not sent. */
  files: Attachment[] = [];
  private listeners = new Set<(event: ChatEvent) => void>();

  constructor(history: unknown, turns: unknown, images?: Record<string, Buffer> | null) {
    this.history = isViewState(history) ? cloneState(history) : emptyState();
    this.turns = Array.isArray(turns) ? turns.filter(isViewState).map(cloneState) : [];
    if (images) this.setImages(images);
  }

  subscribe(listener: (event: ChatEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: ChatEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  setHistory(history: unknown): void {
    this.history = isViewState(history) ? cloneState(history) : emptyState();
    this.emit({ kind: "conversation", full: true });
  }

  setTurns(turns: unknown): void {
    const next = Array.isArray(turns) ? turns.filter(isViewState).map(cloneState) : [];
    const full = next.length < this.turns.length;
    this.turns = next;
    this.emit({ kind: "conversation", full });
    // The live turn is over once the kernel has written it among the turns.
    if (this.live && this.live.turn < this.turns.length) {
      this.live = null;
      this.emit({ kind: "live" });
    }
  }

  setImages(images: Record<string, Buffer>): void {
    const changed: string[] = [];
    for (const [id, buffer] of Object.entries(images ?? {})) {
      if (buffer && this.images.set(id, toBytes(buffer))) changed.push(id);
    }
    if (changed.length) this.emit({ kind: "images", fileIds: changed });
  }

  /** Handle one custom message from the kernel. */
  receive(message: unknown, buffers: Buffer[] = []): void {
    const msg = message as PanelMessage;
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "live") {
      this.setLive(isViewState(msg.state) ? { turn: msg.turn, state: msg.state } : null);
    } else if (msg.type === "patch" && Array.isArray(msg.ops)) {
      if (!this.live) return;
      const changes = applyOps(this.live.state, msg.ops, noChanges());
      this.emit({ kind: "ops", changes });
    } else if (msg.type === "image" && typeof msg.file_id === "string" && buffers.length > 0) {
      if (this.images.set(msg.file_id, toBytes(buffers[0]))) {
        this.emit({ kind: "images", fileIds: [msg.file_id] });
      }
    } else if (msg.type === "snapshot") {
      const ids = Array.isArray(msg.images) ? msg.images : [];
      ids.forEach((id, i) => buffers[i] && this.images.set(id, toBytes(buffers[i])));
      const live = msg.live && isViewState(msg.live.state) ? msg.live : null;
      if (live || this.live) this.setLive(live);
      if (ids.length) this.emit({ kind: "images", fileIds: ids });
    }
  }

  private setLive(live: LiveTurn | null): void {
    // A turn the kernel has already written among the turns is not live any more.
    this.live = live && live.turn >= this.turns.length ? { turn: live.turn, state: cloneState(live.state) } : null;
    this.emit({ kind: "live" });
  }

  dispose(): void {
    this.listeners.clear();
    this.images.dispose();
  }
}

/** What the view asks of the kernel. */
export interface ChatActions {
  send(text: string, files: Attachment[]): void;
  stop(): void;
}

export interface ViewOptions {
  doc?: Document;
  attachments?: boolean;
  placeholder?: string;
  busy?: boolean;
  queued?: string[];
  now?: () => number;
}

function el<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className: string,
  testId?: string,
): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  node.className = className;
  if (testId) node.dataset.testid = testId;
  return node;
}

function button(doc: Document, className: string, testId: string, label: string, title: string): HTMLButtonElement {
  const node = el(doc, "button", className, testId);
  node.type = "button";
  node.textContent = label;
  node.title = title;
  return node;
}

async function readFile(file: File): Promise<ArrayBuffer> {
  if (typeof file.arrayBuffer === "function") return file.arrayBuffer();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result as ArrayBuffer);
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(file);
  });
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Draws a `ChatState` and its input box into `el`; `dispose` undoes it. */
export class ChatView {
  readonly root: HTMLElement;
  readonly log: HTMLElement;
  readonly input: HTMLTextAreaElement;
  readonly sendButton: HTMLButtonElement;
  readonly stopButton: HTMLButtonElement;
  readonly attachButton: HTMLButtonElement;
  readonly fileInput: HTMLInputElement;
  private readonly doc: Document;
  private readonly ctx: RenderContext;
  private readonly conversation: HTMLElement;
  private readonly historyBox: HTMLElement;
  private readonly liveBox: HTMLElement;
  private readonly queuedBox: HTMLElement;
  private readonly filesBox: HTMLElement;
  private readonly note: HTMLElement;
  private historyRenderer: RunRenderer;
  private turnBoxes: HTMLElement[] = [];
  private liveRenderer: RunRenderer | null = null;
  private liveTurn = -1;
  private busy = false;
  private stopping = false;
  private reading = 0;
  private unsubscribe: () => void;
  private pending: { conversation: "none" | "append" | "full"; live: boolean; changes: Changes | null; images: string[] } = {
    conversation: "none",
    live: false,
    changes: null,
    images: [],
  };
  private frame = 0;
  private clock: ReturnType<typeof setInterval> | undefined;

  constructor(
    el_: HTMLElement,
    readonly state: ChatState,
    private readonly actions: ChatActions,
    options: ViewOptions = {},
  ) {
    const doc = (this.doc = options.doc ?? el_.ownerDocument);
    this.ctx = makeContext({ doc, images: state.images, open: state.open, now: options.now });
    this.root = el(doc, "div", "ipa-chat", "ipa-chat");
    this.log = el(doc, "div", "ipa-chat-log", "ipa-chat-log");
    this.conversation = el(doc, "div", "ipa-chat-conversation");
    this.historyBox = el(doc, "div", "ipa-chat-history", "ipa-chat-history");
    this.historyRenderer = new RunRenderer(this.historyBox, this.ctx);
    this.liveBox = el(doc, "div", "ipa-chat-turn ipa-chat-live", "ipa-chat-live");
    this.log.append(this.historyBox, this.conversation, this.liveBox);
    this.queuedBox = el(doc, "div", "ipa-chat-queued", "ipa-chat-queued");

    const composer = el(doc, "div", "ipa-chat-composer");
    this.filesBox = el(doc, "div", "ipa-chat-files", "ipa-chat-files");
    this.note = el(doc, "div", "ipa-chat-note", "ipa-chat-note");
    const row = el(doc, "div", "ipa-chat-row");
    this.input = el(doc, "textarea", "ipa-chat-input", "ipa-chat-input");
    this.input.rows = 1;
    this.input.placeholder = options.placeholder ?? "Message… (Enter sends, Shift+Enter: new line)";
    this.input.value = state.draft;
    this.fileInput = el(doc, "input", "ipa-chat-file", "ipa-chat-file");
    this.fileInput.type = "file";
    this.fileInput.multiple = true;
    this.fileInput.hidden = true;
    this.attachButton = button(doc, "ipa-chat-attach", "ipa-chat-attach", "Attach", "Attach files for the code interpreter");
    this.attachButton.hidden = !options.attachments;
    this.sendButton = button(doc, "ipa-chat-send", "ipa-chat-send", "Send", "Send (Enter)");
    this.stopButton = button(doc, "ipa-chat-stop", "ipa-chat-stop", "Stop", "Stop the reply");
    row.append(this.attachButton, this.fileInput, this.input, this.sendButton, this.stopButton);
    composer.append(this.filesBox, row, this.note);
    this.root.append(this.log, this.queuedBox, composer);
    el_.replaceChildren(this.root);

    this.input.addEventListener("keydown", (event) => this.onKey(event));
    // Keep every key inside the box: JupyterLab's notebook shortcuts must not see them.
    this.input.addEventListener("keyup", (event) => event.stopPropagation());
    this.input.addEventListener("keypress", (event) => event.stopPropagation());
    this.input.addEventListener("input", () => {
      this.state.draft = this.input.value;
      this.fit();
      this.updateButtons();
    });
    this.sendButton.addEventListener("click", () => this.submit());
    this.stopButton.addEventListener("click", () => this.stop());
    this.attachButton.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      const picked = Array.from(this.fileInput.files ?? []);
      this.fileInput.value = "";
      void this.addFiles(picked);
    });

    this.renderConversation(true);
    this.renderLive();
    this.setBusy(options.busy ?? false);
    this.setQueued(options.queued ?? []);
    this.renderFiles();
    this.fit();
    this.unsubscribe = state.subscribe((event) => this.onState(event));
    this.scrollToEnd();
  }

  // -- input ------------------------------------------------------------------------------

  private onKey(event: KeyboardEvent): void {
    event.stopPropagation();
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    this.submit();
  }

  /** Send what is typed and attached (nothing happens when both are empty). */
  submit(): void {
    const text = this.input.value;
    const files = this.state.files;
    if ((!text.trim() && files.length === 0) || this.reading > 0) return;
    this.actions.send(text, files);
    this.input.value = "";
    this.state.draft = "";
    this.state.files = [];
    this.note.textContent = "";
    this.renderFiles();
    this.fit();
    this.updateButtons();
  }

  stop(): void {
    if (!this.busy || this.stopping) return;
    this.stopping = true;
    this.actions.stop();
    this.updateButtons();
  }

  /** Read picked files and keep them for the next message. */
  async addFiles(picked: File[]): Promise<void> {
    this.reading += 1;
    this.updateButtons();
    try {
      for (const file of picked) {
        const total = this.state.files.reduce((n, f) => n + f.data.byteLength, 0);
        if (total + file.size > MAX_ATTACHMENT_BYTES) {
          this.note.textContent = `${file.name} is too large to send through the notebook (${formatBytes(MAX_ATTACHMENT_BYTES)} at most per message).`;
          continue;
        }
        this.state.files = [...this.state.files, { name: file.name, data: await readFile(file) }];
      }
    } finally {
      this.reading -= 1;
      this.renderFiles();
      this.updateButtons();
    }
  }

  private renderFiles(): void {
    this.filesBox.replaceChildren(
      ...this.state.files.map((file, index) => {
        const chip = el(this.doc, "span", "ipa-chat-chip", "ipa-chat-chip");
        chip.textContent = `${file.name} (${formatBytes(file.data.byteLength)})`;
        const remove = button(this.doc, "ipa-chat-chip-remove", "ipa-chat-chip-remove", "×", `Remove ${file.name}`);
        remove.addEventListener("click", () => {
          this.state.files = this.state.files.filter((_, i) => i !== index);
          this.renderFiles();
          this.updateButtons();
        });
        chip.append(remove);
        return chip;
      }),
    );
  }

  /** Grow the box with its lines, up to a limit (it scrolls beyond). */
  private fit(): void {
    const lines = this.input.value.split("\n").length;
    this.input.rows = Math.min(Math.max(lines, 1), 8);
  }

  setBusy(busy: boolean): void {
    if (!busy) this.stopping = false;
    this.busy = busy;
    this.root.classList.toggle("ipa-chat-busy", busy);
    this.updateButtons();
  }

  setAttachments(on: boolean): void {
    this.attachButton.hidden = !on;
  }

  setPlaceholder(text: string): void {
    if (text) this.input.placeholder = text;
  }

  setQueued(queued: string[]): void {
    this.queuedBox.replaceChildren(
      ...queued.map((text) => {
        const line = el(this.doc, "div", "ipa-chat-queued-item");
        line.textContent = `Queued: ${text}`;
        return line;
      }),
    );
  }

  private updateButtons(): void {
    this.stopButton.disabled = !this.busy || this.stopping;
    this.stopButton.textContent = this.stopping ? "Stopping…" : "Stop";
    const empty = !this.input.value.trim() && this.state.files.length === 0;
    this.sendButton.disabled = empty || this.reading > 0;
  }

  // -- the conversation -----------------------------------------------------------------------

  private onState(event: ChatEvent): void {
    const p = this.pending;
    if (event.kind === "conversation") {
      p.conversation = event.full || p.conversation === "full" ? "full" : "append";
    } else if (event.kind === "live") {
      p.live = true;
      p.changes = null;
    } else if (event.kind === "images") {
      p.images.push(...event.fileIds);
    } else if (!p.live) {
      if (!p.changes) p.changes = noChanges();
      p.changes.run ||= event.changes.run;
      p.changes.error ||= event.changes.error;
      p.changes.added ||= event.changes.added;
      for (const id of event.changes.items) p.changes.items.add(id);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.frame) return;
    const win = this.doc.defaultView;
    this.frame = win?.requestAnimationFrame
      ? win.requestAnimationFrame(() => this.draw())
      : (setTimeout(() => this.draw(), 16) as unknown as number);
  }

  /** Apply what changed since the last frame (one re-render per frame while streaming). */
  draw(): void {
    this.frame = 0;
    const p = this.pending;
    this.pending = { conversation: "none", live: false, changes: null, images: [] };
    const stick = this.atEnd();
    if (p.conversation !== "none") this.renderConversation(p.conversation === "full");
    if (p.live) this.renderLive();
    else if (p.changes && this.liveRenderer && this.state.live) this.liveRenderer.update(this.state.live.state, p.changes);
    if (p.images.length) this.refreshImages(p.images);
    if (stick) this.scrollToEnd();
  }

  private renderConversation(full: boolean): void {
    if (full) {
      this.historyRenderer.render(this.state.history);
      this.historyBox.hidden = this.state.history.items.length === 0;
      this.turnBoxes = [];
      this.conversation.replaceChildren();
    }
    for (let i = this.turnBoxes.length; i < this.state.turns.length; i++) {
      const box = el(this.doc, "div", "ipa-chat-turn", "ipa-chat-turn");
      box.dataset.turn = String(i);
      new RunRenderer(box, this.ctx).render(this.state.turns[i]);
      this.turnBoxes.push(box);
      this.conversation.append(box);
    }
  }

  private renderLive(): void {
    const live = this.state.live;
    if (!live) {
      this.liveRenderer = null;
      this.liveTurn = -1;
      this.liveBox.replaceChildren();
      this.liveBox.hidden = true;
      this.tick();
      return;
    }
    if (live.turn !== this.liveTurn) this.stopping = false;
    this.liveTurn = live.turn;
    this.liveBox.hidden = false;
    this.liveBox.dataset.turn = String(live.turn);
    const inner = el(this.doc, "div", "ipa-chat-live-view");
    this.liveBox.replaceChildren(inner);
    this.liveRenderer = new RunRenderer(inner, this.ctx);
    this.liveRenderer.render(live.state);
    this.updateButtons();
    this.tick();
  }

  private refreshImages(fileIds: string[]): void {
    // Finished turns are few and small: re-render the ones that show these images.
    const wanted = new Set(fileIds);
    const shows = (state: ViewState): boolean =>
      state.items.some((item) =>
        item.kind === "message"
          ? item.blocks.some((b) => b.type === "image" && wanted.has(b.file_id))
          : item.kind === "code" && item.images.some((id) => wanted.has(id)),
      );
    if (shows(this.state.history)) this.historyRenderer.render(this.state.history);
    this.state.turns.forEach((turn, i) => {
      const box = this.turnBoxes[i];
      if (box && shows(turn)) new RunRenderer(box, this.ctx).render(turn);
    });
    if (this.liveRenderer && this.state.live) this.liveRenderer.refreshImages(this.state.live.state, fileIds);
  }

  /** The elapsed time of the live run ticks once a second. */
  private tick(): void {
    const running = this.state.live !== null && RunRenderer.ticking(this.state.live.state);
    if (running && this.clock === undefined) {
      this.clock = setInterval(() => {
        if (this.liveRenderer && this.state.live) this.liveRenderer.renderRun(this.state.live.state);
        else this.tick();
      }, 1000);
    } else if (!running && this.clock !== undefined) {
      clearInterval(this.clock);
      this.clock = undefined;
    }
  }

  private atEnd(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
  }

  private scrollToEnd(): void {
    this.log.scrollTop = this.log.scrollHeight;
  }

  dispose(): void {
    this.unsubscribe();
    if (this.frame) {
      const win = this.doc.defaultView;
      if (win?.cancelAnimationFrame) win.cancelAnimationFrame(this.frame);
      else clearTimeout(this.frame);
    }
    if (this.clock !== undefined) clearInterval(this.clock);
    this.root.remove();
  }
}

// -- the anywidget module ---------------------------------------------------------------------

type Model = AnyModel<ChatPanelModel>;

// The state of each model, for its views (anywidget gives `initialize` and `render` different
// proxies of one model: they meet through `_uid`, per widget manager).
const STATES = new WeakMap<object, Map<string, ChatState>>();

function stateOf(model: Model, create: boolean): ChatState | undefined {
  const key = (model.widget_manager ?? STATES) as object;
  let byUid = STATES.get(key);
  if (!byUid) {
    byUid = new Map();
    STATES.set(key, byUid);
  }
  const uid = model.get("_uid");
  let state = byUid.get(uid);
  if (!state && create) {
    state = new ChatState(model.get("history"), model.get("turns"), model.get("images"));
    byUid.set(uid, state);
  }
  return state;
}

function forget(model: Model, state: ChatState): void {
  const byUid = STATES.get((model.widget_manager ?? STATES) as object);
  if (byUid?.get(model.get("_uid")) === state) byUid.delete(model.get("_uid"));
  state.dispose();
}

function attach(model: Model, state: ChatState): () => void {
  const onMessage = (msg: unknown, buffers: DataView[]): void => state.receive(msg, buffers);
  const onHistory = (): void => state.setHistory(model.get("history"));
  const onTurns = (): void => state.setTurns(model.get("turns"));
  const onImages = (): void => state.setImages(model.get("images") ?? {});
  model.on("msg:custom", onMessage);
  model.on("change:history", onHistory);
  model.on("change:turns", onTurns);
  model.on("change:images", onImages);
  // A model made while a turn streams (a reloaded page) asks the kernel for it.
  model.send({ type: "snapshot?" });
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:history", onHistory);
    model.off("change:turns", onTurns);
    model.off("change:images", onImages);
  };
}

/** The actions of a view: messages to the kernel. */
export function modelActions(model: Pick<Model, "send">): ChatActions {
  return {
    send(text, files) {
      model.send({ type: "send", text, files: files.map((f) => f.name) }, undefined, files.map((f) => f.data));
    },
    stop() {
      model.send({ type: "stop" });
    },
  };
}

const initialize: Initialize<ChatPanelModel> = ({ model }) => {
  const state = stateOf(model, true) as ChatState;
  const detach = attach(model, state);
  return () => {
    detach();
    forget(model, state);
  };
};

const render: Render<ChatPanelModel> = ({ model, el: host }) => {
  // Without `initialize` (an older anywidget), the view keeps a state of its own.
  let own: (() => void) | undefined;
  let state = stateOf(model, false);
  if (!state) {
    const mine = new ChatState(model.get("history"), model.get("turns"), model.get("images"));
    const detach = attach(model, mine);
    state = mine;
    own = () => {
      detach();
      mine.dispose();
    };
  }
  const view = new ChatView(host, state, modelActions(model), {
    attachments: model.get("attachments"),
    placeholder: model.get("placeholder"),
    busy: model.get("busy"),
    queued: model.get("queued") ?? [],
  });
  const onBusy = (): void => view.setBusy(model.get("busy"));
  const onQueued = (): void => view.setQueued(model.get("queued") ?? []);
  const onAttachments = (): void => view.setAttachments(model.get("attachments"));
  const onPlaceholder = (): void => view.setPlaceholder(model.get("placeholder"));
  model.on("change:busy", onBusy);
  model.on("change:queued", onQueued);
  model.on("change:attachments", onAttachments);
  model.on("change:placeholder", onPlaceholder);
  return () => {
    model.off("change:busy", onBusy);
    model.off("change:queued", onQueued);
    model.off("change:attachments", onAttachments);
    model.off("change:placeholder", onPlaceholder);
    view.dispose();
    own?.();
    host.replaceChildren();
  };
};

export default { initialize, render };
