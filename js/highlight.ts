/**
 * highlight.js with the languages models write most (its core alone, so the bundle carries
 * only these): a fenced block's language tag, or one of its common aliases, picks the grammar.
 * A block with no tag, or an unknown one, stays plain text, as in JupyterLab's own markdown.
 */

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import julia from "highlight.js/lib/languages/julia";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import r from "highlight.js/lib/languages/r";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const LANGUAGES = {
  bash, c, cpp, css, go, java, javascript, json, julia, markdown, python, r, rust, sql, typescript, xml, yaml,
};
for (const [name, grammar] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, grammar);

// The grammars bring their usual aliases (js, ts, yml, html, rs, md, jl, c++, ...); these
// are the ones models also write.
hljs.registerAliases(["py", "ipython", "python3", "ipython3"], { languageName: "python" });
hljs.registerAliases(["sh", "shell", "console", "zsh", "shell-session"], { languageName: "bash" });
hljs.registerAliases(["node", "jsx", "mjs"], { languageName: "javascript" });
hljs.registerAliases(["tsx"], { languageName: "typescript" });
hljs.registerAliases(["postgres", "postgresql", "sqlite", "mysql", "psql"], { languageName: "sql" });
hljs.registerAliases(["jsonc", "json5"], { languageName: "json" });
hljs.registerAliases(["svg"], { languageName: "xml" });

export { hljs };
