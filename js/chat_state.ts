/**
 * What a ChatPanel model shows, shared by its views: the thread's history, the finished turns,
 * the turn that is streaming, the images of them all, and what the user typed and did not send.
 *
 * The streaming turn is a `LiveState` (live.ts), as a RunView's run is: the kernel's patches
 * and images go to it. The messages of the panel's kernel side (see the Python module's
 * docstring) add which turn streams:
 *
 * - `{type: "live", turn, state}`: turn `turn` starts streaming from `state` (null: it ended);
 * - `{type: "patch", ops}`, `{type: "image", file_id}`: as for a RunView, for the live turn;
 * - `{type: "snapshot", live, images}`: the answer to `{type: "snapshot?"}`.
 */

import { isViewState, LiveState, type Buffer, type LiveEvent } from "./live";
import type { ImageStore } from "./render";
import { cloneState, emptyState, type Op, type ViewState } from "./view_state";

/** The turn that is streaming: its index among the turns, and its view state. */
export interface LiveTurn {
  turn: number;
  state: ViewState;
}

export type PanelMessage =
  | { type: "live"; turn: number; state: ViewState | null }
  | { type: "patch"; ops: Op[] }
  | { type: "image"; file_id: string }
  | { type: "snapshot"; live: LiveTurn | null; images?: string[] }
  | { type: "unsent"; texts: string[] };

/** A file picked for the next message. */
export interface Attachment {
  name: string;
  data: ArrayBuffer;
}

/**
 * What changed: the conversation (`full`: rebuild it, else turns were appended), or the live
 * turn (a `reset` when it started, ended or was replaced; its ops; images anywhere).
 */
export type ChatEvent = { kind: "conversation"; full: boolean } | { kind: "draft" } | LiveEvent;

function viewStates(turns: unknown): ViewState[] {
  return Array.isArray(turns) ? turns.filter(isViewState).map(cloneState) : [];
}

/** What a model shows: the conversation, the live turn, images, and the unsent input. */
export class ChatState {
  history: ViewState;
  turns: ViewState[];
  /** The streaming turn's state; its images are every turn's. */
  private readonly stream: LiveState;
  /** The index of the streaming turn (null: none streams). */
  private liveTurn: number | null = null;
  /** The text typed and not sent: kept when a view is rendered again. */
  draft = "";
  /** The files picked and not sent. */
  files: Attachment[] = [];
  /** The texts sent from this model's views, oldest first (Up in an empty box recalls them). */
  sent: string[] = [];
  private listeners = new Set<(event: ChatEvent) => void>();

  constructor(history: unknown, turns: unknown, images?: Record<string, Buffer> | null) {
    this.history = isViewState(history) ? cloneState(history) : emptyState();
    this.turns = viewStates(turns);
    this.stream = new LiveState(null, images);
  }

  /** The image bytes of the history and of every turn. */
  get images(): ImageStore {
    return this.stream.images;
  }

  /** Which cards the user opened or closed, by item id. */
  get open(): Map<string, boolean> {
    return this.stream.open;
  }

  /** The streaming turn, or null. */
  get live(): LiveTurn | null {
    return this.liveTurn === null ? null : { turn: this.liveTurn, state: this.stream.state };
  }

  subscribe(listener: (event: ChatEvent) => void): () => void {
    this.listeners.add(listener);
    const unsubscribe = this.stream.subscribe(listener);
    return () => {
      this.listeners.delete(listener);
      unsubscribe();
    };
  }

  private emit(event: ChatEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  setHistory(history: unknown): void {
    this.history = isViewState(history) ? cloneState(history) : emptyState();
    this.emit({ kind: "conversation", full: true });
  }

  setTurns(turns: unknown): void {
    const next = viewStates(turns);
    const full = next.length < this.turns.length;
    this.turns = next;
    this.emit({ kind: "conversation", full });
    // The live turn is over once the kernel has written it among the turns.
    if (this.liveTurn !== null && this.liveTurn < this.turns.length) this.setLive(null);
  }

  setImages(images: Record<string, Buffer>): void {
    this.stream.setImages(images ?? {});
  }

  /** Handle one custom message from the kernel. */
  receive(message: unknown, buffers: Buffer[] = []): void {
    const msg = message as PanelMessage;
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "live") {
      this.setLive(isViewState(msg.state) ? { turn: msg.turn, state: msg.state } : null);
    } else if (msg.type === "patch" || msg.type === "image") {
      // Patches between two turns have nothing to apply to.
      if (msg.type === "image" || this.liveTurn !== null) this.stream.receive(msg, buffers);
    } else if (msg.type === "unsent" && Array.isArray(msg.texts)) {
      // Stop dropped queued messages: their words go back in the box, before what is typed.
      this.draft = [...msg.texts, this.draft].filter((t) => t.trim()).join("\n\n");
      this.emit({ kind: "draft" });
    } else if (msg.type === "snapshot") {
      const ids = this.stream.storeImages(msg.images, buffers);
      const live = msg.live && isViewState(msg.live.state) ? msg.live : null;
      if (live || this.liveTurn !== null) this.setLive(live);
      if (ids.length) this.stream.imagesArrived(ids);
    }
  }

  private setLive(live: LiveTurn | null): void {
    // A turn the kernel has already written among the turns is not live any more.
    const current = live && live.turn >= this.turns.length ? live : null;
    this.liveTurn = current ? current.turn : null;
    this.stream.replace(current ? current.state : emptyState());
  }

  dispose(): void {
    this.listeners.clear();
    this.stream.dispose();
  }
}
