/** The recorded runs of tests/jupyter/fixtures, as the Python reducer turned them into ops. */

import { readFileSync } from "node:fs";
import { join } from "node:path";

import type { Op, ViewState } from "../../js/view_state";

// vitest runs from the repository root (where vitest.config.ts is).
const DIR = join(process.cwd(), "tests", "jupyter", "fixtures");

export interface OpsFixture {
  batches: Op[][];
  final: ViewState;
}

export const OPS_FIXTURES = ["text", "tool_round_trip", "code_interpreter", "failure", "cancel"];

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
