/**
 * The JupyterLab MIME renderer of saved views (`application/vnd.ipyassistant.view+json`).
 *
 * A finished run's output carries only the saved view: it is drawn from the notebook's data,
 * with or without a kernel. A ChatPanel's output, and a failed run's (its live view offers
 * Retry), carry the widget view too; this renderer
 * ranks before the widget renderer, draws the saved conversation at once, and swaps in the
 * live widget when the notebook's widget manager has its model with a live comm. A model that
 * is gone (a new kernel) or restored from saved widget state without a kernel keeps the saved
 * conversation, with a note instead of an input box that would drop what is typed.
 */

import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
import { Panel, Widget } from "@lumino/widgets";

import { isSavedView, renderSaved, VIEW_MIME } from "../saved_view";

const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";

/** Shown under a ChatPanel whose kernel is not the one that made it. */
export const DISCONNECTED = "Kernel restarted: run this cell again to continue the chat.";

interface WidgetManagerLike {
  get_model(id: string): Promise<{ comm_live?: boolean }>;
}

interface RendermimeLike {
  getFactory(mime: string): unknown;
  createRenderer(mime: string): IRenderMime.IRenderer;
}

/** The notebook's rendermime (it has the widget renderer), from the renderer's ancestors. */
function rendermimeOf(widget: Widget): RendermimeLike | null {
  for (let w: Widget | null = widget.parent; w; w = w.parent) {
    const rm = (w as unknown as { rendermime?: RendermimeLike }).rendermime;
    if (rm && typeof rm.getFactory === "function" && rm.getFactory(WIDGET_MIME)) return rm;
  }
  return null;
}

class SavedViewRenderer extends Panel implements IRenderMime.IRenderer {
  private readonly saved = new Widget();
  private release: (() => void) | null = null;
  private pending: IRenderMime.IMimeModel | null = null;
  private live: IRenderMime.IRenderer | null = null;
  private liveId: string | null = null;

  constructor() {
    super();
    this.addClass("ipa-saved-output");
    this.addWidget(this.saved);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[VIEW_MIME];
    if (!isSavedView(data)) {
      this.saved.node.textContent = "ipyassistant: this output's saved view is not readable.";
      return;
    }
    const widgetData = model.data[WIDGET_MIME] as { model_id?: string } | undefined;
    // A finished turn rewrites the output (same display id): the live widget stays.
    if (this.live && this.liveId === widgetData?.model_id) return;
    this.release?.();
    // Any output that still carries a widget view (a ChatPanel, a failed run offering Retry)
    // goes live when its model does; only a chat says the kernel is gone when it does not.
    const widget = typeof widgetData?.model_id === "string";
    const chat = data.kind === "chat" && widget;
    this.release = renderSaved(data, this.saved.node, chat ? DISCONNECTED : undefined);
    if (widget) {
      // Until the live widget is found, the note would say the kernel is gone: hide it.
      this.saved.node.querySelector<HTMLElement>(".ipa-chat-disconnected")?.setAttribute("hidden", "");
      this.pending = model;
      if (this.isAttached) void this.goLive();
    }
  }

  protected onAfterAttach(msg: Parameters<Panel["onAfterAttach"]>[0]): void {
    super.onAfterAttach(msg);
    if (this.pending) void this.goLive();
  }

  /** Swap in the live widget if its model is alive; else show the note. */
  private async goLive(): Promise<void> {
    const model = this.pending;
    this.pending = null;
    if (!model) return;
    const rm = rendermimeOf(this);
    const widgetData = model.data[WIDGET_MIME] as { model_id: string };
    let live = false;
    if (rm) {
      const renderer = rm.createRenderer(WIDGET_MIME);
      const manager = await (renderer as unknown as { _manager?: { promise: Promise<WidgetManagerLike> } })._manager?.promise;
      try {
        const found = manager ? await manager.get_model(widgetData.model_id) : null;
        live = !!found && found.comm_live !== false;
      } catch {
        live = false; // no such model: a new kernel
      }
      if (live && !this.isDisposed) {
        await renderer.renderModel({ ...model, data: { [WIDGET_MIME]: widgetData } } as IRenderMime.IMimeModel);
        this.live?.dispose();
        this.live = renderer;
        this.liveId = widgetData.model_id;
        // Only one conversation on the page: the saved one goes.
        this.release?.();
        this.release = null;
        this.saved.node.replaceChildren();
        this.saved.hide();
        this.addWidget(renderer);
        return;
      }
      renderer.dispose();
    }
    this.saved.node.querySelector<HTMLElement>(".ipa-chat-disconnected")?.removeAttribute("hidden");
  }

  dispose(): void {
    this.release?.();
    this.release = null;
    super.dispose();
  }
}

const extension: IRenderMime.IExtension = {
  id: "ipyassistant-widgets:saved-view",
  // Before the widget renderer (-10 in notebooks): a ChatPanel's output is drawn here.
  rank: -20,
  rendererFactory: {
    safe: true,
    mimeTypes: [VIEW_MIME],
    createRenderer: () => new SavedViewRenderer(),
  },
  dataType: "json",
  documentWidgetFactoryOptions: [],
};

export default extension;
