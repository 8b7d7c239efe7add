/**
 * The anywidget module of `ipyassistant.jupyter.ChatPanel`: a conversation (the thread's
 * history, then one turn per message sent) above an input box.
 *
 * The kernel's messages and traits (see the Python module's docstring) feed a `ChatState`
 * (chat_state.ts), one per model and shared by its views (made in anywidget's `initialize`,
 * bound as in toolkit/model.ts); a `ChatView` (chat_view.ts) draws it and follows it. Both
 * can be tested without Jupyter.
 */

import type { AnyModel } from "@anywidget/types";

import { followApprovals } from "./approval";
import { ChatState } from "./chat_state";
import { ChatView, type ChatActions } from "./chat_view";
import { defineWidget, onTraits } from "./toolkit/model";
import type { ViewState } from "./view_state";

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
  /** What attached files are for (the attach button's tooltip). */
  attach_title: string;
  placeholder: string;
  /** A quiet line above the status (which model was chosen by default). */
  note: string;
  _uid: string;
}

type Model = AnyModel<ChatPanelModel>;

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

/** A view of `state` in `host`, following the traits that only concern views. */
function view(state: ChatState, model: Model, host: HTMLElement): () => void {
  const chat = new ChatView(host, state, modelActions(model), {
    attachments: model.get("attachments"),
    attachTitle: model.get("attach_title"),
    placeholder: model.get("placeholder"),
    busy: model.get("busy"),
    queued: model.get("queued") ?? [],
  });
  chat.setNote(model.get("note") ?? "");
  // A call waiting for approval shows its card above the status bar.
  const approvals = chat.root.ownerDocument.createElement("div");
  chat.root.insertBefore(approvals, chat.status.root);
  const offApprovals = followApprovals(model, approvals);
  const offTraits = onTraits(model, {
    busy: (busy) => chat.setBusy(busy),
    queued: (queued) => chat.setQueued(queued ?? []),
    attachments: (on) => chat.setAttachments(on),
    attach_title: (title) => chat.setAttachTitle(title),
    placeholder: (text) => chat.setPlaceholder(text),
    note: (note) => chat.setNote(note ?? ""),
  });
  return () => {
    offTraits();
    offApprovals();
    chat.dispose();
  };
}

export default defineWidget<ChatPanelModel, ChatState>({
  create: (model) => new ChatState(model.get("history"), model.get("turns"), model.get("images")),
  traits: (state) => ({
    history: (history) => state.setHistory(history),
    turns: (turns) => state.setTurns(turns),
    images: (images) => state.setImages(images ?? {}),
  }),
  view,
});
