/**
 * Rendering a view state to DOM: pure functions from state (and what changed) to elements,
 * testable in jsdom without Jupyter. `RunRenderer` keeps one element per item and re-renders
 * only the items a batch of ops changed.
 */

import { spoken, type Announcer } from "./announce";
import { codeActions, copyButton, highlight, insertButton, renderMarkdown } from "./markdown";
import { cite, placeholder, placeMarkers, renderSources, searches, withMarkers } from "./sources";
import { el } from "./toolkit/dom";
import {
  noChanges,
  type Changes,
  type CodeItem,
  type FileSearchItem,
  type Item,
  type MessageItem,
  type RunInfo,
  type ToolCallItem,
  type ViewError,
  type ViewState,
} from "./view_state";

/** Image bytes by file id, shown through object URLs (made once, revoked on dispose). */
export class ImageStore {
  private bytes = new Map<string, Uint8Array>();
  private urls = new Map<string, string>();

  set(fileId: string, data: Uint8Array): boolean {
    const known = this.bytes.get(fileId);
    if (known && sameBytes(known, data)) return false;
    this.bytes.set(fileId, data);
    const old = this.urls.get(fileId);
    if (old) URL.revokeObjectURL(old);
    this.urls.delete(fileId);
    return true;
  }

  has(fileId: string): boolean {
    return this.bytes.has(fileId);
  }

  url(fileId: string): string | undefined {
    let url = this.urls.get(fileId);
    if (url) return url;
    const data = this.bytes.get(fileId);
    if (!data) return undefined;
    url = URL.createObjectURL(new Blob([data as BlobPart], { type: imageMime(data) }));
    this.urls.set(fileId, url);
    return url;
  }

  dispose(): void {
    for (const url of this.urls.values()) URL.revokeObjectURL(url);
    this.urls.clear();
    this.bytes.clear();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A buffer from ipywidgets (DataView), a custom message or a test, as bytes. */
export function toBytes(buffer: DataView | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** The MIME type of image bytes, from their first bytes (PNG when unknown). */
export function imageMime(data: Uint8Array): string {
  const starts = (...sig: number[]): boolean => sig.every((b, i) => data[i] === b);
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  if (starts(0x47, 0x49, 0x46, 0x38)) return "image/gif";
  if (starts(0x52, 0x49, 0x46, 0x46) && data[8] === 0x57 && data[9] === 0x45) return "image/webp";
  const head = new TextDecoder().decode(data.subarray(0, 256)).trimStart().toLowerCase();
  if (head.startsWith("<svg") || (head.startsWith("<?xml") && head.includes("<svg"))) {
    return "image/svg+xml";
  }
  return "image/png";
}

export interface RenderContext {
  doc: Document;
  images: ImageStore;
  /** Which cards the user opened or closed, by item id (kept across re-renders). */
  open: Map<string, boolean>;
  /** Unix time in seconds (for the elapsed time of a running run). */
  now: () => number;
  /** Says finished pieces to screen readers (live views only; a saved view has none). */
  announcer?: Announcer;
}

export function makeContext(partial: Partial<RenderContext> = {}): RenderContext {
  return {
    doc: partial.doc ?? document,
    images: partial.images ?? new ImageStore(),
    open: partial.open ?? new Map(),
    now: partial.now ?? (() => Date.now() / 1000),
    announcer: partial.announcer,
  };
}

const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);

export function renderError(error: ViewError | null, ctx: RenderContext): HTMLElement | null {
  if (!error) return null;
  const box = el(ctx.doc, "div", "ipa-error");
  box.append(el(ctx.doc, "strong", undefined, error.code || "error"), `: ${error.message}`);
  return box;
}

/**
 * An image the run made, by file id; `alt` says what it is from its context (the file id
 * alone tells a screen reader user nothing).
 */
export function renderImage(fileId: string, ctx: RenderContext, alt = `Image (${fileId})`): HTMLElement {
  const url = ctx.images.url(fileId);
  if (!url) {
    const pending = el(ctx.doc, "div", "ipa-image-pending", `image ${fileId}`);
    pending.dataset.fileId = fileId;
    return pending;
  }
  const img = el(ctx.doc, "img", "ipa-image");
  img.src = url;
  img.alt = alt;
  img.dataset.fileId = fileId;
  return img;
}

function badge(status: string, ctx: RenderContext): HTMLElement {
  const span = el(ctx.doc, "span", `ipa-badge ipa-status-${status}`, status.replace("_", " "));
  if (ACTIVE.has(status)) span.classList.add("ipa-active");
  return span;
}

/** An image's alt text in a message: who showed it, and the words around it. */
export function imageAlt(item: MessageItem, fileId: string): string {
  const words = spoken(item.blocks.map((b) => (b.type === "text" ? b.text : "")).join(" "));
  const who = item.role === "user" ? "Image you sent" : `Image from the ${item.role}'s reply`;
  const context = words.length > 120 ? `${words.slice(0, 120)}…` : words;
  return context ? `${who}: ${context} (${fileId})` : `${who} (${fileId})`;
}

/** How `codeImages` names an image of a run. */
function imageKey(runId: string | null, fileId: string): string {
  return `${runId ?? ""}\u0000${fileId}`;
}

/**
 * The images the code cards of `state` draw, by run and file id. The reply after a code
 * interpreter call carries the same files as `image_file` blocks (as OpenAI's API does): a
 * view draws each once, in its card.
 */
export function codeImages(state: ViewState): Set<string> {
  const keys = new Set<string>();
  for (const item of state.items) {
    if (item.kind === "code") for (const fileId of item.images) keys.add(imageKey(item.run_id, fileId));
  }
  return keys;
}

/** What an item's rendering needs to know of the rest of its state. */
export interface Around {
  /** What the code cards show (see `codeImages`): a reply skips those images. */
  drawn: ReadonlySet<string>;
  /** The file searches, whose results name and quote what a reply cites. */
  searches: FileSearchItem[];
}

export function around(state: ViewState): Around {
  return { drawn: codeImages(state), searches: searches(state.items) };
}

const NOTHING_AROUND: Around = { drawn: new Set(), searches: [] };

export function renderMessage(item: MessageItem, ctx: RenderContext, context: Around = NOTHING_AROUND): HTMLElement {
  const box = el(ctx.doc, "div", `ipa-msg ipa-role-${item.role}`);
  box.append(el(ctx.doc, "div", "ipa-role", item.role));
  const body = el(ctx.doc, "div", "ipa-body");
  const cited = cite(item, context.searches);
  item.blocks.forEach((block, b) => {
    if (block.type === "text") {
      const part = el(ctx.doc, "div", "ipa-text");
      // Source n stands in the text as placeholder(n - 1) until the markdown is rendered.
      const text = block.citations?.length
        ? withMarkers(block.text, block.citations, cited.numbers[b], (n) => placeholder(n - 1))
        : block.text;
      const fragment = renderMarkdown(text, ctx.doc, item.role === "user");
      if (block.citations?.length) placeMarkers(fragment, item.id, cited.sources, ctx.doc);
      part.append(fragment);
      body.append(part);
    } else if (block.type === "refusal") {
      body.append(el(ctx.doc, "div", "ipa-refusal", block.text));
    } else if (block.type === "image") {
      if (item.role !== "user" && context.drawn.has(imageKey(item.run_id, block.file_id))) return;
      body.append(renderImage(block.file_id, ctx, imageAlt(item, block.file_id)));
    } else if (block.type === "image_url") {
      // A URL the model chose: a link, not a request made on the reader's behalf.
      const link = el(ctx.doc, "a", "ipa-image-link", `[image: ${block.url}]`);
      if (/^https?:/i.test(block.url)) {
        link.href = block.url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
      }
      body.append(link);
    }
  });
  if (item.status === "in_progress") body.append(el(ctx.doc, "span", "ipa-cursor"));
  if (item.status === "incomplete") body.append(el(ctx.doc, "div", "ipa-note", "(incomplete)"));
  box.append(body);
  const sources = renderSources(item.id, cited.sources, ctx.doc);
  if (sources) box.append(sources);
  return box;
}

/** A `<details>` opened or closed as the user left the one with this key (`ctx.open`). */
function disclosure(key: string, className: string, title: (HTMLElement | string)[], ctx: RenderContext, openByDefault: boolean): HTMLDetailsElement {
  const details = el(ctx.doc, "details", className);
  details.open = ctx.open.get(key) ?? openByDefault;
  const summary = el(ctx.doc, "summary");
  summary.append(...title);
  // Remember what the user chose; re-renders (20 a second while streaming) keep it.
  summary.addEventListener("click", () => ctx.open.set(key, !details.open));
  details.append(summary);
  return details;
}

function card(item: Item, title: HTMLElement[], ctx: RenderContext, openByDefault: boolean): HTMLDetailsElement {
  const details = disclosure(item.id, `ipa-card ipa-${item.kind}`, title, ctx, openByDefault);
  details.classList.add(`ipa-status-${item.status}`);
  return details;
}

function section(label: string, content: HTMLElement, ctx: RenderContext): HTMLElement {
  const part = el(ctx.doc, "div", "ipa-section");
  part.append(el(ctx.doc, "div", "ipa-label", label), content);
  return part;
}

function codeBlock(text: string, language: string | null, ctx: RenderContext, insert = false): HTMLElement {
  const pre = el(ctx.doc, "pre", "ipa-code");
  const code = el(ctx.doc, "code", language ? `language-${language}` : undefined, text);
  if (language) highlight(code, language);
  const buttons = [copyButton(() => text, ctx.doc)];
  if (insert) buttons.push(insertButton(() => text, ctx.doc));
  pre.append(codeActions(ctx.doc, ...buttons), code);
  return pre;
}

/** Arguments as pretty JSON once they parse (they stream as fragments until then). */
export function prettyArguments(text: string): { text: string; json: boolean } {
  try {
    return { text: JSON.stringify(JSON.parse(text), null, 2), json: true };
  } catch {
    return { text, json: false };
  }
}

export function renderToolCall(item: ToolCallItem, ctx: RenderContext): HTMLElement {
  const args = prettyArguments(item.arguments);
  const preview = el(ctx.doc, "code", "ipa-preview", item.arguments.replace(/\s+/g, " ").slice(0, 80));
  const title = [badge(item.status, ctx), el(ctx.doc, "span", "ipa-name", item.name || "tool"), preview];
  const details = card(item, title, ctx, ACTIVE.has(item.status) || item.error !== null);
  details.append(section("Arguments", codeBlock(args.text, args.json ? "json" : null, ctx), ctx));
  if (item.output !== null) {
    const out = prettyArguments(item.output);
    details.append(section("Output", codeBlock(out.text, out.json ? "json" : null, ctx), ctx));
  } else if (item.status === "requires_action") {
    details.append(el(ctx.doc, "div", "ipa-note", "waiting for the tool's output…"));
  }
  const error = renderError(item.error, ctx);
  if (error) details.append(error);
  return details;
}

export function renderCode(item: CodeItem, ctx: RenderContext): HTMLElement {
  const title = [badge(item.status, ctx), el(ctx.doc, "span", "ipa-name", "Code interpreter")];
  const details = card(item, title, ctx, true);
  details.append(codeBlock(item.code, "python", ctx, true));
  if (item.logs) {
    const logs = el(ctx.doc, "pre", "ipa-logs", item.logs);
    details.append(section("Logs", logs, ctx));
  }
  if (item.images.length) {
    const images = el(ctx.doc, "div", "ipa-images");
    for (const fileId of item.images) {
      images.append(renderImage(fileId, ctx, `Plot from the code interpreter (${fileId})`));
    }
    details.append(images);
  }
  const error = renderError(item.error, ctx);
  if (error) details.append(error);
  return details;
}

/**
 * A file search: the query in the title, the ranking, and each result (file, score) whose
 * chunk, when the run asked for it, opens under it.
 */
export function renderFileSearch(item: FileSearchItem, ctx: RenderContext): HTMLElement {
  const found = ACTIVE.has(item.status) ? "searching…" : `${item.results.length} result${item.results.length === 1 ? "" : "s"}`;
  const title = [badge(item.status, ctx), el(ctx.doc, "span", "ipa-name", "File search")];
  if (item.query) title.push(el(ctx.doc, "q", "ipa-preview ipa-query", item.query));
  title.push(el(ctx.doc, "span", "ipa-count", found));
  const details = card(item, title, ctx, ACTIVE.has(item.status) || item.error !== null);
  if (item.ranker !== null || item.score_threshold !== null) {
    const ranking = `ranker ${item.ranker ?? "auto"}, score threshold ${item.score_threshold ?? 0}`;
    details.append(el(ctx.doc, "div", "ipa-note ipa-ranking", ranking));
  }
  if (item.results.length) {
    const list = el(ctx.doc, "ol", "ipa-results");
    list.setAttribute("aria-label", "Results");
    item.results.forEach((result, i) => {
      const entry = el(ctx.doc, "li", "ipa-result");
      const head = [
        el(ctx.doc, "span", "ipa-result-file", result.file_name || result.file_id),
        el(ctx.doc, "span", "ipa-score", `score ${result.score.toFixed(2)}`),
      ];
      if (result.content === null) {
        entry.append(...head);
      } else {
        const chunk = disclosure(`${item.id}:${i}`, "ipa-chunk", head, ctx, false);
        chunk.append(el(ctx.doc, "pre", "ipa-chunk-text", result.content));
        entry.append(chunk);
      }
      list.append(entry);
    });
    details.append(list);
  }
  const error = renderError(item.error, ctx);
  if (error) details.append(error);
  return details;
}

export function renderItem(item: Item, ctx: RenderContext, context?: Around): HTMLElement {
  let node: HTMLElement;
  if (item.kind === "message") node = renderMessage(item, ctx, context);
  else if (item.kind === "tool_call") node = renderToolCall(item, ctx);
  else if (item.kind === "code") node = renderCode(item, ctx);
  else if (item.kind === "file_search") node = renderFileSearch(item, ctx);
  else node = el(ctx.doc, "div", "ipa-unknown");
  node.dataset.id = item.id;
  return node;
}

export function formatElapsed(seconds: number): string {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

export function elapsed(run: RunInfo, now: number): number | null {
  const start = run.started_at ?? run.created_at;
  if (start === null) return null;
  const end = run.finished_at ?? (ACTIVE.has(run.status) ? now : null);
  return end === null ? null : end - start;
}

export function renderRun(run: RunInfo | null, streamError: ViewError | null, ctx: RenderContext): HTMLElement {
  const bar = el(ctx.doc, "div", "ipa-run");
  if (run) {
    bar.append(badge(run.status, ctx));
    if (run.model) bar.append(el(ctx.doc, "span", "ipa-model", run.model));
    const seconds = elapsed(run, ctx.now());
    if (seconds !== null) bar.append(el(ctx.doc, "span", "ipa-elapsed", formatElapsed(seconds)));
    if (run.usage) {
      const u = run.usage;
      const tokens = el(ctx.doc, "span", "ipa-usage", `${u.total_tokens} tokens`);
      tokens.title = `${u.prompt_tokens} prompt + ${u.completion_tokens} completion`;
      bar.append(tokens);
    }
    const error = renderError(run.error, ctx);
    if (error) bar.append(error);
  }
  const error = renderError(streamError, ctx);
  if (error) bar.append(error);
  return bar;
}

/** The whole view of a state, as one element. */
export function renderState(state: ViewState, ctx: RenderContext): HTMLElement {
  const root = el(ctx.doc, "div", "ipa-run-view");
  const items = el(ctx.doc, "div", "ipa-items");
  const context = around(state);
  for (const item of state.items) items.append(renderItem(item, ctx, context));
  root.append(items, renderRun(state.run, state.error, ctx));
  return root;
}

function cites(item: Item): boolean {
  return item.kind === "message" && item.blocks.some((b) => b.type === "text" && !!b.citations?.length);
}

/** Keeps a root element in step with a view state, re-rendering only what changed. */
export class RunRenderer {
  private items: HTMLElement;
  private run: HTMLElement;
  private nodes = new Map<string, HTMLElement>();

  constructor(
    readonly root: HTMLElement,
    readonly ctx: RenderContext,
  ) {
    root.classList.add("ipa-run-view");
    this.items = el(ctx.doc, "div", "ipa-items");
    this.run = el(ctx.doc, "div", "ipa-run");
    root.replaceChildren(this.items, this.run);
  }

  /** Render `state` from scratch. */
  render(state: ViewState): void {
    this.nodes.clear();
    const context = around(state);
    this.items.replaceChildren(
      ...state.items.map((item) => {
        const node = renderItem(item, this.ctx, context);
        this.nodes.set(item.id, node);
        return node;
      }),
    );
    this.renderRun(state);
    this.ctx.announcer?.observe(state);
  }

  /** Re-render what `changes` names (after the ops were applied to `state`). */
  update(state: ViewState, changes: Changes): void {
    const context = around(state);
    // A reply's sources come from the file searches: when one changes, so may they.
    const searched = context.searches.some((item) => changes.items.has(item.id));
    for (const item of state.items) {
      if (!changes.items.has(item.id) && !(searched && cites(item))) continue;
      const node = renderItem(item, this.ctx, context);
      this.nodes.get(item.id)?.replaceWith(node);
      this.nodes.set(item.id, node);
    }
    if (changes.added) {
      // Append new nodes in state order (an existing node keeps its place).
      for (const item of state.items) {
        const node = this.nodes.get(item.id);
        if (node && !node.isConnected) this.items.append(node);
      }
    }
    if (changes.run || changes.error) this.renderRun(state);
    this.ctx.announcer?.observe(state);
  }

  /** Re-render the items that show one of these images (their bytes just arrived). */
  refreshImages(state: ViewState, fileIds: string[]): void {
    const wanted = new Set(fileIds);
    const changes = noChanges();
    for (const item of state.items) {
      const ids =
        item.kind === "message"
          ? item.blocks.flatMap((b) => (b.type === "image" ? [b.file_id] : []))
          : item.kind === "code"
            ? item.images
            : [];
      if (ids.some((id) => wanted.has(id))) changes.items.add(item.id);
    }
    this.update(state, changes);
  }

  /** Refresh the run bar (the elapsed time of a running run). */
  renderRun(state: ViewState): void {
    const bar = renderRun(state.run, state.error, this.ctx);
    this.run.replaceWith(bar);
    this.run = bar;
  }

  /** Whether the run bar shows a clock that should tick. */
  static ticking(state: ViewState): boolean {
    return state.run !== null && ACTIVE.has(state.run.status);
  }
}
