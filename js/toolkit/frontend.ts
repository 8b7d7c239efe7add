/**
 * What the front end offers the views, when an extension of it says so: JupyterLab's plugin
 * (labextension/plugin.ts) sets it; elsewhere (VS Code, Colab, a test) it is absent and the
 * views fall back (Insert copies the code instead).
 */

export interface Frontend {
  /** Put `code` into a new cell below the one showing `from`; false when it cannot. */
  insertCell(code: string, from: Element): Promise<boolean>;
  /** Interrupt the kernel of the notebook showing `from` (a RunView's Stop and Esc). */
  interruptKernel?(from: Element): Promise<boolean>;
}

const KEY = "__ipyassistant";

export function setFrontend(frontend: Frontend): void {
  (globalThis as Record<string, unknown>)[KEY] = frontend;
}

export function frontend(): Frontend | undefined {
  return (globalThis as Record<string, unknown>)[KEY] as Frontend | undefined;
}
