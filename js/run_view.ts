/**
 * The anywidget module of `ipyassistant.jupyter.RunView`.
 *
 * `initialize` (once per model) creates the model's live state and feeds it the kernel's
 * messages; `render` (once per view) draws the live state and follows it (the binding is in
 * toolkit/model.ts). Rendering itself is in render.ts, the state and its ops in view_state.ts.
 */

import { Announcer } from "./announce";
import { emptyLiveBatch, foldLive, LiveState, type LiveBatch } from "./live";
import { makeContext, RunRenderer } from "./render";
import { animationFrames, FrameBatch, Ticker } from "./toolkit/frames";
import { defineWidget } from "./toolkit/model";
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
}

/** Draw `live` into `el` and follow it; returns what stops following it. */
function follow(live: LiveState, el: HTMLElement): () => void {
  const ctx = makeContext({ doc: el.ownerDocument, images: live.images, open: live.open });
  const renderer = new RunRenderer(el, ctx);
  const announcer = (ctx.announcer = new Announcer(el));
  renderer.render(live.state);

  // The elapsed time of a running run ticks once a second.
  const ticker = new Ticker(() => renderer.renderRun(live.state));
  const tick = (): void => ticker.run(RunRenderer.ticking(live.state));

  // Re-render at most once per animation frame: markdown is re-parsed per render.
  const draw = ({ reset, changes, images }: LiveBatch): void => {
    if (reset) renderer.render(live.state);
    else if (changes) renderer.update(live.state, changes);
    if (images.length && !reset) renderer.refreshImages(live.state, images);
    tick();
  };
  const frames = new FrameBatch(emptyLiveBatch, draw, animationFrames(el.ownerDocument.defaultView));
  const unsubscribe = live.subscribe((event) => frames.add((batch) => foldLive(batch, event)));
  tick();

  return () => {
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
  view: (live, _model, el) => follow(live, el),
});
