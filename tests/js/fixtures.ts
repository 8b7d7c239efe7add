/** The recorded runs of tests/jupyter/fixtures, as the Python reducer turned them into ops. */

import { readFileSync } from "node:fs";
import { join } from "node:path";

import type { AnyModel } from "@anywidget/types";

import type { Op, ViewState } from "../../js/view_state";

// vitest runs from the repository root (where vitest.config.ts is).
const DIR = join(process.cwd(), "tests", "jupyter", "fixtures");

export interface OpsFixture {
  batches: Op[][];
  final: ViewState;
}

export const OPS_FIXTURES = ["text", "tool_round_trip", "code_interpreter", "failure", "cancel", "file_search"];

export function opsFixture(name: string): OpsFixture {
  return JSON.parse(readFileSync(join(DIR, `${name}.ops.json`), "utf8")) as OpsFixture;
}

/** The bytes of the files a recording made, by file id. */
export function files(name: string): Record<string, Uint8Array> {
  const recording = JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8")) as {
    files: Record<string, string>;
  };
  return Object.fromEntries(
    Object.entries(recording.files).map(([id, b64]) => [id, new Uint8Array(Buffer.from(b64, "base64"))]),
  );
}

/** jsdom has no object URLs: number them, and remember which were revoked. */
export function fakeObjectUrls(): { made: Map<string, Blob>; revoked: Set<string>; restore: () => void } {
  const made = new Map<string, Blob>();
  const revoked = new Set<string>();
  const create = URL.createObjectURL;
  const revoke = URL.revokeObjectURL;
  URL.createObjectURL = (blob: Blob | MediaSource): string => {
    const url = `blob:fake/${made.size + 1}`;
    made.set(url, blob as Blob);
    return url;
  };
  URL.revokeObjectURL = (url: string): void => {
    revoked.add(url);
  };
  return {
    made,
    revoked,
    restore: () => {
      URL.createObjectURL = create;
      URL.revokeObjectURL = revoke;
    },
  };
}

type Handler = (...args: unknown[]) => void;

/** Just enough of an anywidget model: traits, events, and what the widget sent. */
export class FakeModel<M> {
  attrs: Record<string, unknown>;
  handlers = new Map<string, Set<Handler>>();
  sent: { content: unknown; buffers: unknown[] }[] = [];
  widget_manager = {};

  constructor(attrs: Record<string, unknown>) {
    this.attrs = attrs;
  }
  get<K extends keyof M>(key: K): M[K] {
    return this.attrs[key as string] as M[K];
  }
  set(key: string, value: unknown): void {
    this.attrs[key] = value;
    this.emit(`change:${key}`);
  }
  on(name: string, cb: Handler): void {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name)?.add(cb);
  }
  off(name?: string | null, cb?: Handler | null): void {
    if (name && cb) this.handlers.get(name)?.delete(cb);
  }
  emit(name: string, ...args: unknown[]): void {
    for (const cb of this.handlers.get(name) ?? []) cb(...args);
  }
  send(content: unknown, _callbacks?: unknown, buffers: unknown[] = []): void {
    this.sent.push({ content, buffers });
  }
  /** The contents of the custom messages the widget sent, without their buffers. */
  get contents(): unknown[] {
    return this.sent.map((message) => message.content);
  }
  save_changes(): void {}
  listeners(): number {
    return [...this.handlers.values()].reduce((n, set) => n + set.size, 0);
  }
}

/** Resolves after the next animation frame (the views render at most once per frame). */
export const nextFrame = (): Promise<void> => new Promise((resolve) => requestAnimationFrame(() => resolve()));

/** The argument anywidget passes to initialize/render. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const props = (model: FakeModel<unknown>, el?: HTMLElement): any => ({ model, el, signal: new AbortController().signal });

/** A fake model where a function wants anywidget's model type. */
export const asModel = <M extends object>(model: FakeModel<M>): AnyModel<M> => model as unknown as AnyModel<M>;
