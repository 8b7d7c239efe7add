/**
 * The DOM helpers both widgets build their elements with: one `el()` for every element, and
 * `button()` for the buttons (always `type="button"`: a widget never submits a form).
 */

/** What an element starts with besides its class: its text, a test id and a tooltip. */
export interface ElOptions {
  text?: string;
  /** Set as `data-testid` (the browser tests find the panel's parts by it). */
  testId?: string;
  title?: string;
}

/**
 * A new `tag` element of `doc` with the class `className` (none when empty) and, as the last
 * argument, its text or its options.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className?: string,
  options?: string | ElOptions,
): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  const { text, testId, title } = typeof options === "string" ? { text: options } : (options ?? {});
  if (testId) node.dataset.testid = testId;
  if (text !== undefined) node.textContent = text;
  if (title !== undefined) node.title = title;
  return node;
}

/** A button labelled `label`, with a tooltip. */
export function button(doc: Document, className: string, label: string, title: string, testId?: string): HTMLButtonElement {
  const node = el(doc, "button", className, { testId });
  node.type = "button";
  node.textContent = label;
  node.title = title;
  return node;
}
