/**
 * A message's `file_citation` annotations as numbered sources: the TypeScript twin of
 * `src/ipyassistant/jupyter/sources.py` (its module docstring is the reference; change both
 * together).
 *
 * Each citation gets a number, the same for citations of the same file and quote; in the
 * text, a span that is a marker the model wrote (`【4:0†notes.md】`) is replaced by its number,
 * any other span (quoted words) keeps its text and the number follows it. The number is a
 * link, labelled for screen readers, to its entry in the sources list under the message,
 * which names the file and shows the quote (the found chunk, when the run's file search
 * returned it, else the annotation's words).
 */

import { el } from "./toolkit/dom";
import type { Citation, FileSearchItem, Item, MessageItem, SearchResult } from "./view_state";

/** The most characters of a found chunk a source quotes (the search step shows it whole). */
export const QUOTE_LIMIT = 500;

export interface Source {
  number: number;
  file_id: string;
  file_name: string;
  quote: string | null;
}

export interface Cited {
  sources: Source[];
  /** `numbers[b][c]`: the source number of citation `c` of block `b`. */
  numbers: number[][];
}

/** Whether an annotation's text is a marker the model wrote rather than quoted words. */
export function isMarker(text: string): boolean {
  return text.startsWith("【") && text.endsWith("】");
}

/** The file search items among `items`: where citations find their files' names and chunks. */
export function searches(items: Item[]): FileSearchItem[] {
  return items.filter((item): item is FileSearchItem => item.kind === "file_search");
}

/** At most `limit` characters of `quote` (and ellipses), around `words` if it has them. */
export function excerpt(quote: string, words: string, limit = QUOTE_LIMIT): string {
  // Counted in code points, as Python counts its characters.
  const chars = Array.from(quote);
  if (chars.length <= limit) return quote;
  const at = words ? codePointIndex(quote, words) : -1;
  const start = at < 0 ? 0 : Math.max(0, Math.min(at - Math.floor(limit / 4), chars.length - limit));
  const end = start + limit;
  return (start > 0 ? "…" : "") + chars.slice(start, end).join("") + (end < chars.length ? "…" : "");
}

function codePointIndex(text: string, part: string): number {
  const at = text.indexOf(part);
  return at < 0 ? -1 : Array.from(text.slice(0, at)).length;
}

function quoteOf(citation: Citation, results: SearchResult[]): string | null {
  const chunks = results
    .filter((r) => r.file_id === citation.file_id && r.content)
    .map((r) => r.content as string);
  const words = isMarker(citation.text) ? "" : citation.text.trim().replace(/^["“”]+|["“”]+$/g, "");
  if (chunks.length) {
    const chunk = chunks.find((c) => words !== "" && c.includes(words)) ?? chunks[0];
    return excerpt(chunk, words);
  }
  return words || null;
}

/** Number the citations of `item` and list its sources, using the file searches shown with it. */
export function cite(item: MessageItem, found: FileSearchItem[]): Cited {
  const names = new Map<string, string>();
  for (const search of found) for (const r of search.results) if (r.file_name) names.set(r.file_id, r.file_name);
  const sameRun = found.filter((s) => s.run_id === item.run_id).flatMap((s) => s.results);
  const sources: Source[] = [];
  const byKey = new Map<string, number>();
  const numbers = item.blocks.map((block) => {
    if (block.type !== "text") return [];
    return (block.citations ?? []).map((citation) => {
      const quote = quoteOf(citation, sameRun);
      const key = `${citation.file_id}\u0000${quote ?? "\u0001"}`;
      let number = byKey.get(key);
      if (number === undefined) {
        number = sources.length + 1;
        byKey.set(key, number);
        const name = citation.file_name || names.get(citation.file_id) || citation.file_id;
        sources.push({ number, file_id: citation.file_id, file_name: name, quote });
      }
      return number;
    });
  });
  return { sources, numbers };
}

/** Closing quote marks a citation's number is put after. */
const CLOSING_QUOTES = "\"'”’»";

/** `text` with `marker(number)` where each citation is; bad offsets put it at the end. */
export function withMarkers(text: string, citations: Citation[], numbers: number[], marker: (n: number) => string): string {
  // Offsets are in characters (code points), as the server counts them.
  const chars = Array.from(text);
  const order = citations.map((c, i) => ({ c, n: numbers[i] })).sort((a, b) => a.c.start - b.c.start);
  const out: string[] = [];
  const trailing: string[] = [];
  let copied = 0;
  for (const { c, n } of order) {
    if (!(copied <= c.start && c.start <= c.end && c.end <= chars.length)) {
      trailing.push(marker(n));
      continue;
    }
    const span = chars.slice(c.start, c.end).join("");
    let end = c.end;
    // A quotation's number follows its closing quote mark: "...".[1], not "...[1]".
    if (!isMarker(span)) while (end < chars.length && CLOSING_QUOTES.includes(chars[end])) end++;
    const keep = isMarker(span) ? c.start : end;
    out.push(chars.slice(copied, keep).join("") + marker(n));
    copied = end;
  }
  out.push(chars.slice(copied).join(""));
  return out.join("") + trailing.join("");
}

/** What stands for source `n` in the text given to the markdown renderer. */
export function placeholder(n: number): string {
  return `\uE000${n}\uE001`;
}

const PLACEHOLDER = /\uE000(\d+)\uE001/g;

function sourceId(messageId: string, n: number): string {
  return `ipa-src-${messageId}-${n}`;
}

/** The number of a citation: a link to its source, named for screen readers. */
export function citationLink(messageId: string, source: Source, doc: Document): HTMLElement {
  const sup = el(doc, "sup", "ipa-cite");
  const link = el(doc, "a", undefined, `[${source.number}]`);
  link.href = `#${sourceId(messageId, source.number)}`;
  link.setAttribute("aria-label", `Source ${source.number}: ${source.file_name}`);
  link.addEventListener("click", (event) => {
    // The source is in this message: go there without touching the page's URL (JupyterLab
    // routes on it).
    event.preventDefault();
    const target = link.closest(".ipa-msg")?.querySelector<HTMLElement>(`[data-source="${source.number}"]`);
    if (!target) return;
    target.scrollIntoView?.({ block: "nearest" });
    target.focus();
  });
  sup.append(link);
  return sup;
}

/**
 * Replace the placeholders in `root`'s text with the links of `sources` (by number); in code
 * they become plain `[n]`.
 */
export function placeMarkers(root: ParentNode, messageId: string, sources: Source[], doc: Document): void {
  const walker = doc.createTreeWalker(root, 4 /* NodeFilter.SHOW_TEXT */);
  const texts: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if ((node as Text).data.includes("\uE000")) texts.push(node as Text);
  }
  for (const text of texts) {
    const inCode = text.parentElement?.closest("code, pre") != null;
    const parts: (string | Node)[] = [];
    let last = 0;
    for (const match of text.data.matchAll(PLACEHOLDER)) {
      const source = sources[Number(match[1])];
      if (!source) continue;
      parts.push(text.data.slice(last, match.index));
      parts.push(inCode ? `[${source.number}]` : citationLink(messageId, source, doc));
      last = (match.index ?? 0) + match[0].length;
    }
    parts.push(text.data.slice(last));
    text.replaceWith(...parts);
  }
}

/** The sources list under a message (null when it cites nothing). */
export function renderSources(messageId: string, sources: Source[], doc: Document): HTMLElement | null {
  if (!sources.length) return null;
  const list = el(doc, "ol", "ipa-sources");
  list.setAttribute("aria-label", "Sources");
  for (const source of sources) {
    const entry = el(doc, "li", "ipa-source");
    entry.id = sourceId(messageId, source.number);
    entry.value = source.number;
    entry.dataset.source = String(source.number);
    entry.tabIndex = -1; // a marker's link moves the focus here
    entry.append(el(doc, "span", "ipa-source-file", source.file_name));
    if (source.quote) entry.append(el(doc, "blockquote", "ipa-source-quote", source.quote));
    list.append(entry);
  }
  return list;
}
