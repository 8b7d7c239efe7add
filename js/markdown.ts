/**
 * Model-written markdown to safe DOM: marked renders it, DOMPurify removes everything that
 * could run (scripts, event handler attributes, javascript: URLs, forms, frames, styles),
 * highlight.js colours code blocks, each of which gets a copy button, and KaTeX draws the math
 * (math.ts: taken out before the markdown pass, so TeX survives it).
 *
 * Images whose URL a model wrote are shown as links, not loaded: loading them would let a
 * prompt-injected reply send notebook data to any server the moment it is displayed.
 */

import createDOMPurify, { type DOMPurify } from "dompurify";
import { Marked } from "marked";

import { hljs } from "./highlight";
import { extractMath, restoreMath } from "./math";
import { frontend } from "./toolkit/frontend";

const marked = new Marked({ gfm: true, breaks: false, async: false });
/** For what a person typed: each line break is one (a model's markdown follows the spec). */
const typed = new Marked({ gfm: true, breaks: true, async: false });

// `input` is allowed for one thing only, GFM task lists: see the hook in purify().
const FORBID_TAGS = [
  "style", "form", "button", "textarea", "select", "option", "iframe", "frame",
  "frameset", "object", "embed", "link", "meta", "base", "svg", "math", "template",
];

let purifier: DOMPurify | undefined;

function purify(): DOMPurify {
  if (purifier) return purifier;
  // An instance of our own: its hooks must not change how the rest of the page sanitises.
  const instance = createDOMPurify(window);
  instance.addHook("afterSanitizeAttributes", (node) => {
    const el = node as Element;
    if (el.tagName === "INPUT") {
      // A task list's box: shown, never editable, named by its item's text.
      if (el.getAttribute("type") !== "checkbox") return el.remove();
      const checked = el.hasAttribute("checked");
      for (const attr of Array.from(el.attributes)) el.removeAttribute(attr.name);
      el.setAttribute("type", "checkbox");
      el.setAttribute("disabled", "");
      if (checked) el.setAttribute("checked", "");
      el.setAttribute("class", "ipa-task");
    }
    if (el.tagName === "A") {
      el.setAttribute("target", "_blank");
      el.setAttribute("rel", "noopener noreferrer");
    }
  });
  purifier = instance;
  return instance;
}

/** Sanitise an HTML string into a fragment of the given document. */
export function sanitize(html: string, doc: Document = document): DocumentFragment {
  const clean = purify().sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS,
    FORBID_ATTR: ["style", "srcset", "action", "formaction"],
    ALLOW_DATA_ATTR: false,
  });
  const template = doc.createElement("template");
  template.innerHTML = clean;
  const fragment = template.content;
  neutraliseImages(fragment, doc);
  return fragment;
}

function neutraliseImages(root: DocumentFragment, doc: Document): void {
  for (const img of Array.from(root.querySelectorAll("img"))) {
    const src = img.getAttribute("src") ?? "";
    const link = doc.createElement("a");
    link.textContent = `[image: ${img.getAttribute("alt") || src || "?"}]`;
    if (/^https?:/i.test(src)) {
      link.href = src;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    }
    img.replaceWith(link);
  }
}

/** Highlight the code blocks under `root` and give each a copy button. */
export function decorateCode(root: ParentNode, doc: Document = document): void {
  for (const code of Array.from(root.querySelectorAll("pre > code"))) {
    highlight(code as HTMLElement);
    const pre = code.parentElement as HTMLElement;
    pre.classList.add("ipa-code");
    const text = (): string => code.textContent ?? "";
    pre.prepend(codeActions(doc, copyButton(text, doc), insertButton(text, doc)));
  }
}

/** Colour one `<code>` element; the language comes from its `language-*` class. */
export function highlight(code: HTMLElement, language?: string): void {
  const lang = language ?? /language-(\S+)/.exec(code.className)?.[1];
  if (!lang || !hljs.getLanguage(lang)) return;
  // highlight() escapes its input: the result holds only hljs's own spans around text.
  const result = hljs.highlight(code.textContent ?? "", { language: lang, ignoreIllegals: true });
  code.innerHTML = result.value;
  code.classList.add("hljs");
}

export function copyButton(text: () => string, doc: Document = document): HTMLElement {
  const button = doc.createElement("button");
  button.type = "button";
  button.className = "ipa-copy";
  button.title = "Copy to the clipboard";
  button.textContent = "Copy";
  const copy = (event: Event): void => {
    event.preventDefault();
    event.stopPropagation();
    const clipboard = doc.defaultView?.navigator.clipboard;
    if (!clipboard) return;
    void clipboard.writeText(text()).then(
      () => {
        button.textContent = "Copied";
        doc.defaultView?.setTimeout(() => (button.textContent = "Copy"), 1200);
      },
      () => undefined,
    );
  };
  button.addEventListener("click", copy);
  return button;
}

/** The buttons of a code block, in one row at its corner. */
export function codeActions(doc: Document, ...buttons: HTMLElement[]): HTMLElement {
  const row = doc.createElement("div");
  row.className = "ipa-code-actions";
  row.append(...buttons);
  return row;
}

/**
 * "Insert into a new cell": the front end's command puts the code below the cell showing it
 * (JupyterLab, with the package's extension); elsewhere the code is copied instead.
 */
export function insertButton(text: () => string, doc: Document = document): HTMLElement {
  const button = doc.createElement("button");
  button.type = "button";
  button.className = "ipa-insert";
  button.title = "Insert into a new cell below";
  button.setAttribute("aria-label", "Insert into a new cell");
  button.textContent = "Insert";
  button.addEventListener("click", (event) => {
    event.preventDefault();
    event.stopPropagation();
    const done = (label: string): void => {
      button.textContent = label;
      doc.defaultView?.setTimeout(() => (button.textContent = "Insert"), 1500);
    };
    const insert = frontend()?.insertCell(text(), button) ?? Promise.resolve(false);
    void insert.then(
      (inserted) => {
        if (inserted) return done("Inserted");
        const clipboard = doc.defaultView?.navigator.clipboard;
        void clipboard?.writeText(text()).then(() => done("Copied: paste into a cell"), () => undefined);
      },
      () => undefined,
    );
  });
  return button;
}

/** Markdown to a sanitised fragment with highlighted code blocks and rendered math. */
export function renderMarkdown(text: string, doc: Document = document, breaks = false): DocumentFragment {
  const math = extractMath(text);
  const html = (breaks ? typed : marked).parse(math.text) as string;
  const fragment = sanitize(html, doc);
  restoreMath(fragment, math, doc);
  decorateCode(fragment, doc);
  return fragment;
}
