import { afterEach, describe, expect, it } from "vitest";

import { ChatState } from "../../js/chat_state";
import { ChatView } from "../../js/chat_view";
import { makeContext, RunRenderer } from "../../js/render";
import { cite, excerpt, isMarker, withMarkers } from "../../js/sources";
import { applyOps, emptyState, noChanges, type Citation, type MessageItem, type ViewState } from "../../js/view_state";
import { opsFixture } from "./fixtures";

// tests/jupyter/test_file_search_views.py makes the fixture: a search, then a reply citing it.
const CHUNK_A = "The tide table says the harbour opens at six. Boats leave at seven.";

afterEach(() => document.body.replaceChildren());

function streamed(): { root: HTMLElement; state: ViewState } {
  const root = document.createElement("div");
  document.body.append(root);
  const renderer = new RunRenderer(root, makeContext());
  const state = emptyState();
  renderer.render(state);
  for (const batch of opsFixture("file_search").batches) renderer.update(state, applyOps(state, batch, noChanges()));
  return { root, state };
}

describe("a file search step", () => {
  it("shows its query, ranking and results with their scores", () => {
    const { root } = streamed();
    const card = root.querySelector(".ipa-file_search") as HTMLDetailsElement;
    expect(card.querySelector("summary .ipa-name")?.textContent).toBe("File search");
    expect(card.querySelector("summary .ipa-query")?.textContent).toBe("when does the harbour open");
    expect(card.querySelector("summary .ipa-count")?.textContent).toBe("2 results");
    expect(card.querySelector(".ipa-ranking")?.textContent).toBe("ranker auto, score threshold 0");
    const results = Array.from(card.querySelectorAll(".ipa-result")).map((r) => r.querySelector("summary")?.textContent);
    expect(results).toEqual(["tides.mdscore 0.91", "keepers.mdscore 0.42"]);
  });

  it("keeps each chunk closed until opened, and open across re-renders", () => {
    const root = document.createElement("div");
    const ctx = makeContext();
    const renderer = new RunRenderer(root, ctx);
    const state = opsFixture("file_search").final;
    renderer.render(state);
    const chunk = root.querySelector(".ipa-chunk") as HTMLDetailsElement;
    expect(chunk.open).toBe(false);
    expect(chunk.querySelector(".ipa-chunk-text")?.textContent).toBe(CHUNK_A);
    chunk.querySelector("summary")?.click();
    renderer.render(state);
    expect((root.querySelector(".ipa-chunk") as HTMLDetailsElement).open).toBe(true);
  });

  it("shows results without chunks as plain rows, and says it is searching", () => {
    const state = opsFixture("file_search").final;
    const search = state.items.find((i) => i.kind === "file_search");
    if (search?.kind !== "file_search") throw new Error("no search");
    search.results = search.results.map((r) => ({ ...r, content: null }));
    const root = document.createElement("div");
    new RunRenderer(root, makeContext()).render(state);
    expect(root.querySelector(".ipa-chunk")).toBeNull();
    expect(root.querySelectorAll(".ipa-result")).toHaveLength(2);
    search.status = "in_progress";
    search.results = [];
    new RunRenderer(root, makeContext()).render(state);
    expect(root.querySelector(".ipa-count")?.textContent).toBe("searching…");
  });
});

describe("citations", () => {
  it("are numbered links, named for screen readers, to the sources under the reply", () => {
    const { root } = streamed();
    const reply = root.querySelectorAll(".ipa-msg")[1];
    const link = reply.querySelector(".ipa-text sup.ipa-cite a") as HTMLAnchorElement;
    expect(link.textContent).toBe("[1]");
    expect(link.getAttribute("aria-label")).toBe("Source 1: tides.md");
    expect(link.getAttribute("href")).toBe("#ipa-src-msg_1-1");
    // The quoted words stay; the number follows them.
    expect(reply.querySelector(".ipa-text")?.textContent?.trim()).toBe(
      'From tides.md: "The tide table says the harbour opens at six."[1]',
    );
    const sources = reply.querySelector("ol.ipa-sources") as HTMLOListElement;
    expect(sources.getAttribute("aria-label")).toBe("Sources");
    const entry = sources.querySelector("li") as HTMLLIElement;
    expect(entry.id).toBe("ipa-src-msg_1-1");
    expect(entry.querySelector(".ipa-source-file")?.textContent).toBe("tides.md");
    expect(entry.querySelector(".ipa-source-quote")?.textContent).toBe(CHUNK_A);
  });

  it("move the focus to their source when followed", () => {
    const { root } = streamed();
    (root.querySelector(".ipa-cite a") as HTMLAnchorElement).click();
    expect(document.activeElement?.id).toBe("ipa-src-msg_1-1");
    expect(window.location.hash).toBe("");
  });

  it("render the same streamed and from scratch", () => {
    const { root, state } = streamed();
    const fresh = document.createElement("div");
    new RunRenderer(fresh, makeContext()).render(state);
    expect(root.innerHTML).toBe(fresh.innerHTML);
  });

  it("get their sources when the search arrives after the reply", () => {
    const fixture = opsFixture("file_search");
    const root = document.createElement("div");
    const renderer = new RunRenderer(root, makeContext());
    const state = emptyState();
    renderer.render(state);
    const search = fixture.final.items.find((i) => i.kind === "file_search");
    const reply = fixture.final.items.find((i) => i.kind === "message" && i.role === "assistant");
    renderer.update(state, applyOps(state, [{ op: "item", item: reply! }]));
    expect(root.querySelector(".ipa-source-file")?.textContent).toBe("file-a");
    renderer.update(state, applyOps(state, [{ op: "item", item: search! }]));
    expect(root.querySelector(".ipa-source-file")?.textContent).toBe("tides.md");
  });

  it("replace markers the model wrote, share numbers by file and quote, and quote nothing for a marker", () => {
    const text = "Six【4:0†a】, seven【4:1†a】 and noon【4:2†b】.";
    const citations = ["【4:0†a】", "【4:1†a】", "【4:2†b】"].map((m): Citation => {
      const start = Array.from(text.slice(0, text.indexOf(m))).length;
      return { text: m, start, end: start + Array.from(m).length, file_id: m.endsWith("b】") ? "file-b" : "file-a" };
    });
    const item: MessageItem = {
      kind: "message", id: "m", run_id: "r", role: "assistant", status: "completed",
      blocks: [{ type: "text", text, citations }],
    };
    const cited = cite(item, []);
    expect(cited.numbers).toEqual([[1, 1, 2]]);
    expect(cited.sources.map((s) => [s.file_name, s.quote])).toEqual([["file-a", null], ["file-b", null]]);
    expect(withMarkers(text, citations, cited.numbers[0], (n) => `[${n}]`)).toBe("Six[1], seven[1] and noon[2].");
    expect(isMarker("【x】")).toBe(true);
    expect(isMarker('"words"')).toBe(false);
  });

  it("put a number whose offsets do not fit at the end, counting characters as Python does", () => {
    const text = "😀 six";
    const citations: Citation[] = [
      { text: "six", start: 2, end: 5, file_id: "f" },
      { text: "?", start: 40, end: 50, file_id: "g" },
    ];
    expect(withMarkers(text, citations, [1, 2], (n) => `<${n}>`)).toBe("😀 six<1><2>");
  });

  it("put a quotation's number after its closing quote mark", () => {
    const text = 'From a.md: "Opens at six." Then “more”.';
    const citations: Citation[] = [
      { text: "Opens at six.", start: 12, end: 25, file_id: "f" },
      { text: "more", start: 33, end: 37, file_id: "g" },
    ];
    expect(withMarkers(text, citations, [1, 2], (n) => `[${n}]`)).toBe('From a.md: "Opens at six."[1] Then “more”[2].');
  });

  it("quote a long chunk around the cited words", () => {
    const chunk = `${"a".repeat(1000)} the words ${"b".repeat(1000)}`;
    const quoted = excerpt(chunk, "the words", 100);
    expect(quoted.startsWith("…") && quoted.endsWith("…") && quoted.includes("the words")).toBe(true);
    expect(quoted.length).toBe(102);
    expect(excerpt(chunk, "missing", 10)).toBe(`${"a".repeat(10)}…`);
  });
});

describe("the chat's file picker", () => {
  it("says what the attached files are for", () => {
    const host = document.createElement("div");
    const actions = { send: () => undefined, stop: () => undefined };
    const view = new ChatView(host, new ChatState(emptyState(), []), actions, {
      attachments: true,
      attachTitle: "Attach files to search",
    });
    expect(view.attachButton.title).toBe("Attach files to search");
    view.setAttachTitle("Attach files to search and for the code interpreter");
    expect(view.attachButton.title).toBe("Attach files to search and for the code interpreter");
    view.dispose();
  });
});
