import { describe, expect, it } from "vitest";

import { button, el } from "../../js/toolkit/dom";

describe("el()", () => {
  it("makes an element with a class and a text", () => {
    const node = el(document, "span", "ipa-name", "get_weather");
    expect(node.outerHTML).toBe('<span class="ipa-name">get_weather</span>');
  });

  it("leaves out what it is not given", () => {
    expect(el(document, "summary").outerHTML).toBe("<summary></summary>");
    expect(el(document, "code", undefined, "x = 1").outerHTML).toBe("<code>x = 1</code>");
    // An empty text is a text (it clears the node), an empty class is none.
    expect(el(document, "div", "", "").outerHTML).toBe("<div></div>");
  });

  it("takes a test id, a text and a tooltip as options", () => {
    const node = el(document, "div", "ipa-chat-live", { testId: "ipa-chat-live", text: "…", title: "live" });
    expect(node.outerHTML).toBe('<div class="ipa-chat-live" data-testid="ipa-chat-live" title="live">…</div>');
    expect(node).toBeInstanceOf(HTMLDivElement);
  });

  it("makes elements of the document it is given", () => {
    const other = document.implementation.createHTMLDocument("other");
    expect(el(other, "textarea", "ipa-chat-input").ownerDocument).toBe(other);
  });
});

describe("button()", () => {
  it("makes a labelled button that submits nothing", () => {
    const node = button(document, "ipa-chat-send", "Send", "Send (Enter)", "ipa-chat-send");
    expect(node.outerHTML).toBe('<button class="ipa-chat-send" data-testid="ipa-chat-send" type="button" title="Send (Enter)">Send</button>');
    expect(node.type).toBe("button");
  });

  it("needs no test id", () => {
    expect(button(document, "ipa-x", "×", "Remove").hasAttribute("data-testid")).toBe(false);
  });
});
