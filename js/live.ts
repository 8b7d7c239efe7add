/**
 * The live state of one stream: a view state, the images it shows and which of its cards are
 * open, shared by all the views of a model. RunView keeps one per model; ChatPanel keeps one
 * for its streaming turn.
 *
 * It is made in anywidget's `initialize` (once per model, before any comm message is handled)
 * so that no patch is lost between the model's creation and its first view. It applies the
 * kernel's messages:
 *
 * - `{type: "patch", ops}`: ops to apply (see view_state.ts);
 * - `{type: "image", file_id}` + one buffer: the bytes of an image;
 * - `{type: "snapshot", state, images}` + buffers: the kernel's live state (null: the synced
 *   `state` trait is current), the answer to the `{type: "snapshot?"}` it sends when created;
 * - a change of the `state` or `images` trait (written by the kernel when a stream ends).
 *
 * `LiveBatch` and `foldLive` fold its events into what a view re-renders at the next frame.
 */

import { ImageStore, toBytes } from "./render";
import {
  applyOps,
  cloneState,
  emptyState,
  mergeChanges,
  noChanges,
  type Changes,
  type Op,
  type ViewState,
} from "./view_state";

/** What happened to a live state: replaced whole, changed by ops, or images arrived. */
export type LiveEvent = { kind: "reset" } | { kind: "ops"; changes: Changes } | { kind: "images"; fileIds: string[] };

export type Listener = (event: LiveEvent) => void;

export type KernelMessage =
  | { type: "patch"; ops: Op[] }
  | { type: "image"; file_id: string }
  | { type: "snapshot"; state: ViewState | null; images?: string[] };

export type Buffer = DataView | ArrayBuffer | ArrayBufferView;

export class LiveState {
  state: ViewState;
  readonly images = new ImageStore();
  /** Which cards the user opened or closed, by item id: shared by the model's views. */
  readonly open = new Map<string, boolean>();
  private listeners = new Set<Listener>();

  constructor(state: ViewState | null | undefined, images?: Record<string, Buffer> | null) {
    this.state = isViewState(state) ? cloneState(state) : emptyState();
    if (images) this.setImages(images);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: LiveEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Handle one custom message from the kernel. */
  receive(message: unknown, buffers: Buffer[] = []): void {
    const msg = message as KernelMessage;
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "patch" && Array.isArray(msg.ops)) {
      this.apply(msg.ops);
    } else if (msg.type === "image" && typeof msg.file_id === "string" && buffers.length > 0) {
      if (this.images.set(msg.file_id, toBytes(buffers[0]))) {
        this.emit({ kind: "images", fileIds: [msg.file_id] });
      }
    } else if (msg.type === "snapshot") {
      const ids = this.storeImages(msg.images, buffers);
      if (isViewState(msg.state)) this.replace(msg.state);
      else if (ids.length) this.imagesArrived(ids);
    }
  }

  apply(ops: Op[]): Changes {
    const changes = applyOps(this.state, ops, noChanges());
    this.emit({ kind: "ops", changes });
    return changes;
  }

  /** Show `state` from now on (a snapshot, or the synced trait when a stream ended). */
  replace(state: ViewState): void {
    this.state = cloneState(state);
    this.emit({ kind: "reset" });
  }

  /** Take the bytes of the `images` trait. */
  setImages(images: Record<string, Buffer>): void {
    const changed: string[] = [];
    for (const [id, buffer] of Object.entries(images)) {
      if (buffer && this.images.set(id, toBytes(buffer))) changed.push(id);
    }
    if (changed.length) this.imagesArrived(changed);
  }

  /**
   * Keep the bytes of a snapshot's images (the i-th buffer is the i-th id's) without telling
   * the views yet; returns the ids, for `imagesArrived` once the snapshot is applied.
   */
  storeImages(ids: unknown, buffers: Buffer[]): string[] {
    const list = Array.isArray(ids) ? (ids as string[]) : [];
    list.forEach((id, i) => buffers[i] && this.images.set(id, toBytes(buffers[i])));
    return list;
  }

  /** Tell the views that these images' bytes arrived. */
  imagesArrived(fileIds: string[]): void {
    this.emit({ kind: "images", fileIds });
  }

  dispose(): void {
    this.listeners.clear();
    this.images.dispose();
  }
}

export function isViewState(value: unknown): value is ViewState {
  return (
    typeof value === "object" &&
    value !== null &&
    Array.isArray((value as ViewState).items)
  );
}

/** What a view re-renders at its next frame, from the live state's events since the last. */
export interface LiveBatch {
  /** The state was replaced: render it whole (the changes before are moot). */
  reset: boolean;
  /** What ops changed, when not reset. */
  changes: Changes | null;
  /** Images whose bytes arrived. */
  images: string[];
}

export function emptyLiveBatch(): LiveBatch {
  return { reset: false, changes: null, images: [] };
}

/** Fold one event of a live state into `batch`. */
export function foldLive(batch: LiveBatch, event: LiveEvent): void {
  if (event.kind === "reset") {
    batch.reset = true;
    batch.changes = null;
  } else if (event.kind === "images") {
    batch.images.push(...event.fileIds);
  } else if (!batch.reset) {
    batch.changes = mergeChanges(batch.changes ?? noChanges(), event.changes);
  }
}
