// Markdown rendering of untrusted model output, in one place: marked parses, highlight.js colours
// code, DOMPurify sanitises, and only its DOM fragment ever reaches the page. The CSP (no inline
// script, no remote images) backs this up.
import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import { grammarName, highlighterFor } from "./highlight.js";
import { t } from "./i18n.js";

// Re-highlighting a growing code block every frame costs time proportional to the block, so a
// very long block is left plain until it is finished.
const STREAMING_HIGHLIGHT_LIMIT = 20000;
const FINAL_HIGHLIGHT_LIMIT = 200000;

const SANITIZE = {
  RETURN_DOM_FRAGMENT: true,
  // Model HTML must not imitate the page: no forms or controls, and no id/name that could shadow
  // the page's own elements (getElementById returns the first match, and messages come first).
  FORBID_TAGS: ["style", "form", "button", "textarea", "select", "option", "dialog"],
  FORBID_ATTR: ["style", "id", "name", "autofocus", "tabindex"],
  // KaTeX's MathML carries the TeX source in an <annotation>, which DOMPurify removes but whose
  // text it would keep, printed after the formula.
  FORBID_CONTENTS: ["annotation", "annotation-xml"],
};

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// --- renderers loaded when first needed -----------------------------------------------------------
// highlight.js (its core and each language's grammar, highlight.js) and KaTeX (150 kB
// compressed) are loaded the first time a message holds code or math, not with the page: until
// then code shows plain and TeX as code, and `onRenderersLoaded` lets the page render those
// messages again.

const loadedCallbacks = [];

function renderersLoaded() {
  for (const callback of loadedCallbacks) callback();
}

/** Load a module once (`slot.promise`), then tell the page; a failed load (offline, a deploy)
 * is tried again the next time it is needed. `load` calls import() with a literal path, which
 * collectstatic rewrites to the file's hashed name (chat/static_storage.py). */
function loadOnce(slot, load, take) {
  slot.promise ??= load().then((module) => {
    take(module.default);
    renderersLoaded();
  }, () => {
    slot.promise = null;
  });
}

/** Call `callback` each time highlight.js or KaTeX has loaded, to render messages again. */
export function onRenderersLoaded(callback) {
  loadedCallbacks.push(callback);
}

/** Whether `text` may render differently once they have loaded (cheap: it only decides whether
 * to render a message again): it may hold math or a fenced code block. */
export function mayUseLateRenderers(text) {
  return /\$|\\\(|\\\[|```|~~~/.test(text);
}

/** What a rendered message holds that was shown plain for want of a renderer. */
export const RENDERED_LATE = '[data-math="pending"], [data-highlight="pending"]';


// --- math -----------------------------------------------------------------------------------------
// TeX between $…$ / \(…\) (inline) or $$…$$ / \[…\] (display) becomes MathML, drawn by the
// browser itself (no fonts or stylesheet to ship). The math is taken out by marked extensions,
// so markdown never sees it (it would eat its backslashes and underscores) and code spans and
// blocks keep their dollars.

const MATH_LIMITS = { maxSize: 50, maxExpand: 500 }; // bounds what one formula may cost
let katex = null;
const katexSlot = { promise: null };

function renderMath(tex, display) {
  if (!katex) {
    loadOnce(katexSlot, () => import("../vendor/katex/katex.mjs"), (module) => { katex = module; });
    const source = display ? `$$${tex}$$` : `$${tex}$`;
    return `<code data-math="pending">${escapeHtml(source)}</code>`;
  }
  const html = katex.renderToString(tex, {
    displayMode: display,
    output: "mathml",
    throwOnError: false, // broken TeX is shown as its source
    trust: false, // no \href, \url or \includegraphics: links and images stay the page's call
    strict: "ignore",
    ...MATH_LIMITS,
  });
  // KaTeX colours errors with style attributes, which the CSP refuses (and reports) and
  // DOMPurify would drop anyway. KaTeX escapes attribute values, so a quote ends each one.
  return html.replace(/ style="[^"]*"/g, "");
}

// Inline: $…$ only when it cannot be money or code: no space just inside the dollars, no digit
// right after either one ("$5 and $10" stays text; write \(2x\) for math that starts with a
// digit), no backtick inside. \(…\) and $$…$$ always.
const INLINE_MATH = /^(?:\$\$([^$]+?)\$\$|\\\(([\s\S]+?)\\\)|\$(?![\s\d])((?:\\\$|[^$\n`])+?)(?<!\s)\$(?!\d))/;
const BLOCK_MATH = /^(?:\$\$\n?([\s\S]+?)\n?\$\$|\\\[([\s\S]+?)\\\])[ \t]*(?:\n+|$)/;

const mathExtensions = [
  {
    name: "blockMath",
    level: "block",
    start: (src) => src.match(/\$\$|\\\[/)?.index,
    tokenizer(src) {
      const match = BLOCK_MATH.exec(src);
      if (match) return { type: "blockMath", raw: match[0], tex: (match[1] ?? match[2]).trim() };
      return undefined;
    },
    renderer: (token) => `<p>${renderMath(token.tex, true)}</p>\n`,
  },
  {
    name: "inlineMath",
    level: "inline",
    start: (src) => src.match(/\$|\\\(/)?.index,
    tokenizer(src) {
      const match = INLINE_MATH.exec(src);
      if (!match) return undefined;
      const display = match[1] !== undefined;
      return { type: "inlineMath", raw: match[0], tex: match[1] ?? match[2] ?? match[3], display };
    },
    renderer: (token) => renderMath(token.tex, token.display),
  },
];

function makeMarked(highlightLimit) {
  return new Marked({
    gfm: true,
    breaks: true,
    extensions: mathExtensions,
    renderer: {
      code({ text, lang }) {
        const label = (lang || "").trim().split(/\s+/)[0];
        const language = grammarName(label);
        const hljs = language && text.length <= highlightLimit
          ? highlighterFor(language, renderersLoaded)
          : null;
        const body = hljs
          ? hljs.highlight(text, { language, ignoreIllegals: true }).value
          : escapeHtml(text);
        const cls = language ? `hljs language-${escapeHtml(language)}` : "hljs";
        let data = label ? ` data-lang="${escapeHtml(label)}"` : "";
        // Plain until its grammar has loaded: the page renders it again then (RENDERED_LATE).
        if (language && !hljs && text.length <= highlightLimit) data += ' data-highlight="pending"';
        return `<pre${data}><code class="${cls}">${body}\n</code></pre>\n`;
      },
    },
  });
}

const finalMarked = makeMarked(FINAL_HIGHLIGHT_LIMIT);
const streamingMarked = makeMarked(STREAMING_HIGHLIGHT_LIMIT);

// One hook, after attributes are sanitised (DOMPurify copies its allowlists on every call when
// "upon" hooks exist, which adds up over a 1,000-message history).
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  switch (node.nodeName) {
    case "IMG":
      // Remote images would tell whoever the model (or a prompt injection) chose that this
      // reply was read, and from where: only inline data: images are shown.
      if (!/^data:/i.test((node.getAttribute("src") || "").trim())) {
        node.remove();
        return;
      }
      break;
    case "INPUT":
      // Task-list checkboxes only, never editable.
      if ((node.getAttribute("type") || "").toLowerCase() !== "checkbox") {
        node.remove();
        return;
      }
      node.setAttribute("disabled", "");
      // A task-list box has no label of its own: its state is what a screen reader needs.
      node.setAttribute("aria-label", node.hasAttribute("checked") ? t("Done") : t("Not done"));
      break;
    case "A":
      if (node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
      break;
    default:
  }
  if (node.hasAttribute?.("class")) {
    // Only highlight.js classes (hljs-*, language-*, and modifiers like "function_"): model
    // HTML must not borrow the page's classes (banners, buttons).
    const kept = node.getAttribute("class").split(/\s+/)
      .filter((c) => /^(hljs|language-)[\w-]*$|^[a-z]+_+$/.test(c));
    if (kept.length) node.setAttribute("class", kept.join(" "));
    else node.removeAttribute("class");
  }
});

function sanitize(html) {
  const fragment = DOMPurify.sanitize(html, SANITIZE);
  decorateCodeBlocks(fragment);
  return fragment;
}

// Each code block gets a header with its language and a Copy button. Added after sanitising,
// so these buttons are the page's own and the model cannot forge one.
function decorateCodeBlocks(root) {
  for (const pre of root.querySelectorAll("pre")) {
    if (!pre.querySelector("code")) continue;
    const block = document.createElement("div");
    block.className = "code-block";
    const header = document.createElement("div");
    header.className = "code-header";
    const label = document.createElement("span");
    label.className = "code-lang";
    label.textContent = pre.dataset.lang || "text";
    pre.removeAttribute("data-lang");
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-code";
    copy.textContent = t("Copy");
    copy.setAttribute("aria-label", t("Copy code"));
    header.append(label, copy);
    // A long line scrolls sideways: the block takes keyboard focus so arrows can scroll it.
    pre.tabIndex = 0;
    pre.setAttribute("role", "region");
    pre.setAttribute("aria-label", `Code (${label.textContent})`);
    pre.replaceWith(block);
    block.append(header, pre);
  }
}

/** Markdown to a sanitised DocumentFragment, ready for replaceChildren. */
export function renderMarkdown(text) {
  return sanitize(finalMarked.parse(text));
}

/** The code of the block a Copy button belongs to. */
export function codeForCopyButton(button) {
  const code = button.closest(".code-block")?.querySelector("pre code");
  return code ? code.textContent.replace(/\n$/, "") : "";
}

/**
 * Renders a reply while it streams, in time proportional to its last block rather than to the
 * whole reply: top-level blocks followed by another block are final, so they are rendered once
 * and kept; only the trailing block is re-rendered. The `done` frame then re-renders the whole
 * message with renderMarkdown, which fixes the rare construct that spans blocks (link
 * definitions given after their use).
 */
export class StreamingMarkdown {
  constructor(container) {
    this.container = container;
    this.frozenLength = 0;
    this.tailNodes = [];
  }

  reset() {
    this.container.replaceChildren();
    this.frozenLength = 0;
    this.tailNodes = [];
  }

  update(text) {
    if (text.length < this.frozenLength) this.reset();
    const tail = text.slice(this.frozenLength);
    const tokens = streamingMarked.lexer(tail);
    let last = tokens.length - 1;
    while (last >= 0 && tokens[last].type === "space") last -= 1;
    let live = tokens;
    if (last >= 1) {
      const done = tokens.slice(0, last);
      const raw = done.map((t) => t.raw).join("");
      // The lexer normalises some input (\r\n); freeze only when the raw text lines up exactly.
      if (tail.startsWith(raw)) {
        done.links = tokens.links;
        this.removeTail();
        this.container.append(sanitize(streamingMarked.parser(done)));
        this.frozenLength += raw.length;
        live = tokens.slice(last);
      }
    }
    live.links = tokens.links;
    const fragment = sanitize(streamingMarked.parser(live));
    const nodes = Array.from(fragment.childNodes);
    this.removeTail();
    this.container.append(fragment);
    this.tailNodes = nodes;
  }

  removeTail() {
    for (const node of this.tailNodes) node.remove();
    this.tailNodes = [];
  }
}
