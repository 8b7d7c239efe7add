// The id of the built widget bundle, printed as a JS string for esbuild's --define: the same hash
// of the same files that ipyassistant.jupyter.module_loader.build_id() computes in the kernel,
// so a widget takes its module from the extension only when both came from one build.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

const digest = createHash("sha256");
for (const name of ["run_view", "chat_panel"]) {
  for (const ext of ["js", "css"]) {
    const path = `src/ipyassistant/static/${name}.${ext}`;
    if (existsSync(path)) digest.update(readFileSync(path));
  }
}
process.stdout.write(JSON.stringify(digest.digest("hex").slice(0, 16)));
