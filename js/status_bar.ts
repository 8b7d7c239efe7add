/**
 * The status bar of a live view: where the eye is (the top of a RunView, above a ChatPanel's
 * input box), whatever the length of the reply.
 *
 * It says "starting…" before the first event, then the run's status, model, elapsed time (from
 * the run's creation to its end: the same clock live and finished) and tokens (counted roughly
 * from the streamed text while the run goes, the server's usage once it ends). A failed run
 * shows its error, one line of what to do (`failureHint`, the same table as the kernel's
 * jupyter/failures.py) and, when the view can, a Retry button. A quiet note (which model was
 * chosen by default) goes above it.
 */

import { formatElapsed } from "./render";
import { button, el } from "./toolkit/dom";
import type { ViewError, ViewState } from "./view_state";

const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);
const FAILED = new Set(["failed", "expired"]);

/** One line saying what to do about a run's error. */
export function failureHint(code: string | null | undefined, message: string): string {
  const lowered = message.toLowerCase();
  if (code === "rate_limit_exceeded") return "The model's server is rate-limiting requests: wait a moment, then Retry.";
  if (
    code === "model_not_found" ||
    code === "invalid_model" ||
    (lowered.includes("model") && (lowered.includes("not available") || lowered.includes("not found")))
  ) {
    return "Choose an available model with %assistant model NAME (e.g. openai:gpt-4o-mini, local, test), or set IPYASSISTANT_MODEL before the kernel starts.";
  }
  if (code === "server_error") {
    const where = /^(.+?) (?:answered|timed out|could not|dropped|reported|sent)\b/s.exec(message);
    return `The model's server failed.${where ? ` The call to ${where[1]} failed.` : ""} Retry, or choose another model.`;
  }
  return "Retry, or change the message or the model.";
}

/** Roughly the tokens of what the run streamed: words and punctuation marks. */
export function streamedTokens(state: ViewState): number {
  const runId = state.run?.id;
  let n = 0;
  const count = (text: string): number => text.match(/\w+|[^\s\w]/g)?.length ?? 0;
  for (const item of state.items) {
    if (runId && item.run_id && item.run_id !== runId) continue;
    if (item.kind === "message") {
      if (item.role !== "assistant") continue;
      for (const block of item.blocks) if (block.type === "text" || block.type === "refusal") n += count(block.text);
    } else if (item.kind === "tool_call") {
      n += count(item.arguments);
    } else if (item.kind === "code") {
      n += count(item.code);
    }
  }
  return n;
}

/** The error a state shows: the stream's, else the failed run's. */
export function shownError(state: ViewState): ViewError | null {
  return state.error ?? state.run?.error ?? null;
}

/** Whether the state shows a failed run or a broken stream (Retry makes sense). */
export function failed(state: ViewState): boolean {
  return state.error !== null || (state.run !== null && FAILED.has(state.run.status));
}

/** Whether the state shows a run that is still going (its clock ticks). */
export function running(state: ViewState | null, live: boolean): boolean {
  if (!state) return false;
  if (state.run) return ACTIVE.has(state.run.status);
  return live && state.error === null;
}

export interface StatusInput {
  /** The state to describe (null: nothing to say). */
  state: ViewState | null;
  /** Whether the state is still streaming (no run yet means "starting…"). */
  live: boolean;
  /** A quiet line above the status. */
  note?: string;
  /** What Retry does (no button without it). */
  retry?: (() => void) | null;
  /** What Stop does (no button without it; shown while the run goes). */
  stop?: (() => void) | null;
  /** Unix time in seconds. */
  now: number;
}

/** Draws a `StatusInput` into its root; `render` replaces the content each time. */
export class StatusBar {
  readonly root: HTMLElement;

  constructor(private readonly doc: Document) {
    this.root = el(doc, "div", "ipa-status-bar", { testId: "ipa-status-bar" });
    this.root.setAttribute("role", "status");
  }

  render(input: StatusInput): void {
    const { doc } = this;
    const parts: HTMLElement[] = [];
    if (input.note) parts.push(el(doc, "div", "ipa-status-note", input.note));
    const state = input.state;
    if (state) {
      const line = el(doc, "div", "ipa-status-line");
      const run = state.run;
      const status = run ? run.status.replace("_", " ") : state.error ? "failed" : input.live ? "starting…" : "";
      if (status) {
        const badge = el(doc, "span", `ipa-status-state ipa-status-${run?.status ?? (state.error ? "failed" : "starting")}`, status);
        if (running(state, input.live)) badge.classList.add("ipa-active");
        line.append(badge);
      }
      if (run?.model) line.append(el(doc, "span", "ipa-status-model", run.model));
      const start = run ? (run.created_at ?? run.started_at) : null;
      const end = run ? (run.finished_at ?? (ACTIVE.has(run.status) ? input.now : null)) : null;
      if (start !== null && end !== null) line.append(el(doc, "span", "ipa-status-elapsed", formatElapsed(end - start)));
      if (run?.usage && run.usage.total_tokens > 0) {
        const u = run.usage;
        const tokens = el(doc, "span", "ipa-status-tokens", `${u.total_tokens} tokens`);
        tokens.title = `${u.prompt_tokens} prompt + ${u.completion_tokens} completion`;
        line.append(tokens);
      } else if (running(state, input.live)) {
        const n = streamedTokens(state);
        if (n > 0) line.append(el(doc, "span", "ipa-status-tokens", `~${n} tokens`));
      }
      if (input.stop && running(state, input.live)) {
        const stop = button(doc, "ipa-status-stop", "Stop", "Stop the run (Esc)", "ipa-status-stop");
        stop.setAttribute("aria-label", "Stop");
        stop.addEventListener("click", () => input.stop?.());
        line.append(stop);
      }
      if (line.childNodes.length) parts.push(line);
      const error = shownError(state);
      if (error && failed(state)) {
        const box = el(doc, "div", "ipa-status-error", { testId: "ipa-status-error" });
        box.append(el(doc, "strong", undefined, error.code || "error"), `: ${error.message}`);
        const hint = el(doc, "div", "ipa-status-hint", failureHint(error.code, error.message));
        hint.dataset.testid = "ipa-status-hint";
        parts.push(box, hint);
        if (input.retry) {
          const retry = button(doc, "ipa-status-retry", "Retry", "Run the message again", "ipa-status-retry");
          retry.setAttribute("aria-label", "Retry");
          retry.addEventListener("click", () => input.retry?.());
          hint.append(" ", retry);
        }
      }
    }
    this.root.replaceChildren(...parts);
    this.root.hidden = parts.length === 0;
  }
}

/**
 * The styles of the status bar, and of what the live views add to render.ts's cards (a
 * visible expand arrow on every card's summary). Put into the document once, by the first
 * view: the widgets' CSS bundles are render.ts's.
 */
export const STATUS_CSS = `
.ipa-status-bar {
  position: sticky; top: 0; z-index: 2;
  display: flex; flex-direction: column; gap: 2px;
  padding: 3px 8px; border-radius: 4px;
  background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color2, #e0e0e0);
  font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #212121);
}
.ipa-status-bar[hidden] { display: none; }
.ipa-status-note { color: var(--jp-ui-font-color2, #616161); font-style: italic; }
.ipa-status-line { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; }
.ipa-status-state { font-weight: 600; }
.ipa-status-state.ipa-active::after { content: " ●"; color: var(--jp-brand-color1, #1976d2); }
.ipa-status-failed, .ipa-status-expired { color: var(--jp-error-color1, #d32f2f); }
.ipa-status-model, .ipa-status-elapsed, .ipa-status-tokens { color: var(--jp-ui-font-color2, #616161); }
.ipa-status-error { color: var(--jp-error-color1, #d32f2f); overflow-wrap: anywhere; }
.ipa-status-hint { color: var(--jp-ui-font-color1, #212121); }
.ipa-status-bar button {
  font: inherit; padding: 1px 10px; border-radius: 3px; cursor: pointer;
  border: 1px solid var(--jp-border-color1, #bdbdbd);
  background: var(--jp-layout-color2, #eee); color: var(--jp-ui-font-color1, #212121);
}
.ipa-status-bar button:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 1px; }
.ipa-live-view > .ipa-run-view > .ipa-run { display: none; }
.ipa-card > summary { list-style: none; cursor: pointer; }
.ipa-card > summary::-webkit-details-marker { display: none; }
.ipa-card > summary::before { content: "▸"; display: inline-block; width: 1.1em; color: var(--jp-ui-font-color2, #616161); }
.ipa-card[open] > summary::before { content: "▾"; }
`;

/** Put `STATUS_CSS` into `doc` (once). */
export function installStatusCss(doc: Document): void {
  if (doc.getElementById("ipa-status-css")) return;
  const style = doc.createElement("style");
  style.id = "ipa-status-css";
  style.textContent = STATUS_CSS;
  doc.head.append(style);
}
