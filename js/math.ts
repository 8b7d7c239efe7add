/**
 * TeX math in model-written markdown, drawn with KaTeX (bundled: no CDN, no network).
 *
 * Markdown would eat TeX (`\,` becomes `,`, `_x_` becomes emphasis), so the math is taken out
 * of the text before the markdown pass, each span replaced by a placeholder made of letters and
 * digits only, and put back, rendered, into the sanitised DOM afterwards. Code spans and fenced
 * code keep their dollars: they are skipped when looking for math, and a placeholder that still
 * lands in code (an indented block) gets its source text back.
 *
 * KaTeX escapes its input and, with `trust: false`, makes no links, images or classes of the
 * author's choosing; its output is still sanitised, by a DOMPurify configuration that allows
 * exactly KaTeX's vocabulary (HTML spans with inline geometry styles, MathML, SVG paths).
 */

import createDOMPurify, { type DOMPurify } from "dompurify";
import katex from "katex";

/** One math span found in the source. */
export interface MathSpan {
  tex: string;
  display: boolean;
  /** The source text, delimiters included (put back where math cannot be drawn). */
  source: string;
}

export interface Extracted {
  text: string;
  spans: MathSpan[];
  /** The placeholder of span `i` is `${prefix}${i}z`. */
  prefix: string;
}

/** Delimiters, tried in this order at each position. */
const DELIMITERS: Array<{ open: string; close: string; display: boolean }> = [
  { open: "$$", close: "$$", display: true },
  { open: "\\[", close: "\\]", display: true },
  { open: "\\(", close: "\\)", display: false },
  { open: "$", close: "$", display: false },
];

function placeholderPrefix(): string {
  return `ipamath${Math.random().toString(36).slice(2, 10)}x`;
}

/** The end of the code at `i` (a fence or a backtick run), or -1 if none starts there. */
function codeEnd(text: string, i: number): number {
  const atLineStart = i === 0 || text[i - 1] === "\n";
  const fence = atLineStart ? /^ {0,3}(`{3,}|~{3,})/.exec(text.slice(i)) : null;
  if (fence) {
    const marker = fence[1] as string;
    const closing = new RegExp(`\\n {0,3}${marker[0] === "`" ? "`" : "~"}{${marker.length},}[ \\t]*(?=\\n|$)`, "g");
    closing.lastIndex = i + fence[0].length;
    const found = closing.exec(text);
    return found ? found.index + found[0].length : text.length;
  }
  if (text[i] !== "`") return -1;
  let run = 1;
  while (text[i + run] === "`") run++;
  const ticks = "`".repeat(run);
  for (let j = text.indexOf(ticks, i + run); j >= 0; j = text.indexOf(ticks, j + run)) {
    if (text[j + run] !== "`" && text[j - 1] !== "`") return j + run;
  }
  return i + run; // an unmatched run is literal backticks
}

/** Where the math opened at `i` by `d` closes (the index of its closing delimiter), or -1. */
function mathEnd(text: string, i: number, d: (typeof DELIMITERS)[number]): number {
  const start = i + d.open.length;
  if (d.open === "$") {
    // Pandoc's rule, so prices stay text: "$5 and $10" is not math.
    if (/\s/.test(text[start] ?? " ")) return -1;
    for (let j = text.indexOf("$", start); j >= 0; j = text.indexOf("$", j + 1)) {
      if (text[j - 1] === "\\") continue;
      if (text.slice(start, j).includes("\n\n")) return -1;
      if (j === start || /\s/.test(text[j - 1] as string) || /\d/.test(text[j + 1] ?? "")) continue;
      return j;
    }
    return -1;
  }
  const j = text.indexOf(d.close, start);
  if (j < 0 || j === start) return -1;
  // Inline math stays in its paragraph.
  if (!d.display && text.slice(start, j).includes("\n\n")) return -1;
  return j;
}

/** Take the math out of markdown `text`, leaving placeholders the markdown pass keeps as is. */
export function extractMath(text: string): Extracted {
  const prefix = placeholderPrefix();
  const spans: MathSpan[] = [];
  let out = "";
  let i = 0;
  let copied = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === "\\" && text[i + 1] === "$") {
      i += 2; // an escaped dollar: markdown turns it into "$"
      continue;
    }
    const code = ch === "`" || ch === " " || ch === "~" ? codeEnd(text, i) : -1;
    if (code > i) {
      i = code;
      continue;
    }
    const d = ch === "$" || ch === "\\" ? DELIMITERS.find((x) => text.startsWith(x.open, i)) : undefined;
    const end = d ? mathEnd(text, i, d) : -1;
    if (!d || end < 0) {
      i++;
      continue;
    }
    const stop = end + d.close.length;
    out += text.slice(copied, i) + `${prefix}${spans.length}z`;
    spans.push({ tex: text.slice(i + d.open.length, end).trim(), display: d.display, source: text.slice(i, stop) });
    i = copied = stop;
  }
  return { text: out + text.slice(copied), spans, prefix };
}

let mathPurifier: { purify: DOMPurify; config: Record<string, unknown> } | undefined;

/** Inline styles KaTeX writes are geometry only; anything that could fetch is dropped. */
const UNSAFE_STYLE = /url\s*\(|expression\s*\(|@import|\\|javascript:|behavior\s*:|-moz-binding/i;

function mathSanitizer(win: Window & typeof globalThis) {
  if (mathPurifier) return mathPurifier;
  // An instance of its own: these settings and hooks are for KaTeX output only.
  const purify = createDOMPurify(win);
  purify.addHook("uponSanitizeAttribute", (_node, data) => {
    if (data.attrName === "style" && UNSAFE_STYLE.test(data.attrValue)) data.keepAttr = false;
  });
  const config = {
    USE_PROFILES: { html: true, mathMl: true, svg: true },
    // The MathML KaTeX writes for screen readers keeps its TeX in <semantics>/<annotation>.
    ADD_TAGS: ["semantics", "annotation"],
    ADD_ATTR: ["style", "encoding", "aria-hidden"],
    FORBID_TAGS: ["script", "style", "a", "img", "image", "use", "foreignObject", "iframe", "form", "input", "annotation-xml"],
    FORBID_ATTR: ["href", "xlink:href", "src", "action", "formaction", "srcset"],
    ALLOW_DATA_ATTR: false,
  };
  mathPurifier = { purify, config };
  return mathPurifier;
}

/** One span of TeX as sanitised KaTeX HTML+MathML (a TeX error is shown, not thrown). */
export function renderTex(span: MathSpan, win: Window & typeof globalThis): string {
  const html = katex.renderToString(span.tex, {
    displayMode: span.display,
    throwOnError: false,
    output: "htmlAndMathml",
    trust: false,
    strict: "ignore",
    maxExpand: 500,
  });
  const { purify, config } = mathSanitizer(win);
  return purify.sanitize(html, config) as unknown as string;
}

/**
 * Put the math of `extracted` back into `root` (sanitised markdown output): rendered in text,
 * as its source inside code and in any attribute the placeholder ended up in.
 */
export function restoreMath(root: DocumentFragment, extracted: Extracted, doc: Document): void {
  if (!extracted.spans.length) return;
  const win = doc.defaultView as (Window & typeof globalThis) | null;
  const pattern = new RegExp(`${extracted.prefix}(\\d+)z`, "g");
  const source = (_m: string, n: string): string => extracted.spans[Number(n)]?.source ?? "";
  for (const node of Array.from(root.querySelectorAll("*"))) {
    for (const attr of Array.from(node.attributes)) {
      if (attr.value.includes(extracted.prefix)) attr.value = attr.value.replace(pattern, source);
    }
  }
  const walker = doc.createTreeWalker(root, 4 /* NodeFilter.SHOW_TEXT */);
  const texts: Text[] = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if ((n as Text).data.includes(extracted.prefix)) texts.push(n as Text);
  }
  for (const text of texts) {
    if (!win || text.parentElement?.closest("code, pre")) {
      text.data = text.data.replace(pattern, source);
      continue;
    }
    const parts = text.data.split(pattern);
    const nodes: Node[] = [];
    parts.forEach((part, k) => {
      if (k % 2 === 0) {
        if (part) nodes.push(doc.createTextNode(part));
        return;
      }
      const span = extracted.spans[Number(part)];
      if (!span) return;
      const template = doc.createElement("template");
      template.innerHTML = renderTex(span, win);
      const box = doc.createElement("span");
      box.className = span.display ? "ipa-math ipa-math-display" : "ipa-math";
      box.append(template.content);
      nodes.push(box);
    });
    text.replaceWith(...nodes);
  }
}
