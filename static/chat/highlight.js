// Code highlighting, loaded piece by piece: highlight.js's core (8 kB compressed) the first time
// a message holds a fenced code block, and each language's grammar (1-3 kB) the first time a
// block is written in it, instead of the 43 kB bundle of every common language with every page.
// Each import() names its file literally, so collectstatic can point it at the hashed name.

const GRAMMARS = {
  bash: () => import("../vendor/highlight/es/languages/bash.min.js"),
  c: () => import("../vendor/highlight/es/languages/c.min.js"),
  cpp: () => import("../vendor/highlight/es/languages/cpp.min.js"),
  csharp: () => import("../vendor/highlight/es/languages/csharp.min.js"),
  css: () => import("../vendor/highlight/es/languages/css.min.js"),
  diff: () => import("../vendor/highlight/es/languages/diff.min.js"),
  go: () => import("../vendor/highlight/es/languages/go.min.js"),
  graphql: () => import("../vendor/highlight/es/languages/graphql.min.js"),
  ini: () => import("../vendor/highlight/es/languages/ini.min.js"),
  java: () => import("../vendor/highlight/es/languages/java.min.js"),
  javascript: () => import("../vendor/highlight/es/languages/javascript.min.js"),
  json: () => import("../vendor/highlight/es/languages/json.min.js"),
  kotlin: () => import("../vendor/highlight/es/languages/kotlin.min.js"),
  less: () => import("../vendor/highlight/es/languages/less.min.js"),
  lua: () => import("../vendor/highlight/es/languages/lua.min.js"),
  makefile: () => import("../vendor/highlight/es/languages/makefile.min.js"),
  markdown: () => import("../vendor/highlight/es/languages/markdown.min.js"),
  objectivec: () => import("../vendor/highlight/es/languages/objectivec.min.js"),
  perl: () => import("../vendor/highlight/es/languages/perl.min.js"),
  php: () => import("../vendor/highlight/es/languages/php.min.js"),
  python: () => import("../vendor/highlight/es/languages/python.min.js"),
  r: () => import("../vendor/highlight/es/languages/r.min.js"),
  ruby: () => import("../vendor/highlight/es/languages/ruby.min.js"),
  rust: () => import("../vendor/highlight/es/languages/rust.min.js"),
  scss: () => import("../vendor/highlight/es/languages/scss.min.js"),
  shell: () => import("../vendor/highlight/es/languages/shell.min.js"),
  sql: () => import("../vendor/highlight/es/languages/sql.min.js"),
  swift: () => import("../vendor/highlight/es/languages/swift.min.js"),
  typescript: () => import("../vendor/highlight/es/languages/typescript.min.js"),
  vbnet: () => import("../vendor/highlight/es/languages/vbnet.min.js"),
  wasm: () => import("../vendor/highlight/es/languages/wasm.min.js"),
  xml: () => import("../vendor/highlight/es/languages/xml.min.js"),
  yaml: () => import("../vendor/highlight/es/languages/yaml.min.js"),
};

// The other names fences use for them (highlight.js's own aliases for these grammars).
const ALIASES = {
  sh: "bash", zsh: "bash", h: "c", cc: "cpp", "c++": "cpp", hpp: "cpp", cxx: "cpp",
  cs: "csharp", "c#": "csharp", patch: "diff", golang: "go", gql: "graphql", toml: "ini",
  jsp: "java", js: "javascript", jsx: "javascript", mjs: "javascript", cjs: "javascript",
  jsonc: "json", json5: "json", kt: "kotlin", kts: "kotlin", mk: "makefile", make: "makefile",
  md: "markdown", objc: "objectivec", mm: "objectivec", pl: "perl", pm: "perl", py: "python",
  rb: "ruby", rs: "rust", console: "shell", shellsession: "shell", ts: "typescript",
  tsx: "typescript", vb: "vbnet", html: "xml", xhtml: "xml", svg: "xml", yml: "yaml",
};

/** The grammar a fence's label names ("py" -> "python"), or "" when none of ours does. */
export function grammarName(label) {
  const name = (label || "").trim().split(/\s+/)[0].toLowerCase();
  const grammar = ALIASES[name] || name;
  return Object.hasOwn(GRAMMARS, grammar) ? grammar : "";
}

let core = null;
let coreLoading = null;
const grammarsLoading = new Map();

function loadCore() {
  coreLoading ??= import("../vendor/highlight/es/core.min.js").then((module) => {
    core = module.default;
    return core;
  }, (error) => {
    coreLoading = null; // a failed load (offline, a deploy) is tried again next time
    throw error;
  });
  return coreLoading;
}

/** highlight.js, ready for `grammar`; null while it loads, and `loaded()` is called once it has
 * (for the page to render that code again). */
export function highlighterFor(grammar, loaded) {
  if (core?.getLanguage(grammar)) return core;
  if (!grammarsLoading.has(grammar)) {
    const loading = Promise.all([loadCore(), GRAMMARS[grammar]()]).then(([hljs, module]) => {
      hljs.registerLanguage(grammar, module.default);
      loaded();
    }, () => {
      grammarsLoading.delete(grammar);
    });
    grammarsLoading.set(grammar, loading);
  }
  return null;
}
