/**
 * The JupyterLab plugin of ipyassistant: what the views need from the front end.
 *
 * It gives the views (live widgets and saved views alike, through `globalThis.__ipyassistant`,
 * see toolkit/frontend.ts) "Insert into a new cell": the cell that shows the view is made
 * active and JupyterLab's own `notebook:insert-cell-below` command adds the code below it;
 * and a RunView's Stop and Esc interrupt the kernel of the notebook that shows it.
 *
 * It also carries the widgets' modules (their CSS is the extension's style): each widget's
 * `_esm` is a small loader that takes them from here when the build ids match (see the Python
 * module `ipyassistant.jupyter.module_loader`), so no notebook saves the bundle in its state.
 */

import chatPanel from "../chat_panel";
import runView from "../run_view";
import { setFrontend } from "../toolkit/frontend";

/** The id of the widget bundle built with this extension (esbuild's --define, js/build_id.mjs). */
declare const IPA_BUILD_ID: string;
const BUILD = typeof IPA_BUILD_ID === "string" ? IPA_BUILD_ID : "";

interface CellLike {
  node: HTMLElement;
  model: { sharedModel: { setSource(source: string): void } };
}

interface NotebookLike {
  widgets: readonly CellLike[];
  activeCellIndex: number;
  activeCell: CellLike | null;
}

/** A main-area widget; a NotebookPanel has a session context with the kernel. */
interface MainWidgetLike {
  node: HTMLElement;
  id: string;
  content?: unknown;
  sessionContext?: { session?: { kernel?: { interrupt(): Promise<void> } | null } | null };
}

interface AppLike {
  shell: { widgets(area: string): Iterable<MainWidgetLike>; activateById(id: string): void };
  commands: { execute(id: string, args?: unknown): Promise<unknown> };
}

const plugin = {
  id: "ipyassistant-widgets:plugin",
  autoStart: true,
  activate: (app: AppLike): void => {
    const widgets = { build: BUILD, run_view: runView, chat_panel: chatPanel };
    setFrontend(Object.assign({ widgets }, {
      async insertCell(code: string, from: Element): Promise<boolean> {
        for (const panel of app.shell.widgets("main")) {
          const notebook = panel.content as NotebookLike | undefined;
          if (!panel.node.contains(from) || !notebook || !Array.isArray(notebook.widgets)) continue;
          const index = notebook.widgets.findIndex((cell) => cell.node.contains(from));
          if (index < 0) return false;
          app.shell.activateById(panel.id);
          notebook.activeCellIndex = index;
          await app.commands.execute("notebook:insert-cell-below");
          notebook.activeCell?.model.sharedModel.setSource(code);
          return true;
        }
        return false;
      },
      async interruptKernel(from: Element): Promise<boolean> {
        for (const panel of app.shell.widgets("main")) {
          if (!panel.node.contains(from) || !panel.sessionContext) continue;
          const kernel = panel.sessionContext.session?.kernel;
          if (!kernel) return false;
          await kernel.interrupt();
          return true;
        }
        return false;
      },
    }));
  },
};

export default plugin;
