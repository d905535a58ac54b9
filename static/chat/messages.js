// The message list: one element per message, ordered by seq, upserted by id. Finished messages are
// rendered once; a streaming reply re-renders at most once per animation frame, touching only its
// own body, so the cost of a delta does not grow with the conversation.
import { t } from "./i18n.js";
import {
  mayUseLateRenderers, onRenderersLoaded, RENDERED_LATE, renderMarkdown, StreamingMarkdown,
} from "./render.js";

const STATUS_LABELS = {
  stopped: t("stopped"),
  interrupted: t("interrupted"),
  truncated: t("truncated (max tokens)"),
};
// On load, the newest messages are rendered at once and the older ones in idle time (shown as
// plain text meanwhile), so a long conversation opens quickly: a screen shows a few messages,
// and these fill it, with room to spare, before the composer is ready (bench/page.py).
const RENDER_AT_ONCE = 12;
const IDLE_BUDGET_MS = 12;
// Messages older than the newest this many may skip rendering while off-screen (.is-history).
const ALWAYS_RENDERED = 24;
// "At the bottom" tolerance: within this many pixels, new text keeps the view pinned.
const STICK_SLACK = 80;

/** Length in Unicode code points, which is what the protocol's delta offsets count. */
export function codePointLength(text) {
  let n = text.length;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n -= 1;
  }
  return n;
}

function dropCodePoints(text, count) {
  let i = 0;
  for (let seen = 0; seen < count && i < text.length; seen += 1) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff ? 2 : 1;
  }
  return text.slice(i);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const NUMBER_FORMAT = new Intl.NumberFormat("en-US");

export function formatTokens(n) {
  return NUMBER_FORMAT.format(n);
}

export function formatCost(cost) {
  const value = Number(cost);
  if (!Number.isFinite(value)) return "";
  if (value === 0) return "$0";
  if (value >= 0.1) return `$${value.toFixed(2)}`;
  // Small costs keep three significant digits: $0.00357, $0.0000012.
  const decimals = Math.min(10, Math.ceil(-Math.log10(value)) + 2);
  return `$${value.toFixed(decimals).replace(/0+$/, "")}`;
}

function usageText(message) {
  const parts = [];
  if (message.usage) {
    const { prompt_tokens: p, completion_tokens: c, total_tokens: total } = message.usage;
    if (p != null && c != null) {
      parts.push(t("{prompt} in · {completion} out",
                   { prompt: formatTokens(p), completion: formatTokens(c) }));
    } else if (total != null) parts.push(t("{count} tokens", { count: formatTokens(total) }));
  }
  if (message.cost != null && message.cost !== "") {
    const cost = formatCost(message.cost);
    if (cost) parts.push(cost);
  }
  return parts.join(" · ");
}

// A message's files are references: same-origin URLs the server serves only to those who may
// see the message. Anything else (an old inline data URL, a foreign address) is not loaded.
function fileUrl(item) {
  const url = item.url || "";
  return url.startsWith("/") && !url.startsWith("//") ? url : "";
}

function attachmentsElement(attachments) {
  const box = el("div", "message-attachments");
  for (const item of attachments) {
    const url = fileUrl(item);
    if (item.type === "image" && url) {
      // A button, so keyboard users can open it larger too.
      const open = el("button", "attachment-open");
      open.type = "button";
      open.setAttribute("aria-label", t("Open {name} larger", { name: item.name || t("image") }));
      const img = el("img", "attachment-image");
      img.src = url;
      img.alt = item.name || t("Attached image");
      img.loading = "lazy";
      img.decoding = "async";
      open.append(img);
      box.append(open);
    } else if (item.type === "audio" && url) {
      const audio = el("audio", "attachment-player");
      audio.controls = true;
      audio.preload = "none";
      audio.src = url;
      audio.setAttribute("aria-label", item.name || t("Attached audio"));
      box.append(audio);
    } else if (item.type === "text" && url) {
      const link = el("a", "attachment-file", `📄 ${item.name || t("file")}`);
      link.href = url;
      link.download = item.name || "";
      box.append(link);
    } else {
      box.append(el("span", "attachment-other", t("Attachment")));
    }
  }
  return box;
}

/** Shows an attached image at full size in a modal dialog (Esc or a click closes it). */
function openImage(src, alt) {
  const dialog = el("dialog", "image-viewer");
  const img = el("img");
  img.src = src;
  img.alt = alt;
  const close = el("button", "image-viewer-close", t("Close"));
  close.type = "button";
  dialog.append(img, close);
  dialog.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}

// Replies that ended without all their text: their new version is a retry, not a regeneration.
const RETRY_STATUSES = new Set(["error", "stopped", "interrupted"]);

/** "‹ 2 / 3 ›": flips a message between its versions (an edit, a regenerated reply). */
function versionsElement(data) {
  const versions = data.versions || [];
  const at = versions.indexOf(data.id);
  if (versions.length < 2 || at < 0) return null;
  const nav = el("div", "versions");
  nav.setAttribute("role", "group");
  nav.setAttribute("aria-label", t("Versions"));
  const step = (label, text, target) => {
    const button = el("button", "version-step linklike", text);
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.dataset.action = "switch";
    button.dataset.target = target || "";
    button.disabled = !target;
    return button;
  };
  nav.append(step(t("Previous version"), "‹", versions[at - 1]),
             el("span", "version-count", t("{at} / {count}", { at: at + 1, count: versions.length })),
             step(t("Next version"), "›", versions[at + 1]));
  return nav;
}

function actionButton(action, label, accessibleName) {
  const button = el("button", `message-action linklike action-${action}`, label);
  button.type = "button";
  button.dataset.action = action;
  button.setAttribute("aria-label", accessibleName);
  return button;
}

export class MessageList {
  /** onAction(kind, id, text): the reader asked for "regenerate", "edit" (with the new text)
   * or "switch" (to version `id`); without it (a shared page) messages have no such buttons. */
  constructor(container, { onStickChange, onAction, settingsUrl = "" } = {}) {
    this.container = container;
    this.settingsUrl = settingsUrl;
    this.onStickChange = onStickChange;
    this.onAction = onAction;
    this.records = new Map();
    this.ordered = [];
    this.streamingIds = new Set();
    this.dirty = new Set();
    this.frame = 0;
    this.idleQueue = [];
    this.idleHandle = 0;
    this.stick = true;
    container.addEventListener("scroll", () => this.updateStick(), { passive: true });
    container.addEventListener("click", (event) => {
      const img = event.target.closest(".attachment-open")?.querySelector("img");
      if (img) openImage(img.src, img.alt);
      const action = event.target.closest("[data-action]");
      if (action) this.act(action);
    });
    container.addEventListener("submit", (event) => {
      const form = event.target.closest(".edit-form");
      if (!form) return;
      event.preventDefault();
      const text = form.elements.text.value;
      if (text.trim()) this.onAction?.("edit", form.closest(".message").dataset.id, text);
    });
    onRenderersLoaded(() => this.renderAgain());
  }

  /** Code showed plain and math as TeX until highlight.js (each grammar) or KaTeX loaded:
   * render again the finished replies that hold some, and the streaming ones that may. */
  renderAgain() {
    for (const record of this.ordered) {
      if (record.data.role !== "assistant" || record.plain) continue;
      if (record.stream) {
        if (!mayUseLateRenderers(record.text)) continue;
        record.needsReset = true;
        this.schedule(record);
      } else if (record.body.querySelector(RENDERED_LATE)) {
        record.body.replaceChildren(renderMarkdown(record.text));
      }
    }
  }

  get size() {
    return this.ordered.length;
  }

  /** The first page: everything built in one fragment; markdown of older messages comes later. */
  load(messages) {
    const fragment = document.createDocumentFragment();
    const sorted = [...messages].sort((a, b) => a.seq - b.seq);
    const eagerFrom = Math.max(0, sorted.length - RENDER_AT_ONCE);
    sorted.forEach((message, index) => {
      const record = this.newRecord(message);
      this.build(record, index >= eagerFrom);
      if (index < eagerFrom) this.idleQueue.push(record);
      this.records.set(message.id, record);
      this.ordered.push(record);
      fragment.append(record.el);
    });
    this.container.append(fragment);
    this.markHistory(0);
    this.scheduleIdle();
    this.scrollToBottom();
  }

  /** Older messages (a page fetched on scrolling up), put above what is shown without moving
   * what the reader is looking at. */
  prepend(messages) {
    const before = this.container.scrollHeight;
    const top = this.container.scrollTop;
    const fragment = document.createDocumentFragment();
    const fresh = [];
    for (const message of [...messages].sort((a, b) => a.seq - b.seq)) {
      if (this.records.has(message.id)) continue;
      const record = this.newRecord(message);
      this.build(record, false);
      this.idleQueue.push(record);
      this.records.set(message.id, record);
      fresh.push(record);
      fragment.append(record.el);
    }
    const first = this.ordered[0];
    this.container.insertBefore(fragment, first ? first.el : null);
    this.ordered.unshift(...fresh);
    this.markHistory(0);
    this.scheduleIdle();
    this.container.scrollTop = top + (this.container.scrollHeight - before);
  }

  /** The seq of the oldest message shown (null when none is). */
  oldestSeq() {
    return this.ordered.length ? this.ordered[0].data.seq : null;
  }

  newRecord(message) {
    return { data: message, el: el("article", "message"), text: message.content || "",
             cpLen: -1, stream: null, body: null, needsReset: false, plain: false };
  }

  act(button) {
    const id = button.closest(".message")?.dataset.id;
    const record = id && this.records.get(id);
    if (!record) return;
    const { action } = button.dataset;
    if (action === "edit") this.openEditor(record);
    else if (action === "cancel-edit") this.build(record, true);
    else if (action === "switch") this.onAction?.("switch", button.dataset.target);
    else this.onAction?.(action, id);
  }

  /** Edit a sent message in place: its text in a field, sent as a new version on submit. */
  openEditor(record) {
    const form = el("form", "edit-form");
    const field = el("textarea", "edit-text");
    field.name = "text";
    field.value = record.text;
    field.rows = Math.min(12, Math.max(2, record.text.split("\n").length));
    field.setAttribute("aria-label", t("Edit your message"));
    const save = el("button", "edit-send primary", t("Send"));
    save.type = "submit";
    const cancel = actionButton("cancel-edit", t("Cancel"), t("Cancel editing"));
    cancel.classList.remove("linklike");
    const buttons = el("div", "edit-buttons");
    buttons.append(cancel, save);
    form.append(field, buttons);
    record.body.replaceWith(form);
    record.body = form;
    record.el.querySelector(".message-footer")?.remove();
    field.focus();
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation(); // Esc here cancels the edit, not a reply
        this.build(record, true);
        record.el.querySelector("[data-action=edit]")?.focus();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  /** The last message of the branch shown (what a new message follows), or null. */
  lastId() {
    return this.ordered.length ? this.ordered[this.ordered.length - 1].data.id : null;
  }

  /** Forget the messages after seq `base` that `keep` does not bring: they were on another
   * branch than the one the server now shows (docs/protocol.md, *Branches*). */
  dropAfter(base, keep) {
    const kept = new Set(keep.map((m) => m.id));
    for (const record of [...this.ordered]) {
      if (record.data.seq <= base || kept.has(record.data.id)) continue;
      this.records.delete(record.data.id);
      this.streamingIds.delete(record.data.id);
      this.dirty.delete(record);
      this.ordered.splice(this.ordered.indexOf(record), 1);
      record.el.remove();
    }
  }

  /** Insert or replace messages (history, messages, ack frames); with `base` (a number), the
   * frame also replaces whatever this list holds after that seq. */
  upsert(messages, base = null) {
    if (typeof base === "number") this.dropAfter(base, messages);
    let added = false;
    for (const message of messages) {
      const record = this.records.get(message.id);
      if (!record) {
        const fresh = this.newRecord(message);
        this.build(fresh, true);
        this.records.set(message.id, fresh);
        this.insert(fresh);
        added = true;
      } else if (record.data.status === "streaming" && message.status === "streaming") {
        // A checkpoint from the database can lag behind the text already streamed here; the
        // snapshot that follows is what sets the exact text.
        record.data = { ...message, content: record.text };
        if ((message.content || "").length > record.text.length) {
          this.snapshot(message.id, message.content);
        }
      } else if (JSON.stringify(record.data) !== JSON.stringify(message)) {
        this.replace(record, message);
      }
    }
    if (added && this.stick) this.scrollToBottom();
    return added;
  }

  insert(record) {
    const seq = record.data.seq;
    let index = this.ordered.length;
    while (index > 0 && this.ordered[index - 1].data.seq > seq) index -= 1;
    const after = this.ordered[index];
    this.ordered.splice(index, 0, record);
    this.container.insertBefore(record.el, after ? after.el : null);
    this.markHistory(Math.min(index, this.ordered.length - ALWAYS_RENDERED - 1));
  }

  markHistory(from) {
    const limit = this.ordered.length - ALWAYS_RENDERED;
    for (let i = Math.max(0, from); i < this.ordered.length; i += 1) {
      this.ordered[i].el.classList.toggle("is-history", i < limit);
    }
  }

  replace(record, message) {
    record.data = message;
    record.text = message.content || "";
    record.cpLen = -1;
    record.stream = null;
    record.needsReset = false;
    this.dirty.delete(record);
    this.build(record, true);
  }

  /** `snapshot`: the full text of a streaming reply so far. */
  snapshot(id, text) {
    const record = this.records.get(id);
    if (!record || record.data.status !== "streaming") return;
    record.text = text;
    record.cpLen = codePointLength(text);
    record.needsReset = true;
    this.schedule(record);
  }

  /** `delta`: returns false when it leaves a gap (the caller resubscribes for a snapshot). */
  delta(id, offset, text) {
    const record = this.records.get(id);
    if (!record || record.data.status !== "streaming") return true;
    if (record.cpLen < 0) record.cpLen = codePointLength(record.text);
    if (offset > record.cpLen) return false;
    if (offset === record.cpLen) {
      record.text += text;
      record.cpLen += codePointLength(text);
    } else {
      const length = codePointLength(text);
      if (offset + length <= record.cpLen) return true;
      record.text += dropCodePoints(text, record.cpLen - offset);
      record.cpLen = offset + length;
    }
    this.schedule(record);
    return true;
  }

  /** `done`: the reply's final state replaces the whole message. */
  done(id, message) {
    const record = this.records.get(id);
    if (!record) {
      this.upsert([message]);
      return;
    }
    const wasStick = this.stick;
    this.replace(record, message);
    if (wasStick) this.scrollToBottom();
  }

  isStreaming() {
    return this.streamingIds.size > 0;
  }

  /** The highest seq up to which every message held here is finished (for `subscribe`). */
  afterSeq() {
    let after = 0;
    for (const record of this.ordered) {
      if (record.data.status === "streaming") break;
      after = record.data.seq;
    }
    return after;
  }

  textOf(id) {
    return this.records.get(id)?.text ?? "";
  }

  // --- building elements ------------------------------------------------------------------------

  build(record, renderNow) {
    const { data } = record;
    const node = record.el;
    node.dataset.id = data.id;
    node.dataset.role = data.role;
    node.dataset.status = data.status;
    if (data.status === "streaming") this.streamingIds.add(data.id);
    else this.streamingIds.delete(data.id);
    node.classList.toggle("message-user", data.role === "user");
    node.classList.toggle("message-assistant", data.role === "assistant");
    const parts = [];
    parts.push(el("h3", "visually-hidden", data.role === "user" ? t("You said:") : t("Assistant said:")));
    if (data.attachments?.length) parts.push(attachmentsElement(data.attachments));
    const body = el("div", "message-body");
    record.body = body;
    record.plain = false;
    if (data.role === "user") {
      body.textContent = record.text;
    } else if (data.status === "streaming") {
      record.stream = new StreamingMarkdown(body);
      if (record.text) this.schedule(record);
    } else if (renderNow) {
      body.replaceChildren(renderMarkdown(record.text));
    } else {
      body.textContent = record.text;
      body.classList.add("plain-pending");
      record.plain = true;
    }
    if (data.role === "user" && !record.text) body.hidden = true;
    parts.push(body);
    if (data.role === "assistant") parts.push(this.footer(data));
    else if (this.onAction) parts.push(this.userFooter(data));
    node.replaceChildren(...parts);
  }

  userFooter(data) {
    const footer = el("div", "message-footer");
    const meta = el("div", "message-meta");
    const versions = versionsElement(data);
    if (versions) meta.append(versions);
    meta.append(actionButton("edit", t("Edit"), t("Edit this message")));
    footer.append(meta);
    return footer;
  }

  footer(data) {
    const footer = el("div", "message-footer");
    if (data.status === "streaming") {
      const typing = el("span", "typing");
      typing.append(el("span", "visually-hidden", t("Writing…")), el("span", "dot"), el("span", "dot"),
                    el("span", "dot"));
      footer.append(typing);
      return footer;
    }
    if (data.status === "error") {
      const box = el("div", "message-error");
      box.append(el("strong", "", t("Error: ")),
                 document.createTextNode(data.error?.message || t("The reply failed.")));
      if (data.error?.code === "invalid_token" && this.settingsUrl) {
        const link = el("a", "", t("Open Settings"));
        link.href = this.settingsUrl;
        box.append(" ", link);
      }
      footer.append(box);
    } else if (STATUS_LABELS[data.status]) {
      footer.append(el("span", "message-status", STATUS_LABELS[data.status]));
    }
    const meta = el("div", "message-meta");
    const versions = this.onAction && versionsElement(data);
    if (versions) meta.append(versions);
    if (data.model) meta.append(el("span", "message-model", data.model));
    const usage = usageText(data);
    if (usage) meta.append(el("span", "message-usage", usage));
    if (data.content) {
      const copy = el("button", "copy-message linklike", t("Copy"));
      copy.type = "button";
      copy.setAttribute("aria-label", t("Copy reply as markdown"));
      meta.append(copy);
    }
    if (this.onAction) {
      meta.append(RETRY_STATUSES.has(data.status)
        ? actionButton("regenerate", t("Retry"), t("Retry this reply"))
        : actionButton("regenerate", t("Regenerate"), t("Regenerate this reply")));
    }
    footer.append(meta);
    return footer;
  }

  // --- streaming render, once per frame -----------------------------------------------------------

  schedule(record) {
    this.dirty.add(record);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.frame = 0;
    const stick = this.stick;
    for (const record of this.dirty) {
      if (!record.stream) continue;
      if (record.needsReset) {
        record.stream.reset();
        record.needsReset = false;
      }
      record.stream.update(record.text);
    }
    this.dirty.clear();
    if (stick) this.scrollToBottom();
  }

  // --- idle rendering of older history ------------------------------------------------------------

  scheduleIdle() {
    if (this.idleHandle || !this.idleQueue.length) return;
    const run = (deadline) => {
      this.idleHandle = 0;
      // A callback run because its timeout passed has no idle time left; it still does a slice.
      const budget = deadline && !deadline.didTimeout ? deadline.timeRemaining() : IDLE_BUDGET_MS;
      const until = performance.now() + Math.max(budget, 4);
      while (this.idleQueue.length && performance.now() < until) {
        const record = this.idleQueue.pop(); // newest first: nearest to where the reader is
        if (record.plain) this.renderPlain(record);
      }
      this.scheduleIdle();
    };
    this.idleHandle = window.requestIdleCallback
      ? requestIdleCallback(run, { timeout: 200 })
      : setTimeout(() => run(null), 16);
  }

  renderPlain(record) {
    record.plain = false;
    record.body.classList.remove("plain-pending");
    record.body.replaceChildren(renderMarkdown(record.text));
  }

  // --- scrolling --------------------------------------------------------------------------------

  updateStick() {
    const c = this.container;
    const stick = c.scrollHeight - c.scrollTop - c.clientHeight <= STICK_SLACK;
    if (stick !== this.stick) {
      this.stick = stick;
      this.onStickChange?.(stick);
    }
  }

  scrollToBottom() {
    this.container.scrollTop = this.container.scrollHeight;
    if (!this.stick) {
      this.stick = true;
      this.onStickChange?.(true);
    }
  }
}
