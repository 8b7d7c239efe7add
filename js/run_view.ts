/**
 * The anywidget module of `ipyassistant.jupyter.RunView`.
 *
 * `initialize` (once per model) creates the model's live state and feeds it the kernel's
 * messages; `render` (once per view) draws the live state and follows it (the binding is in
 * toolkit/model.ts). Rendering itself is in render.ts, the state and its ops in view_state.ts.
 */

import type { AnyModel } from "@anywidget/types";

import { Announcer } from "./announce";
import { followApprovals } from "./approval";
import { emptyLiveBatch, foldLive, LiveState, type LiveBatch } from "./live";
import { makeContext, RunRenderer } from "./render";
import { installStatusCss, running, StatusBar } from "./status_bar";
import { el as element } from "./toolkit/dom";
import { animationFrames, FrameBatch, Ticker } from "./toolkit/frames";
import { frontend } from "./toolkit/frontend";
import { defineWidget, onTraits } from "./toolkit/model";
import type { ViewState } from "./view_state";

export type { Block, Changes, Item, Op, RunInfo, ViewError, ViewState } from "./view_state";

/** The synced traits of the Python `RunView` widget. */
export interface RunViewModel {
  /** The finished view state (written by the kernel when a stream ends). */
  state: ViewState;
  /** Image bytes by file id (binary buffers, as DataViews). */
  images: Record<string, DataView>;
  /** Identifies the model's live state among the page's models. */
  _uid: string;
  /** A quiet line above the run (which model was chosen by default). */
  note: string;
  /** Whether Retry is offered (a failed run the kernel can say again). */
  retryable: boolean;
}

/**
 * Draw `live` into `el` under a status bar and follow it; returns what stops following it.
 * Esc in the view, or the bar's Stop, interrupts the kernel when the front end can (the cell
 * is busy with the run: the kernel reads no message until it ends).
 */
function follow(live: LiveState, model: AnyModel<RunViewModel>, el: HTMLElement): () => void {
  const doc = el.ownerDocument;
  installStatusCss(doc);
  const ctx = makeContext({ doc, images: live.images, open: live.open });
  const bar = new StatusBar(doc);
  const content = element(doc, "div");
  const approvals = element(doc, "div");
  el.classList.add("ipa-live-view");
  el.replaceChildren(bar.root, content, approvals);
  const renderer = new RunRenderer(content, ctx);
  const announcer = (ctx.announcer = new Announcer(el));
  renderer.render(live.state);

  const canStop = (): boolean => typeof frontend()?.interruptKernel === "function";
  const stop = (): void => void frontend()?.interruptKernel?.(el);
  const retry = (): void => {
    model.set("retryable", false);
    model.send({ type: "retry" });
  };
  const status = (): void =>
    bar.render({
      state: live.state,
      live: !live.state.run || running(live.state, true),
      note: model.get("note"),
      retry: model.get("retryable") ? retry : null,
      stop: canStop() ? stop : null,
      now: ctx.now(),
    });
  const onKey = (event: KeyboardEvent): void => {
    if (event.key !== "Escape" || !running(live.state, true) || !canStop()) return;
    event.stopPropagation();
    stop();
  };
  el.addEventListener("keydown", onKey);
  const offTraits = onTraits(model, { note: status, retryable: status });
  const offApprovals = followApprovals(model, approvals);

  // The elapsed time of a running run ticks once a second.
  const ticker = new Ticker(status);
  const tick = (): void => ticker.run(running(live.state, true));

  // Re-render at most once per animation frame: markdown is re-parsed per render.
  const draw = ({ reset, changes, images }: LiveBatch): void => {
    if (reset) renderer.render(live.state);
    else if (changes) renderer.update(live.state, changes);
    if (images.length && !reset) renderer.refreshImages(live.state, images);
    status();
    tick();
  };
  const frames = new FrameBatch(emptyLiveBatch, draw, animationFrames(el.ownerDocument.defaultView));
  const unsubscribe = live.subscribe((event) => frames.add((batch) => foldLive(batch, event)));
  status();
  tick();

  return () => {
    el.removeEventListener("keydown", onKey);
    offTraits();
    offApprovals();
    unsubscribe();
    frames.dispose();
    ticker.dispose();
    announcer.dispose();
  };
}

export default defineWidget<RunViewModel, LiveState>({
  create: (model) => new LiveState(model.get("state"), model.get("images")),
  traits: (live) => ({
    state: (state) => live.replace(state),
    images: (images) => live.setImages(images ?? {}),
  }),
  view: (live, model, el) => follow(live, model, el),
});
