/**
 * Drawing a view from what the notebook saved (`application/vnd.ipyassistant.view+json`, see
 * the Python module `ipyassistant.jupyter.saved`): a finished run, a thread's transcript, or a
 * ChatPanel's conversation, without a kernel. The same renderers as the live widgets draw it
 * (render.ts), so a reopened notebook looks as it did while it ran.
 */

import { makeContext, RunRenderer, ImageStore } from "./render";
import { el } from "./toolkit/dom";
import { isViewState } from "./live";
import type { ViewState } from "./view_state";

/** The MIME type of a saved view. */
export const VIEW_MIME = "application/vnd.ipyassistant.view+json";

/** The JSON a saved view's output carries. */
export interface SavedView {
  version: number;
  /** "run": one state (a run, a thread's transcript); "chat": a ChatPanel's history and turns. */
  kind: "run" | "chat";
  states: ViewState[];
  /** Image bytes by file id, base64. */
  images: Record<string, string>;
  /** The live widget of a ChatPanel, while its kernel lives. */
  model_id?: string;
}

export function isSavedView(value: unknown): value is SavedView {
  const v = value as SavedView;
  return typeof v === "object" && v !== null && Array.isArray(v.states) && v.states.every(isViewState);
}

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The images of a saved view, ready for the renderers. */
export function savedImages(view: SavedView): ImageStore {
  const store = new ImageStore();
  for (const [id, data] of Object.entries(view.images ?? {})) {
    if (typeof data === "string") store.set(id, decodeBase64(data));
  }
  return store;
}

/**
 * Draw `view` into `host`; returns what releases its images. `note` (a ChatPanel whose kernel
 * is gone) says why the conversation cannot go on.
 */
export function renderSaved(view: SavedView, host: HTMLElement, note?: string): () => void {
  const doc = host.ownerDocument;
  const images = savedImages(view);
  const ctx = makeContext({ doc, images });
  const draw = (state: ViewState, into: HTMLElement): HTMLElement => {
    new RunRenderer(into, ctx).render(state);
    return into;
  };
  if (view.kind === "chat") {
    const root = el(doc, "div", "ipa-chat ipa-chat-saved", { testId: "ipa-chat" });
    const log = el(doc, "div", "ipa-chat-log", { testId: "ipa-chat-log" });
    const [history, ...turns] = view.states;
    if (history && history.items.length) log.append(draw(history, el(doc, "div", "ipa-chat-history")));
    for (const [i, turn] of turns.entries()) {
      const box = draw(turn, el(doc, "div", "ipa-chat-turn", { testId: "ipa-chat-turn" }));
      box.dataset.turn = String(i);
      log.append(box);
    }
    root.append(log);
    if (note) {
      const line = el(doc, "div", "ipa-chat-note ipa-chat-disconnected", { testId: "ipa-chat-disconnected" });
      line.setAttribute("role", "status");
      line.textContent = note;
      root.append(line);
    }
    host.replaceChildren(root);
  } else {
    const root = el(doc, "div", "ipa-saved");
    for (const state of view.states) root.append(draw(state, el(doc, "div", "ipa-run-view")));
    host.replaceChildren(root);
  }
  return () => images.dispose();
}
