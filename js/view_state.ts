/**
 * The view state of a run and the ops that change it: the TypeScript mirror of
 * `src/ipyassistant/jupyter/view_state.py` (its module docstring is the reference).
 *
 * The kernel folds stream events into a view state and sends the ops between states; the
 * browser applies the same ops here. An op whose target item is unknown is ignored, so that
 * a view that missed the start of a stream heals at the next whole item or snapshot.
 */

export interface ViewError {
  code: string;
  message: string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface RunInfo {
  id: string;
  thread_id: string | null;
  assistant_id: string | null;
  model: string | null;
  status: string;
  /** Unix seconds. */
  created_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  usage: Usage | null;
  error: ViewError | null;
}

/** A `file_citation` annotation of a text block (see `sources.ts`). */
export interface Citation {
  /** The annotated text: a marker the model wrote (`【4:0†notes.md】`) or the quoted words. */
  text: string;
  /** Character offsets of `text` in the block's text. */
  start: number;
  end: number;
  file_id: string;
  /** The file's name when known without a search step (a thread's history looks it up). */
  file_name?: string;
}

export type Block =
  | { type: "text"; text: string; citations?: Citation[] }
  | { type: "refusal"; text: string }
  | { type: "image"; file_id: string }
  | { type: "image_url"; url: string };

export interface MessageItem {
  kind: "message";
  id: string;
  run_id: string | null;
  role: string;
  /** "in_progress" | "completed" | "incomplete" */
  status: string;
  blocks: Block[];
}

export interface ToolCallItem {
  kind: "tool_call";
  id: string;
  run_id: string | null;
  step_id: string | null;
  index: number;
  name: string;
  arguments: string;
  output: string | null;
  /** "in_progress" | "requires_action" | "completed" | "failed" | "cancelled" | "expired" | "incomplete" */
  status: string;
  error: ViewError | null;
}

export interface CodeItem {
  kind: "code";
  id: string;
  run_id: string | null;
  step_id: string | null;
  index: number;
  code: string;
  logs: string;
  /** File ids of the images the code made. */
  images: string[];
  status: string;
  error: ViewError | null;
}

/** One chunk a file search found. */
export interface SearchResult {
  file_id: string;
  file_name: string;
  /** From 0 to 1. */
  score: number;
  /** The chunk's text; null unless the run asked for the results' content. */
  content: string | null;
}

export interface FileSearchItem {
  kind: "file_search";
  id: string;
  run_id: string | null;
  step_id: string | null;
  index: number;
  /** The query, when the server says it (`file_search.query`, not in the API's step object). */
  query: string | null;
  ranker: string | null;
  score_threshold: number | null;
  /** Best first. */
  results: SearchResult[];
  status: string;
  error: ViewError | null;
}

export type Item = MessageItem | ToolCallItem | CodeItem | FileSearchItem;

export interface ViewState {
  run: RunInfo | null;
  items: Item[];
  /** A stream-level `error` event (not a failed run). */
  error: ViewError | null;
}

export type Op =
  | { op: "run"; run: RunInfo }
  | { op: "error"; error: ViewError | null }
  | { op: "item"; item: Item }
  | { op: "set"; id: string; fields: Partial<Record<string, unknown>> }
  | { op: "block"; id: string; index: number; block: Block }
  | { op: "text"; id: string; index: number; text: string }
  | { op: "append"; id: string; field: "arguments" | "code" | "logs"; text: string };

/** What a batch of ops changed, so that a view re-renders only that. */
export interface Changes {
  run: boolean;
  error: boolean;
  /** Ids of items that changed or appeared. */
  items: Set<string>;
  /** Whether items appeared (their order in the view must be rebuilt). */
  added: boolean;
}

export function emptyState(): ViewState {
  return { run: null, items: [], error: null };
}

export function noChanges(): Changes {
  return { run: false, error: false, items: new Set(), added: false };
}

/** Add what `from` changed to `into` (the changes of several batches, for one re-render). */
export function mergeChanges(into: Changes, from: Changes): Changes {
  into.run ||= from.run;
  into.error ||= from.error;
  into.added ||= from.added;
  for (const id of from.items) into.items.add(id);
  return into;
}

/** A deep copy, through JSON: view states are plain JSON. */
export function cloneState(state: ViewState): ViewState {
  return JSON.parse(JSON.stringify(state)) as ViewState;
}

function find(state: ViewState, id: string): Item | undefined {
  // From the end: the target of an op is nearly always one of the last items.
  for (let i = state.items.length - 1; i >= 0; i--) {
    if (state.items[i].id === id) return state.items[i];
  }
  return undefined;
}

/**
 * Apply ops to `state` in place (ops are not kept: values are copied out of them) and
 * return what changed. Unknown ops are ignored, to stay readable by older kernels' views.
 */
export function applyOps(state: ViewState, ops: Op[], changes: Changes = noChanges()): Changes {
  for (const op of ops) {
    switch (op.op) {
      case "run":
        state.run = structuredCopy(op.run);
        changes.run = true;
        break;
      case "error":
        state.error = op.error === null ? null : { ...op.error };
        changes.error = true;
        break;
      case "item": {
        const item = structuredCopy(op.item);
        const at = state.items.findIndex((it) => it.id === item.id);
        if (at >= 0) {
          state.items[at] = item;
        } else {
          state.items.push(item);
          changes.added = true;
        }
        changes.items.add(item.id);
        break;
      }
      case "set": {
        const item = find(state, op.id) as unknown as Record<string, unknown> | undefined;
        if (!item) break;
        for (const [key, value] of Object.entries(op.fields)) item[key] = structuredCopy(value);
        changes.items.add(op.id);
        break;
      }
      case "block": {
        const item = find(state, op.id);
        if (!item || item.kind !== "message") break;
        while (item.blocks.length < op.index) item.blocks.push({ type: "text", text: "" });
        item.blocks[op.index] = structuredCopy(op.block);
        changes.items.add(op.id);
        break;
      }
      case "text": {
        const item = find(state, op.id);
        if (!item || item.kind !== "message" || op.index >= item.blocks.length) break;
        const block = item.blocks[op.index];
        if (block.type === "text" || block.type === "refusal") {
          block.text += op.text;
          changes.items.add(op.id);
        }
        break;
      }
      case "append": {
        const item = find(state, op.id) as unknown as Record<string, unknown> | undefined;
        if (!item) break;
        const current = item[op.field];
        item[op.field] = (typeof current === "string" ? current : "") + op.text;
        changes.items.add(op.id);
        break;
      }
      default:
        break;
    }
  }
  return changes;
}

function structuredCopy<T>(value: T): T {
  return value === null || typeof value !== "object" ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** Every file id the state shows as an image, in order of appearance. */
export function fileIds(state: ViewState): string[] {
  const found = new Set<string>();
  for (const item of state.items) {
    if (item.kind === "message") {
      for (const block of item.blocks) if (block.type === "image") found.add(block.file_id);
    } else if (item.kind === "code") {
      for (const id of item.images) found.add(id);
    }
  }
  return [...found];
}
