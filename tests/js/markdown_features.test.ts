import { describe, expect, it } from "vitest";

import { renderMarkdown } from "../../js/markdown";
import { extractMath } from "../../js/math";

function render(text: string): HTMLElement {
  const host = document.createElement("div");
  host.append(renderMarkdown(text));
  return host;
}

/** The TeX KaTeX was given, from the annotation of its MathML. */
function tex(host: HTMLElement): string[] {
  return Array.from(host.querySelectorAll("annotation")).map((a) => a.textContent ?? "");
}

describe("math", () => {
  it("draws inline and display math in every delimiter with KaTeX", () => {
    const host = render("Euler: $e^{i\\pi}+1=0$ and \\(a_1\\).\n\n$$\\int_0^1 x\\,dx$$\n\n\\[b_2\\]");
    expect(host.querySelectorAll(".ipa-math .katex")).toHaveLength(4);
    expect(host.querySelectorAll(".ipa-math-display .katex-display")).toHaveLength(2);
    expect(host.querySelectorAll("math")).toHaveLength(4);
    expect(tex(host)).toEqual(["e^{i\\pi}+1=0", "a_1", "\\int_0^1 x\\,dx", "b_2"]);
    expect(host.textContent).not.toContain("$");
  });

  it("keeps TeX from the markdown pass: underscores and \\, survive", () => {
    const host = render("$a_b + c_d$ and $x\\,y$");
    expect(host.querySelector("em")).toBeNull();
    expect(tex(host)).toEqual(["a_b + c_d", "x\\,y"]);
  });

  it("leaves prices, escaped dollars and code alone", () => {
    const host = render("It costs $5 and $10. Escaped \\$x\\$.\n\n`$y$` and\n\n```\n$z$\n```\n\n    $w$\n");
    expect(host.querySelector(".katex")).toBeNull();
    expect(host.textContent).toContain("$5 and $10");
    expect(host.textContent).toContain("$x$");
    expect(Array.from(host.querySelectorAll("code")).map((c) => c.textContent)).toEqual(["$y$", "$z$\n", "$w$\n"]);
  });

  it("shows a TeX error instead of throwing", () => {
    const host = render("$\\frac{1$");
    expect(host.querySelector(".katex-error, .katex")).not.toBeNull();
  });

  it("runs nothing written inside math", () => {
    const host = render("$<script>window.__pwned=1</script>$ and $$\\href{javascript:alert(1)}{x}$$ $\\htmlStyle{background:url(http://x)}{y}$");
    expect(host.querySelector("script, a, img, iframe")).toBeNull();
    for (const node of Array.from(host.querySelectorAll("[style]"))) {
      expect(node.getAttribute("style")).not.toMatch(/url\(/i);
    }
    for (const node of Array.from(host.querySelectorAll("*"))) {
      for (const attr of Array.from(node.attributes)) expect(attr.name.startsWith("on")).toBe(false);
    }
  });

  it("puts a placeholder that lands in a link target back as source text", () => {
    const { text, spans, prefix } = extractMath("[x]($a$) b");
    expect(spans).toHaveLength(1);
    expect(text).toBe(`[x](${prefix}0z) b`);
    const host = render("[x]($a$)");
    expect(host.innerHTML).not.toContain("ipamath");
  });
});

describe("code highlighting", () => {
  it.each([
    ["javascript", "const x = 1; // note", "hljs-keyword"],
    ["js", "function f() { return 'a'; }", "hljs-string"],
    ["typescript", "let n: number = 2;", "hljs-keyword"],
    ["sql", "SELECT name FROM users WHERE id = 1;", "hljs-keyword"],
    ["bash", "echo \"hi\"", "hljs-built_in"],
    ["yaml", "key: value", "hljs-attr"],
    ["html", "<div class=\"a\"></div>", "hljs-tag"],
    ["rust", "fn main() {}", "hljs-keyword"],
    ["go", "func main() {}", "hljs-keyword"],
    ["r", "x <- c(1, 2)", "hljs-number"],
    ["julia", "function f(x) end", "hljs-keyword"],
    ["cpp", "int main() { return 0; }", "hljs-keyword"],
  ])("colours %s", (lang, code, token) => {
    const host = render("```" + lang + "\n" + code + "\n```");
    const el = host.querySelector("pre > code") as HTMLElement;
    expect(el.classList.contains("hljs")).toBe(true);
    expect(el.querySelector(`.${token}`)).not.toBeNull();
    expect(el.textContent).toBe(code + "\n");
  });

  it("leaves untagged and unknown blocks plain", () => {
    const host = render("```\nSELECT 1\n```\n\n```cobol\nDISPLAY 'x'\n```");
    expect(host.querySelectorAll(".hljs")).toHaveLength(0);
  });
});

describe("task lists", () => {
  it("shows disabled checkboxes, checked as written", () => {
    const host = render("- [x] done\n- [ ] to do\n");
    const boxes = Array.from(host.querySelectorAll("input")) as HTMLInputElement[];
    expect(boxes.map((b) => [b.type, b.disabled, b.checked])).toEqual([
      ["checkbox", true, true],
      ["checkbox", true, false],
    ]);
    expect(host.textContent).toContain("done");
  });

  it("still removes every other input a model writes", () => {
    const host = render('<input type="text" value="x" onfocus="alert(1)"> <input type="checkbox" name="n" onclick="alert(1)">');
    const inputs = Array.from(host.querySelectorAll("input")) as HTMLInputElement[];
    expect(inputs).toHaveLength(1);
    expect(inputs[0]?.type).toBe("checkbox");
    expect(inputs[0]?.disabled).toBe(true);
    expect(Array.from(inputs[0]?.attributes ?? []).map((a) => a.name).sort()).toEqual(["class", "disabled", "type"]);
  });
});

describe("tables", () => {
  it("renders GFM tables", () => {
    const host = render("| a | b |\n|---|---|\n| 1 | 2 |\n");
    expect(host.querySelectorAll("table th")).toHaveLength(2);
    expect(host.querySelectorAll("table td")).toHaveLength(2);
  });
});
