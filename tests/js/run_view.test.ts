import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import widget, { type RunViewModel } from "../../js/run_view";
import { emptyState, type ViewState } from "../../js/view_state";
import { FakeModel as BaseFakeModel, fakeObjectUrls, files, nextFrame, opsFixture, props } from "./fixtures";

/** A run view's model: its state and images traits. */
class FakeModel extends BaseFakeModel<RunViewModel> {
  constructor(state: ViewState = emptyState(), images: Record<string, DataView> = {}) {
    super({ state, images, _uid: "uid-1" });
  }
}

let urls: ReturnType<typeof fakeObjectUrls>;
beforeEach(() => {
  urls = fakeObjectUrls();
});
afterEach(() => urls.restore());

describe("the RunView module", () => {
  it("asks for a snapshot, then renders every patch in every view", async () => {
    const model = new FakeModel();
    const cleanup = (await widget.initialize?.(props(model))) as () => void;
    expect(model.contents).toEqual([{ type: "snapshot?" }]);
    const first = document.createElement("div");
    const disposeFirst = (await widget.render?.(props(model, first))) as () => void;
    for (const ops of opsFixture("text").batches) model.emit("msg:custom", { type: "patch", ops }, []);
    // A second view opened late sees everything so far at once.
    const second = document.createElement("div");
    const disposeSecond = (await widget.render?.(props(model, second))) as () => void;
    await nextFrame();
    expect(first.textContent).toContain("echo: Hello there, assistant!");
    expect(second.innerHTML).toBe(first.innerHTML);
    disposeFirst();
    disposeSecond();
    expect(first.childElementCount).toBe(0);
    cleanup();
    expect(model.listeners()).toBe(0);
  });

  it("replaces its state with a snapshot or the synced trait", async () => {
    const model = new FakeModel();
    const cleanup = (await widget.initialize?.(props(model))) as () => void;
    const el = document.createElement("div");
    const dispose = (await widget.render?.(props(model, el))) as () => void;
    // Patches for a message it never saw created are ignored...
    model.emit("msg:custom", { type: "patch", ops: [{ op: "text", id: "msg", index: 0, text: "lost" }] }, []);
    // ...until the snapshot brings the whole state.
    const final = opsFixture("tool_round_trip").final;
    model.emit("msg:custom", { type: "snapshot", state: final, images: [] }, []);
    await nextFrame();
    expect(el.querySelectorAll("details.ipa-tool_call")).toHaveLength(2);
    model.set("state", opsFixture("failure").final);
    await nextFrame();
    expect(el.querySelector(".ipa-run .ipa-error")?.textContent).toContain("the model fell over");
    dispose();
    cleanup();
  });

  it("shows images from message buffers and from the images trait", async () => {
    const [fileId, bytes] = Object.entries(files("code_interpreter"))[0];
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const final = opsFixture("code_interpreter").final;

    const live = new FakeModel(final);
    const cleanup = (await widget.initialize?.(props(live))) as () => void;
    const el = document.createElement("div");
    const dispose = (await widget.render?.(props(live, el))) as () => void;
    // Once, in the code card: the reply's image_file block repeats it.
    expect(el.querySelectorAll(".ipa-image-pending")).toHaveLength(1);
    live.emit("msg:custom", { type: "image", file_id: fileId }, [view]);
    await nextFrame();
    const imgs = el.querySelectorAll<HTMLImageElement>("img.ipa-image");
    expect(imgs).toHaveLength(1);
    expect((urls.made.get(imgs[0].src) as Blob).size).toBe(bytes.length);
    dispose();
    cleanup();
    expect(urls.revoked.has(imgs[0].src)).toBe(true);

    // A saved notebook: the bytes come with the model's state, as DataViews.
    const saved = new FakeModel(final, { [fileId]: view });
    saved.attrs._uid = "uid-2";
    const cleanup2 = (await widget.initialize?.(props(saved))) as () => void;
    const el2 = document.createElement("div");
    const dispose2 = (await widget.render?.(props(saved, el2))) as () => void;
    expect(el2.querySelectorAll("img.ipa-image")).toHaveLength(1);
    dispose2();
    cleanup2();
  });

  it("works without initialize (older anywidget), with a state of its own", async () => {
    const model = new FakeModel();
    model.attrs._uid = "uid-3";
    const el = document.createElement("div");
    const dispose = (await widget.render?.(props(model, el))) as () => void;
    model.emit("msg:custom", { type: "patch", ops: opsFixture("failure").batches.flat() }, []);
    await nextFrame();
    expect(el.querySelector(".ipa-run .ipa-badge")?.textContent).toBe("failed");
    dispose();
    expect(model.listeners()).toBe(0);
  });
});

// The bundle esbuild made (npm run build; js/check.sh builds before it tests).
const BUNDLE = join(process.cwd(), "src", "ipyassistant", "static", "run_view.js");

describe.skipIf(!existsSync(BUNDLE))("the built bundle", () => {
  it("is a self-contained ES module that renders a run", async () => {
    const built = (await import(/* @vite-ignore */ pathToFileURL(BUNDLE).href)) as { default: typeof widget };
    const model = new FakeModel(opsFixture("tool_round_trip").final);
    model.attrs._uid = "uid-bundle";
    const cleanup = (await built.default.initialize?.(props(model))) as () => void;
    const el = document.createElement("div");
    const dispose = (await built.default.render?.(props(model, el))) as () => void;
    expect(el.querySelectorAll("details.ipa-tool_call")).toHaveLength(2);
    expect(el.textContent).toContain("get_weather: sunny, 21 °C");
    dispose();
    cleanup();
  });
});
