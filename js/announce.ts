/**
 * What a screen reader hears of a streaming view: a polite ARIA live region that says each
 * finished piece once (an assistant message, a tool call, a code-interpreter step, a run that
 * failed or stopped), never each token, and at most once a second.
 *
 * The renderers show every state they draw to `observe()`; what a view shows when it is first
 * drawn (a restored conversation, a saved view) is already there, so it is not announced.
 */

import type { Item, ViewState } from "./view_state";

const FINAL = new Set(["completed", "incomplete", "failed", "cancelled", "expired"]);
const ENDED_BADLY = new Set(["failed", "cancelled", "expired", "incomplete"]);
/** The longest text said for one message (the rest is on screen). */
const MAX_CHARS = 600;

/** A message's words, without the markdown marks a screen reader would spell out. */
export function spoken(text: string): string {
  const plain = text
    .replace(/```[\s\S]*?(```|$)/g, " (code block) ")
    .replace(/\$\$[\s\S]*?\$\$/g, " (formula) ")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[*_`#>|~]+/g, "")
    .replace(/\s+/g, " ")
    .trim();
  return plain.length > MAX_CHARS ? `${plain.slice(0, MAX_CHARS)}…` : plain;
}

function describe(item: Item): string | null {
  if (item.kind === "message") {
    if (item.role !== "assistant") return null;
    const text = item.blocks.map((b) => (b.type === "text" || b.type === "refusal" ? b.text : "(image)")).join(" ");
    return spoken(text) || null;
  }
  const what =
    item.kind === "tool_call" ? `Tool ${item.name || "call"}` : item.kind === "file_search" ? "File search" : "Code interpreter";
  return item.status === "completed" ? `${what} finished.` : `${what} ${item.status}.`;
}

export class Announcer {
  readonly region: HTMLElement;
  private seen = new Set<string>();
  private runs = new Set<string>();
  private priming = true;
  private primeTimer: number | null = null;
  private pending: string[] = [];
  private timer: number | null = null;
  private last = -Infinity;

  /**
   * @param host The element the region is kept in (added back if a re-render removed it).
   * @param interval The shortest time between two announcements, in milliseconds.
   */
  constructor(
    private readonly host: HTMLElement,
    private readonly interval = 1000,
  ) {
    const doc = host.ownerDocument;
    this.region = doc.createElement("div");
    this.region.className = "ipa-sr-only";
    this.region.setAttribute("aria-live", "polite");
    this.region.setAttribute("aria-atomic", "false");
    this.region.dataset.testid = "ipa-announcer";
    host.append(this.region);
  }

  /** Note what `state` shows; queue what finished since the last look. */
  observe(state: ViewState): void {
    if (this.priming && this.primeTimer === null) {
      // Everything drawn in the first task of the view was there before the reader arrived.
      const win = this.host.ownerDocument.defaultView;
      this.primeTimer = win ? win.setTimeout(() => (this.priming = false), 0) : null;
      if (this.primeTimer === null) this.priming = false;
    }
    for (const item of state.items) {
      if (!FINAL.has(item.status) || this.seen.has(item.id)) continue;
      this.seen.add(item.id);
      const text = this.priming ? null : describe(item);
      if (text) this.pending.push(text);
    }
    const run = state.run;
    if (run && FINAL.has(run.status) && !this.runs.has(run.id)) {
      this.runs.add(run.id);
      if (!this.priming && ENDED_BADLY.has(run.status)) {
        const why = run.error ? `: ${run.error.message}` : ".";
        this.pending.push(`Run ${run.status.replace("_", " ")}${why}`);
      }
    }
    if (this.pending.length) this.schedule();
  }

  private schedule(): void {
    const win = this.host.ownerDocument.defaultView;
    if (this.timer !== null || !win) return;
    const wait = Math.max(0, this.last + this.interval - win.performance.now());
    this.timer = win.setTimeout(() => this.flush(), wait);
  }

  /** Say what is pending now (the throttle's timer calls it). */
  flush(): void {
    this.timer = null;
    if (!this.pending.length) return;
    if (this.region.parentElement !== this.host) {
      // A re-render of the host removed the region: a region must be in the page before its
      // text changes for a screen reader to say it, so the text comes a moment later.
      this.host.append(this.region);
      this.timer = this.host.ownerDocument.defaultView?.setTimeout(() => this.flush(), 50) ?? null;
      return;
    }
    this.region.textContent = this.pending.join(" ");
    this.pending = [];
    this.last = this.host.ownerDocument.defaultView?.performance.now() ?? 0;
  }

  dispose(): void {
    const win = this.host.ownerDocument.defaultView;
    if (this.timer !== null) win?.clearTimeout(this.timer);
    if (this.primeTimer !== null) win?.clearTimeout(this.primeTimer);
    this.region.remove();
  }
}
