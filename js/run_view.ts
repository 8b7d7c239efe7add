/**
 * The anywidget module of `ipyassistant.jupyter.RunView`.
 *
 * `initialize` (once per model) creates the model's live state and feeds it the kernel's
 * messages; `render` (once per view) draws the live state and follows it. Rendering itself is
 * in render.ts, the state and its ops in view_state.ts.
 */

import type { AnyModel, Initialize, Render } from "@anywidget/types";

import { LiveState } from "./live";
import { makeContext, RunRenderer } from "./render";
import type { Changes } from "./view_state";

export type { Block, Changes, Item, Op, RunInfo, ViewError, ViewState } from "./view_state";

/** The synced traits of the Python `RunView` widget. */
export interface RunViewModel {
  /** The finished view state (written by the kernel when a stream ends). */
  state: import("./view_state").ViewState;
  /** Image bytes by file id (binary buffers, as DataViews). */
  images: Record<string, DataView>;
  /** Identifies the model's live state among the page's models. */
  _uid: string;
}

type Model = AnyModel<RunViewModel>;

// The live state of each model, for its views. anywidget gives `initialize` and `render`
// different proxies of the same model, so they meet through the model's `_uid` (per widget
// manager: two notebooks showing saved copies of one widget keep two states).
const LIVE = new WeakMap<object, Map<string, LiveState>>();

function liveOf(model: Model, create: boolean): LiveState | undefined {
  const key = (model.widget_manager ?? LIVE) as object;
  let byUid = LIVE.get(key);
  if (!byUid) {
    byUid = new Map();
    LIVE.set(key, byUid);
  }
  const uid = model.get("_uid");
  let live = byUid.get(uid);
  if (!live && create) {
    live = new LiveState(model.get("state"), model.get("images"));
    byUid.set(uid, live);
  }
  return live;
}

function forget(model: Model, live: LiveState): void {
  const byUid = LIVE.get((model.widget_manager ?? LIVE) as object);
  if (byUid?.get(model.get("_uid")) === live) byUid.delete(model.get("_uid"));
  live.dispose();
}

function attach(model: Model, live: LiveState): () => void {
  const onMessage = (msg: unknown, buffers: DataView[]): void => live.receive(msg, buffers);
  const onState = (): void => live.replace(model.get("state"));
  const onImages = (): void => live.setImages(model.get("images") ?? {});
  model.on("msg:custom", onMessage);
  model.on("change:state", onState);
  model.on("change:images", onImages);
  // A model made while a stream runs (a reloaded page) starts from the last synced state;
  // the kernel answers with its live state once it is free (null when nothing is newer).
  model.send({ type: "snapshot?" });
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:state", onState);
    model.off("change:images", onImages);
  };
}

const initialize: Initialize<RunViewModel> = ({ model }) => {
  const live = liveOf(model, true) as LiveState;
  const detach = attach(model, live);
  return () => {
    detach();
    forget(model, live);
  };
};

const render: Render<RunViewModel> = ({ model, el }) => {
  // Without `initialize` (an older anywidget), the view keeps a live state of its own.
  let own: (() => void) | undefined;
  let live = liveOf(model, false);
  if (!live) {
    live = new LiveState(model.get("state"), model.get("images"));
    const detach = attach(model, live);
    const mine = live;
    own = () => {
      detach();
      mine.dispose();
    };
  }
  const state = live;
  const ctx = makeContext({ doc: el.ownerDocument, images: state.images, open: state.open });
  const renderer = new RunRenderer(el, ctx);
  renderer.render(state.state);

  // Batch re-renders to one per animation frame: markdown is re-parsed per render.
  const win = el.ownerDocument.defaultView;
  let pending: Changes | "reset" | null = null;
  let pendingImages: string[] = [];
  let frame = 0;
  const draw = (): void => {
    frame = 0;
    const todo = pending;
    const images = pendingImages;
    pending = null;
    pendingImages = [];
    if (todo === "reset") renderer.render(state.state);
    else if (todo) renderer.update(state.state, todo);
    if (images.length && todo !== "reset") renderer.refreshImages(state.state, images);
    tick();
  };
  const schedule = (): void => {
    if (frame) return;
    frame = win?.requestAnimationFrame ? win.requestAnimationFrame(draw) : (setTimeout(draw, 16) as unknown as number);
  };
  const unsubscribe = state.subscribe((event) => {
    if (event.kind === "reset") pending = "reset";
    else if (event.kind === "images") pendingImages.push(...event.fileIds);
    else if (pending !== "reset") {
      if (pending === null) pending = { run: false, error: false, items: new Set(), added: false };
      pending.run ||= event.changes.run;
      pending.error ||= event.changes.error;
      pending.added ||= event.changes.added;
      for (const id of event.changes.items) pending.items.add(id);
    }
    schedule();
  });

  // The elapsed time of a running run ticks once a second.
  let clock: ReturnType<typeof setInterval> | undefined;
  const tick = (): void => {
    const running = RunRenderer.ticking(state.state);
    if (running && clock === undefined) {
      clock = setInterval(() => renderer.renderRun(state.state), 1000);
    } else if (!running && clock !== undefined) {
      clearInterval(clock);
      clock = undefined;
    }
  };
  tick();

  return () => {
    unsubscribe();
    if (frame) {
      if (win?.cancelAnimationFrame) win.cancelAnimationFrame(frame);
      else clearTimeout(frame);
    }
    if (clock !== undefined) clearInterval(clock);
    own?.();
    el.replaceChildren();
  };
};

export default { initialize, render };
