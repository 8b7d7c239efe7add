import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Announcer, spoken } from "../../js/announce";
import { makeContext, RunRenderer } from "../../js/render";
import { applyOps, emptyState, type ViewState } from "../../js/view_state";
import { fakeObjectUrls, files, opsFixture } from "./fixtures";

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  vi.useRealTimers();
  document.body.replaceChildren();
});

/** Stream a recorded run into a renderer with an announcer, one batch at a time. */
function stream(name: string): { host: HTMLElement; announcer: Announcer; said: string[] } {
  const host = document.createElement("div");
  document.body.append(host);
  const ctx = makeContext();
  const renderer = new RunRenderer(host, ctx);
  const announcer = (ctx.announcer = new Announcer(host));
  const said: string[] = [];
  new MutationObserver(() => said.push(announcer.region.textContent ?? "")).observe(announcer.region, {
    childList: true,
    characterData: true,
    subtree: true,
  });
  const state: ViewState = emptyState();
  renderer.render(state);
  vi.advanceTimersByTime(1); // the first draw is over
  for (const batch of opsFixture(name).batches) renderer.update(state, applyOps(state, batch));
  return { host, announcer, said };
}

describe("the live region", () => {
  it("is polite and says the finished reply once, not its tokens", async () => {
    const { announcer, said } = stream("text");
    expect(announcer.region.getAttribute("aria-live")).toBe("polite");
    expect(announcer.region.textContent).toBe("");
    vi.advanceTimersByTime(1000);
    await Promise.resolve();
    expect(said).toHaveLength(1);
    expect(said[0]).toContain("echo: Hello there, assistant!");
    expect(said[0]).not.toContain("**");
  });

  it("says a tool call finished and a run that failed, throttled to one announcement", async () => {
    const tool = stream("tool_round_trip");
    vi.advanceTimersByTime(1000);
    await Promise.resolve();
    expect(tool.said.join(" ")).toContain("Tool get_weather");
    const failed = stream("failure");
    vi.advanceTimersByTime(1000);
    await Promise.resolve();
    expect(failed.said.join(" ")).toMatch(/Run failed: the model fell over/);
  });

  it("says nothing of what a view shows when first drawn", async () => {
    const host = document.createElement("div");
    const ctx = makeContext();
    const renderer = new RunRenderer(host, ctx);
    ctx.announcer = new Announcer(host);
    renderer.render(opsFixture("text").final);
    vi.advanceTimersByTime(5000);
    await Promise.resolve();
    expect(ctx.announcer.region.textContent).toBe("");
  });

  it("reads markdown as words", () => {
    expect(spoken("**Bold** and [a link](https://x.org)\n\n```py\nx=1\n```\n# Title")).toBe(
      "Bold and a link (code block) Title",
    );
  });
});

describe("images", () => {
  it("are described by their context, not by their file id alone", () => {
    const urls = fakeObjectUrls();
    try {
      const fixture = opsFixture("code_interpreter");
      const ctx = makeContext();
      for (const [id, data] of Object.entries(files("code_interpreter"))) ctx.images.set(id, data);
      const host = document.createElement("div");
      new RunRenderer(host, ctx).render(fixture.final);
      const alts = Array.from(host.querySelectorAll("img")).map((img) => img.alt);
      expect(alts.length).toBeGreaterThan(0);
      for (const alt of alts) expect(alt).toMatch(/^(Plot from the code interpreter|Image from the assistant's reply)/);
      expect(alts.some((alt) => alt.startsWith("Plot from the code interpreter (file-"))).toBe(true);
    } finally {
      urls.restore();
    }
  });
});

describe("buttons", () => {
  it("are named by their words", () => {
    const host = document.createElement("div");
    const ctx = makeContext();
    new RunRenderer(host, ctx).render(opsFixture("code_interpreter").final);
    const copy = host.querySelector<HTMLButtonElement>(".ipa-copy");
    const insert = host.querySelector<HTMLButtonElement>(".ipa-insert");
    expect(copy?.textContent).toBe("Copy");
    expect(insert?.getAttribute("aria-label")).toBe("Insert into a new cell");
    expect(insert?.type).toBe("button");
  });
});
