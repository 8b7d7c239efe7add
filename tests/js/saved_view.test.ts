import { describe, expect, it } from "vitest";

import { fakeObjectUrls } from "./fixtures";
import { isSavedView, renderSaved, type SavedView } from "../../js/saved_view";
import type { ViewState } from "../../js/view_state";

const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

function state(role: "user" | "assistant", text: string, extra: Partial<ViewState> = {}): ViewState {
  return {
    run: null,
    error: null,
    items: [{ kind: "message", id: `m-${text}`, run_id: null, role, status: "completed", blocks: [{ type: "text", text }] }],
    ...extra,
  } as ViewState;
}

describe("saved views", () => {
  it("draws a finished run with its images from base64", () => {
    const withImage = state("assistant", "here is the plot");
    (withImage.items[0] as { blocks: unknown[] }).blocks.push({ type: "image", file_id: "file-1" });
    const view: SavedView = { version: 1, kind: "run", states: [withImage], images: { "file-1": PNG } };
    expect(isSavedView(view)).toBe(true);
    const urls = fakeObjectUrls();
    try {
      const host = document.createElement("div");
      const release = renderSaved(view, host);
      expect(host.querySelector(".ipa-msg.ipa-role-assistant")?.textContent).toContain("here is the plot");
      const img = host.querySelector("img.ipa-image") as HTMLImageElement;
      expect((urls.made.get(img.src) as Blob).size).toBe(atob(PNG).length);
      release();
      expect(urls.revoked.has(img.src)).toBe(true);
    } finally {
      urls.restore();
    }
  });

  it("draws a chat's turns after its history, with the note of a gone kernel", () => {
    const view: SavedView = {
      version: 1,
      kind: "chat",
      states: [state("user", "before"), state("user", "first turn"), state("user", "second turn")],
      images: {},
      model_id: "abc",
    };
    const host = document.createElement("div");
    renderSaved(view, host, "Kernel restarted: run this cell again to continue the chat.");
    const turns = host.querySelectorAll("[data-testid=ipa-chat-turn]");
    expect(Array.from(turns, (t) => t.textContent)).toEqual([expect.stringContaining("first turn"), expect.stringContaining("second turn")]);
    expect(host.querySelector(".ipa-chat-history")?.textContent).toContain("before");
    expect(host.querySelector("[data-testid=ipa-chat-disconnected]")?.getAttribute("role")).toBe("status");
    expect(host.querySelector("textarea")).toBeNull(); // nothing to type into: it would be lost
  });

  it("refuses data that is not a saved view", () => {
    expect(isSavedView({ states: [{}] })).toBe(false);
    expect(isSavedView(null)).toBe(false);
  });
});
