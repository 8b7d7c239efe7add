import { afterEach, beforeEach, describe, expect, it } from "vitest";

import {
  ImageStore,
  imageMime,
  makeContext,
  prettyArguments,
  renderState,
  RunRenderer,
  type RenderContext,
} from "../../js/render";
import { applyOps, emptyState, noChanges, type ToolCallItem, type ViewState } from "../../js/view_state";
import { fakeObjectUrls, files, opsFixture } from "./fixtures";

let urls: ReturnType<typeof fakeObjectUrls>;
beforeEach(() => {
  urls = fakeObjectUrls();
});
afterEach(() => urls.restore());

function context(partial: Partial<RenderContext> = {}): RenderContext {
  // A fixed clock: elapsed times are deterministic.
  return makeContext({ now: () => 1_800_000_000, ...partial });
}

/** Render a fixture incrementally, batch by batch, as the live view does. */
function streamed(name: string, ctx: RenderContext): { root: HTMLElement; state: ViewState; renderer: RunRenderer } {
  const root = document.createElement("div");
  const renderer = new RunRenderer(root, ctx);
  const state = emptyState();
  renderer.render(state);
  for (const batch of opsFixture(name).batches) renderer.update(state, applyOps(state, batch, noChanges()));
  return { root, state, renderer };
}

describe("rendering a view state", () => {
  it("shows the user's message and the streamed reply", () => {
    const { root } = streamed("text", context());
    const messages = root.querySelectorAll(".ipa-msg");
    expect(messages).toHaveLength(2);
    expect(messages[0].classList).toContain("ipa-role-user");
    expect(messages[1].textContent).toContain("echo: Hello there, assistant!");
    // Markdown is rendered: **assistant** is bold.
    expect(messages[1].querySelector("strong")?.textContent).toBe("assistant");
    expect(root.querySelector(".ipa-run .ipa-badge")?.textContent).toBe("completed");
    expect(root.querySelector(".ipa-usage")?.textContent).toMatch(/^\d+ tokens$/);
    expect(root.querySelector(".ipa-cursor")).toBeNull();
  });

  it.each(["text", "tool_round_trip", "code_interpreter", "failure", "cancel"])(
    "renders %s incrementally exactly as from scratch",
    (name) => {
      const ctx = context();
      const { root, state } = streamed(name, ctx);
      const fresh = document.createElement("div");
      new RunRenderer(fresh, context({ images: ctx.images })).render(state);
      expect(root.innerHTML).toBe(fresh.innerHTML);
    },
  );

  it("streams text into an in-progress message with a cursor", () => {
    const ctx = context();
    const root = document.createElement("div");
    const renderer = new RunRenderer(root, ctx);
    const state = emptyState();
    renderer.render(state);
    const item = { kind: "message" as const, id: "m1", run_id: "r", role: "assistant", status: "in_progress", blocks: [] };
    renderer.update(state, applyOps(state, [{ op: "item", item }], noChanges()));
    renderer.update(state, applyOps(state, [{ op: "block", id: "m1", index: 0, block: { type: "text", text: "Hel" } }], noChanges()));
    renderer.update(state, applyOps(state, [{ op: "text", id: "m1", index: 0, text: "lo `x`" }], noChanges()));
    const message = root.querySelector('[data-id="m1"]') as HTMLElement;
    expect(message.textContent).toContain("Hello x");
    expect(message.querySelector("code")?.textContent).toBe("x");
    expect(message.querySelector(".ipa-cursor")).not.toBeNull();
    expect(root.querySelectorAll(".ipa-msg")).toHaveLength(1);
  });

  it("shows a failed run's error and a cancelled run's status", () => {
    const failed = streamed("failure", context()).root;
    expect(failed.querySelector(".ipa-run .ipa-error")?.textContent).toBe("server_error: the model fell over");
    expect(failed.querySelector(".ipa-run .ipa-badge")?.classList).toContain("ipa-status-failed");
    const cancelled = streamed("cancel", context()).root;
    expect(cancelled.querySelector(".ipa-run .ipa-badge")?.textContent).toBe("cancelled");
  });

  it("shows the elapsed time, ticking while the run is active", () => {
    const state: ViewState = {
      ...emptyState(),
      run: {
        id: "r", thread_id: null, assistant_id: null, model: "test", status: "in_progress",
        created_at: 1_799_999_990, started_at: 1_799_999_995, finished_at: null, usage: null, error: null,
      },
    };
    const el = renderState(state, context());
    expect(el.querySelector(".ipa-elapsed")?.textContent).toBe("5 s");
    expect(RunRenderer.ticking(state)).toBe(true);
  });
});

describe("tool-call cards", () => {
  it("show each call's name, arguments and output, collapsed once completed", () => {
    const { root } = streamed("tool_round_trip", context());
    const cards = root.querySelectorAll<HTMLDetailsElement>("details.ipa-tool_call");
    expect(cards).toHaveLength(2);
    const [weather, clock] = Array.from(cards);
    expect(weather.querySelector(".ipa-name")?.textContent).toBe("get_weather");
    expect(weather.querySelector(".ipa-badge")?.textContent).toBe("completed");
    expect(weather.open).toBe(false);
    const sections = weather.querySelectorAll(".ipa-section");
    expect(sections[0].querySelector("code")?.textContent).toBe('{\n  "city": "Paris"\n}');
    // Arguments that parse are highlighted as JSON.
    expect(sections[0].querySelector(".hljs-attr")?.textContent).toBe('"city"');
    expect(sections[1].textContent).toContain("sunny, 21 °C");
    expect(clock.textContent).toContain("error: unknown timezone 'Mars/Olympus'");
  });

  it("stream their arguments and wait, open, while the run requires action", () => {
    const fixture = opsFixture("tool_round_trip");
    const ctx = context();
    const root = document.createElement("div");
    const renderer = new RunRenderer(root, ctx);
    const state = emptyState();
    renderer.render(state);
    let partial = "";
    for (const batch of fixture.batches) {
      renderer.update(state, applyOps(state, batch, noChanges()));
      const card = root.querySelector("details.ipa-tool_call");
      if (card && !partial && (state.items[1] as ToolCallItem).arguments.length > 0 && !(state.items[1] as ToolCallItem).arguments.endsWith("}")) {
        partial = card.querySelector(".ipa-section code")?.textContent ?? "";
      }
      if (state.run?.status === "requires_action") break;
    }
    expect(partial.length).toBeGreaterThan(0);
    const cards = root.querySelectorAll<HTMLDetailsElement>("details.ipa-tool_call");
    expect(cards).toHaveLength(2);
    for (const card of cards) {
      expect(card.open).toBe(true);
      expect(card.querySelector(".ipa-badge")?.textContent).toBe("requires action");
      expect(card.querySelector(".ipa-note")?.textContent).toContain("waiting");
    }
  });

  it("keep the user's open/closed choice across re-renders", () => {
    const ctx = context();
    const { root, state } = streamed("tool_round_trip", ctx);
    const summary = root.querySelector("details.ipa-tool_call > summary") as HTMLElement;
    summary.click();
    const renderer = new RunRenderer(root, ctx);
    renderer.render(state);
    expect(root.querySelector<HTMLDetailsElement>("details.ipa-tool_call")?.open).toBe(true);
  });

  it("show a failed step's error", () => {
    const ctx = context();
    const state = emptyState();
    applyOps(state, [{
      op: "item",
      item: {
        kind: "tool_call", id: "c", run_id: "r", step_id: "s", index: 0, name: "f", arguments: "{",
        output: null, status: "failed", error: { code: "server_error", message: "boom" },
      },
    }]);
    const card = renderState(state, ctx).querySelector("details.ipa-tool_call") as HTMLDetailsElement;
    expect(card.classList).toContain("ipa-status-failed");
    expect(card.open).toBe(true);
    expect(card.querySelector(".ipa-error")?.textContent).toBe("server_error: boom");
    expect(prettyArguments("{").json).toBe(false);
  });
});

describe("code interpreter cards and images", () => {
  it("show code, logs and the image from its bytes", () => {
    const images = new ImageStore();
    const bytes = files("code_interpreter");
    const ctx = context({ images });
    const { root, state, renderer } = streamed("code_interpreter", ctx);
    const card = root.querySelector("details.ipa-code") as HTMLDetailsElement;
    expect(card.open).toBe(true);
    expect(card.querySelector("pre.ipa-code code.language-python")?.textContent).toContain("ax.plot([1, 3, 2])");
    expect(card.querySelector(".hljs-keyword")).not.toBeNull();
    expect(card.querySelector(".ipa-logs")?.textContent).toBe("plotted 3 points\n");
    // No bytes yet: a placeholder in the card (the reply's image_file block repeats it).
    expect(root.querySelectorAll(".ipa-image-pending")).toHaveLength(1);
    expect(card.querySelector(".ipa-image-pending")).not.toBeNull();

    const [fileId, data] = Object.entries(bytes)[0];
    images.set(fileId, data);
    renderer.refreshImages(state, [fileId]);
    const imgs = root.querySelectorAll<HTMLImageElement>("img.ipa-image");
    expect(imgs).toHaveLength(1);
    expect(imgs[0].closest("details.ipa-code")).not.toBeNull();
    expect(urls.made.size).toBe(1); // one object URL per file
    const blob = urls.made.get(imgs[0].src) as Blob;
    expect(blob.type).toBe("image/png");
    expect(blob.size).toBe(data.length);
    images.dispose();
    expect(urls.revoked.has(imgs[0].src)).toBe(true);
  });

  it("draw each image once: a reply skips the files its run's code cards show", () => {
    const state = opsFixture("code_interpreter").final;
    const code = state.items.find((item) => item.kind === "code");
    const reply = state.items.find((item) => item.kind === "message" && item.role === "assistant");
    if (code?.kind !== "code" || reply?.kind !== "message") throw new Error("fixture changed");
    const fileId = code.images[0];
    expect(reply.blocks).toContainEqual({ type: "image", file_id: fileId });
    expect(reply.run_id).toBe(code.run_id);
    expect(renderState(state, context()).querySelectorAll(`[data-file-id="${fileId}"]`)).toHaveLength(1);

    // The same file in another run's reply, or sent by the user, is drawn there too.
    const other: ViewState = {
      ...state,
      items: [
        ...state.items,
        { ...reply, id: "later", run_id: "run_other" },
        { kind: "message", id: "mine", run_id: code.run_id, role: "user", status: "completed", blocks: [{ type: "image", file_id: fileId }] },
      ],
    };
    const root = renderState(other, context());
    expect(root.querySelectorAll(`[data-file-id="${fileId}"]`)).toHaveLength(3);
    expect(root.querySelector('[data-id="later"] [data-file-id]')).not.toBeNull();
  });

  it("tell image types from their first bytes", () => {
    expect(imageMime(new Uint8Array([0x89, 0x50, 0x4e, 0x47]))).toBe("image/png");
    expect(imageMime(new Uint8Array([0xff, 0xd8, 0xff, 0xe0]))).toBe("image/jpeg");
    expect(imageMime(new TextEncoder().encode('<?xml version="1.0"?><svg></svg>'))).toBe("image/svg+xml");
  });
});
