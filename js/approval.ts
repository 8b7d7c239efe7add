/**
 * Approval cards: a tool call waiting for the user, with the buttons Approve and Deny.
 *
 * The protocol (custom messages of a RunView or ChatPanel model; see the Python module
 * `ipyassistant.jupyter.approval`):
 *
 *     kernel -> view  {"type": "approval?", id, name, arguments, expires_at}   show a card
 *     view -> kernel  {"type": "approval", id, approved}                       the answer
 *     kernel -> view  {"type": "approval-done", id}                            drop the card
 *
 * A card shows the function and its arguments (for `run_in_notebook` the code, highlighted as
 * Python) and counts down to the run's expiry (`expires_at`, Unix seconds), after which the
 * kernel denies the call. Answering disables both buttons; the kernel then drops the card.
 */

import { highlight } from "./markdown";
import { button, el } from "./toolkit/dom";

/** A call waiting for approval, as the kernel sends it. */
export interface ApprovalQuestion {
  type: "approval?";
  id: string;
  name: string;
  arguments: unknown;
  /** When the run expires (Unix seconds), or null. */
  expires_at: number | null;
}

/** What the view answers. */
export interface ApprovalAnswer {
  type: "approval";
  id: string;
  approved: boolean;
}

/** The part of a widget model the cards use. */
export interface ApprovalModel {
  on(event: "msg:custom", listener: (content: unknown) => void): void;
  off(event: "msg:custom", listener: (content: unknown) => void): void;
  send(content: ApprovalAnswer): void;
}

const CSS = `
.ipa-approval { border: 1px solid var(--jp-warn-color1, #f57c00); border-radius: 4px;
  padding: 6px 8px; margin: 6px 0; background: var(--jp-layout-color1, #fff); }
.ipa-approval-title { font-weight: 600; margin-bottom: 4px; }
.ipa-approval pre { margin: 4px 0; max-height: 20em; overflow: auto; }
.ipa-approval-actions { display: flex; gap: 8px; align-items: center; margin-top: 4px; }
.ipa-approval-countdown { color: var(--jp-ui-font-color2, #666); font-size: 0.9em; }
`;

function installApprovalCss(doc: Document): void {
  if (doc.getElementById("ipa-approval-css")) return;
  const style = el(doc, "style");
  style.id = "ipa-approval-css";
  style.textContent = CSS;
  doc.head.append(style);
}

/** `seconds` as m:ss (h:mm:ss past an hour). */
export function formatCountdown(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** The code a call runs, when its arguments have one (`run_in_notebook`'s `code`). */
function codeOf(args: unknown): string | null {
  if (args && typeof args === "object" && typeof (args as { code?: unknown }).code === "string") {
    return (args as { code: string }).code;
  }
  return null;
}

function block(doc: Document, text: string, language: string): HTMLElement {
  const pre = el(doc, "pre", "ipa-code");
  const code = el(doc, "code", `language-${language}`, text);
  highlight(code, language);
  pre.append(code);
  return pre;
}

/** One card; `answer` is called once, with the user's choice. */
export class ApprovalCard {
  readonly root: HTMLElement;
  readonly approveButton: HTMLButtonElement;
  readonly denyButton: HTMLButtonElement;
  private readonly countdown: HTMLElement;

  constructor(
    doc: Document,
    readonly question: ApprovalQuestion,
    answer: (approved: boolean) => void,
  ) {
    this.root = el(doc, "div", "ipa-approval", { testId: "ipa-approval" });
    this.root.setAttribute("role", "group");
    this.root.setAttribute("aria-label", `Approve the call of ${question.name}?`);
    const code = codeOf(question.arguments);
    const title = code === null ? `${question.name} wants to run with:` : `${question.name} wants to run this code:`;
    const body =
      code !== null
        ? block(doc, code, "python")
        : block(doc, typeof question.arguments === "string" ? question.arguments : JSON.stringify(question.arguments, null, 2), "json");
    this.approveButton = button(doc, "ipa-approve", "Approve", "Run this call");
    this.denyButton = button(doc, "ipa-deny", "Deny", "Do not run this call (the model is told you declined)");
    this.countdown = el(doc, "span", "ipa-approval-countdown");
    const actions = el(doc, "div", "ipa-approval-actions");
    actions.append(this.approveButton, this.denyButton, this.countdown);
    this.root.append(el(doc, "div", "ipa-approval-title", title), body, actions);
    const choose = (approved: boolean): void => {
      this.approveButton.disabled = this.denyButton.disabled = true;
      this.countdown.textContent = approved ? "Approved" : "Denied";
      answer(approved);
    };
    this.approveButton.addEventListener("click", () => choose(true));
    this.denyButton.addEventListener("click", () => choose(false));
  }

  /** Show the time left at `now` (Unix seconds); nothing once answered or without expiry. */
  tick(now: number): void {
    if (this.approveButton.disabled || this.question.expires_at == null) return;
    const left = this.question.expires_at - now;
    this.countdown.textContent = left > 0 ? `expires in ${formatCountdown(left)}` : "expired";
  }
}

/**
 * Show the model's approval questions as cards in `host` and send the answers; returns what
 * stops (removing the cards). `now` is Unix time in seconds.
 */
export function followApprovals(
  model: ApprovalModel,
  host: HTMLElement,
  now: () => number = () => Date.now() / 1000,
): () => void {
  const doc = host.ownerDocument;
  installApprovalCss(doc);
  const cards = new Map<string, ApprovalCard>();
  const onMessage = (content: unknown): void => {
    const message = content as { type?: unknown; id?: unknown } | null;
    if (!message || typeof message.id !== "string") return;
    const id = message.id;
    if (message.type === "approval?" && !cards.has(id)) {
      const card = new ApprovalCard(doc, message as ApprovalQuestion, (approved) =>
        model.send({ type: "approval", id, approved }),
      );
      cards.set(id, card);
      card.tick(now());
      host.append(card.root);
      card.approveButton.focus({ preventScroll: true });
    } else if (message.type === "approval-done") {
      cards.get(id)?.root.remove();
      cards.delete(id);
    }
  };
  model.on("msg:custom", onMessage);
  const timer = setInterval(() => cards.forEach((card) => card.tick(now())), 1000);
  return () => {
    model.off("msg:custom", onMessage);
    clearInterval(timer);
    cards.forEach((card) => card.root.remove());
    cards.clear();
  };
}
