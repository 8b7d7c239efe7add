/**
 * The view of a ChatPanel: the conversation of a `ChatState` (the history, then the turns,
 * then the live turn, rendered with render.ts in RunView's style) above an input box.
 *
 * Keys in the input box: Enter sends, Shift+Enter starts a new line, Esc stops the reply, Up
 * in an empty box recalls the last message. Key events stay inside the box (they do not reach
 * JupyterLab's notebook shortcuts). A status bar above the box says how the live turn goes (or
 * how the last one ended), with Retry after a failed turn and Regenerate after another one:
 * both send the last turn's message again.
 */

import type { Attachment, ChatEvent, ChatState } from "./chat_state";
import { emptyLiveBatch, foldLive, type LiveBatch } from "./live";
import { Announcer } from "./announce";
import { makeContext, RunRenderer, type RenderContext } from "./render";
import { failed, installStatusCss, StatusBar } from "./status_bar";
import { button, el } from "./toolkit/dom";
import { animationFrames, FrameBatch, Ticker, type Clock, type Scheduler } from "./toolkit/frames";
import { fileIds, type ViewState } from "./view_state";

/** Files larger than this (all of a message's together) are refused: the notebook's
 * websocket would drop the message. */
export const MAX_ATTACHMENT_BYTES = 8 * 1024 * 1024;

/** What the view asks of the kernel. */
export interface ChatActions {
  send(text: string, files: Attachment[]): void;
  stop(): void;
}

export interface ViewOptions {
  doc?: Document;
  attachments?: boolean;
  /** The attach button's tooltip: what the files are for. */
  attachTitle?: string;
  placeholder?: string;
  busy?: boolean;
  queued?: string[];
  /** Unix time in seconds (the elapsed time of a running turn). */
  now?: () => number;
  /** When the view draws what changed (animation frames by default). */
  frames?: Scheduler;
  /** What ticks the elapsed time of a running turn (setInterval by default). */
  clock?: Clock;
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

/** What the view re-renders at its next frame: the live turn's batch, and the conversation. */
interface ChatBatch extends LiveBatch {
  conversation: "none" | "append" | "full";
}

function emptyChatBatch(): ChatBatch {
  return { ...emptyLiveBatch(), conversation: "none" };
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
  readonly status: StatusBar;
  private infoNote = "";
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
  private readonly frames: FrameBatch<ChatBatch>;
  private readonly ticker: Ticker;

  constructor(
    el_: HTMLElement,
    readonly state: ChatState,
    private readonly actions: ChatActions,
    options: ViewOptions = {},
  ) {
    const doc = (this.doc = options.doc ?? el_.ownerDocument);
    this.ctx = makeContext({ doc, images: state.images, open: state.open, now: options.now });
    this.frames = new FrameBatch(emptyChatBatch, (batch) => this.draw(batch), options.frames ?? animationFrames(doc.defaultView));
    this.ticker = new Ticker(() => this.onTick(), options.clock);
    this.root = el(doc, "div", "ipa-chat", { testId: "ipa-chat" });
    this.ctx.announcer = new Announcer(this.root);
    this.log = el(doc, "div", "ipa-chat-log", { testId: "ipa-chat-log" });
    this.conversation = el(doc, "div", "ipa-chat-conversation");
    this.historyBox = el(doc, "div", "ipa-chat-history", { testId: "ipa-chat-history" });
    this.historyRenderer = new RunRenderer(this.historyBox, this.ctx);
    this.liveBox = el(doc, "div", "ipa-chat-turn ipa-chat-live", { testId: "ipa-chat-live" });
    this.log.append(this.historyBox, this.conversation, this.liveBox);
    this.queuedBox = el(doc, "div", "ipa-chat-queued", { testId: "ipa-chat-queued" });
    installStatusCss(doc);
    this.status = new StatusBar(doc);

    const composer = el(doc, "div", "ipa-chat-composer");
    this.filesBox = el(doc, "div", "ipa-chat-files", { testId: "ipa-chat-files" });
    this.note = el(doc, "div", "ipa-chat-note", { testId: "ipa-chat-note" });
    const row = el(doc, "div", "ipa-chat-row");
    this.input = el(doc, "textarea", "ipa-chat-input", { testId: "ipa-chat-input" });
    this.input.rows = 1;
    this.input.setAttribute("aria-label", "Message to the assistant");
    this.input.placeholder = options.placeholder ?? "Message… (Enter sends, Shift+Enter: new line)";
    this.input.value = state.draft;
    this.fileInput = el(doc, "input", "ipa-chat-file", { testId: "ipa-chat-file" });
    this.fileInput.type = "file";
    this.fileInput.multiple = true;
    this.fileInput.hidden = true;
    this.attachButton = button(doc, "ipa-chat-attach", "Attach", options.attachTitle || "Attach files for the code interpreter", "ipa-chat-attach");
    this.attachButton.hidden = !options.attachments;
    this.sendButton = button(doc, "ipa-chat-send", "Send", "Send (Enter)", "ipa-chat-send");
    this.stopButton = button(doc, "ipa-chat-stop", "Stop", "Stop the reply", "ipa-chat-stop");
    row.append(this.attachButton, this.fileInput, this.input, this.sendButton, this.stopButton);
    composer.append(this.filesBox, row, this.note);
    this.root.append(this.log, this.status.root, this.queuedBox, composer);
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
    if (event.key === "Escape" && this.busy) {
      event.preventDefault();
      this.stop();
      return;
    }
    if (event.key === "ArrowUp" && !this.input.value && this.state.sent.length) {
      // Up in an empty box: the last message sent, to edit and send again.
      event.preventDefault();
      this.setDraft(this.state.sent[this.state.sent.length - 1]);
      return;
    }
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
    this.state.sent.push(text);
    this.input.value = "";
    this.state.draft = "";
    this.state.files = [];
    this.note.textContent = "";
    this.renderFiles();
    this.fit();
    this.updateButtons();
  }

  /** Show `text` in the box (and keep it as the draft). */
  setDraft(text: string): void {
    this.input.value = text;
    this.state.draft = text;
    this.fit();
    this.updateButtons();
  }

  stop(): void {
    if (!this.busy || this.stopping) return;
    this.stopping = true;
    this.actions.stop();
    this.updateButtons();
  }

  /** The text of the last turn's message (what Retry and Regenerate send again). */
  lastMessage(): string | null {
    const turn = this.state.turns[this.state.turns.length - 1];
    const user = turn?.items.find((item) => item.kind === "message" && item.role === "user");
    if (!user || user.kind !== "message") return null;
    const first = user.blocks[0];
    return first && first.type === "text" && first.text.trim() ? first.text : null;
  }

  /** Send the last turn's message again. */
  retry(): void {
    const text = this.lastMessage();
    if (text === null || this.busy) return;
    this.actions.send(text, []);
  }

  /** Show a quiet line above the status (which model was chosen by default). */
  setNote(note: string): void {
    this.infoNote = note;
    this.renderStatus();
  }

  /** The status bar: the live turn's, else the last finished turn's. */
  private renderStatus(): void {
    const live = this.state.live;
    const last = this.state.turns[this.state.turns.length - 1] ?? null;
    const state = live ? live.state : last;
    const canRetry = !live && !this.busy && this.lastMessage() !== null;
    this.status.render({
      state,
      live: live !== null,
      note: this.infoNote,
      retry: canRetry && state !== null && failed(state) ? () => this.retry() : null,
      stop: null,
      now: this.ctx.now(),
    });
    if (canRetry && state !== null && !failed(state)) {
      const again = button(this.doc, "ipa-status-regenerate", "Regenerate", "Send the last message again", "ipa-status-regenerate");
      again.setAttribute("aria-label", "Regenerate");
      again.addEventListener("click", () => this.retry());
      const line = this.status.root.querySelector(".ipa-status-line") ?? this.status.root;
      line.append(again);
      this.status.root.hidden = false;
    }
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
        const chip = el(this.doc, "span", "ipa-chat-chip", { testId: "ipa-chat-chip" });
        chip.textContent = `${file.name} (${formatBytes(file.data.byteLength)})`;
        const remove = button(this.doc, "ipa-chat-chip-remove", "×", `Remove ${file.name}`, "ipa-chat-chip-remove");
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
    this.renderStatus();
  }

  setAttachments(on: boolean): void {
    this.attachButton.hidden = !on;
  }

  setAttachTitle(title: string): void {
    if (title) this.attachButton.title = title;
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
    if (event.kind === "draft") {
      this.setDraft(this.state.draft);
      return;
    }
    this.frames.add((batch) => {
      if (event.kind !== "conversation") foldLive(batch, event);
      else batch.conversation = event.full || batch.conversation === "full" ? "full" : "append";
    });
  }

  /** Apply what changed since the last frame (one re-render per frame while streaming). */
  private draw(p: ChatBatch): void {
    const stick = this.atEnd();
    if (p.conversation !== "none") this.renderConversation(p.conversation === "full");
    if (p.reset) this.renderLive();
    else if (p.changes && this.liveRenderer && this.state.live) this.liveRenderer.update(this.state.live.state, p.changes);
    if (p.images.length) this.refreshImages(p.images);
    this.renderStatus();
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
      const box = el(this.doc, "div", "ipa-chat-turn", { testId: "ipa-chat-turn" });
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

  private refreshImages(arrived: string[]): void {
    // Finished turns are few and small: re-render the ones that show these images.
    const wanted = new Set(arrived);
    const shows = (state: ViewState): boolean => fileIds(state).some((id) => wanted.has(id));
    if (shows(this.state.history)) this.historyRenderer.render(this.state.history);
    this.state.turns.forEach((turn, i) => {
      const box = this.turnBoxes[i];
      if (box && shows(turn)) new RunRenderer(box, this.ctx).render(turn);
    });
    if (this.liveRenderer && this.state.live) this.liveRenderer.refreshImages(this.state.live.state, arrived);
  }

  /** The elapsed time of the live run ticks once a second. */
  private tick(): void {
    this.ticker.run(this.state.live !== null && RunRenderer.ticking(this.state.live.state));
  }

  /** Redraw the live run bar (or stop ticking, once no turn is live). */
  private onTick(): void {
    const live = this.state.live;
    if (this.liveRenderer && live) {
      this.liveRenderer.renderRun(live.state);
      this.renderStatus();
    } else this.tick();
  }

  private atEnd(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
  }

  private scrollToEnd(): void {
    this.log.scrollTop = this.log.scrollHeight;
  }

  dispose(): void {
    this.unsubscribe();
    this.frames.dispose();
    this.ticker.dispose();
    this.ctx.announcer?.dispose();
    this.root.remove();
  }
}
