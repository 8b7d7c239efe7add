/**
 * The live state of one widget model, shared by all its views.
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
 */

import { ImageStore, toBytes } from "./render";
import { applyOps, cloneState, emptyState, noChanges, type Changes, type Op, type ViewState } from "./view_state";

export type Listener = (event: { kind: "reset" } | { kind: "ops"; changes: Changes } | { kind: "images"; fileIds: string[] }) => void;

export type KernelMessage =
  | { type: "patch"; ops: Op[] }
  | { type: "image"; file_id: string }
  | { type: "snapshot"; state: ViewState | null; images?: string[] };

type Buffer = DataView | ArrayBuffer | ArrayBufferView;

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

  private emit(event: Parameters<Listener>[0]): void {
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
      const ids = Array.isArray(msg.images) ? msg.images : [];
      ids.forEach((id, i) => buffers[i] && this.images.set(id, toBytes(buffers[i])));
      if (isViewState(msg.state)) this.replace(msg.state);
      else if (ids.length) this.emit({ kind: "images", fileIds: ids });
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
    if (changed.length) this.emit({ kind: "images", fileIds: changed });
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
