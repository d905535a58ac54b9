// The model picker: a searchable combobox over the user's models from GET /api/models, following
// the WAI-ARIA combobox pattern (an input with a listbox popup, aria-activedescendant). Options
// are grouped by provider under the recently used ones and show their price and context length;
// the last choice is remembered in this browser.

import { t } from "./i18n.js";


const STORAGE_KEY = "noboxweb.model";
const RECENT_KEY = "noboxweb.recentModels";
const RECENT_LIMIT = 5;
const PAGE_STEP = 10; // options PageUp / PageDown move by
const EDGE = 8; // px the open list keeps from the viewport's edges
const LIST_MIN_WIDTH = 416; // px: a name and its badges on one or two lines

function stored(key) {
  try {
    return localStorage.getItem(key) || "";
  } catch {
    return ""; // storage disabled
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage disabled: nothing to remember with
  }
}

function recentIds() {
  try {
    const ids = JSON.parse(stored(RECENT_KEY) || "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return []; // not ours, or cut short: start again
  }
}

function addRecent(id) {
  const ids = [id, ...recentIds().filter((other) => other !== id)].slice(0, RECENT_LIMIT);
  store(RECENT_KEY, JSON.stringify(ids));
}

/** 128000 -> "128k", 1048576 -> "1M", 1500000 -> "1.5M". */
export function contextSize(tokens) {
  if (tokens >= 1_000_000) return `${Number((tokens / 1_000_000).toFixed(1))}M`;
  if (tokens >= 1_000) return `${Math.round(tokens / 1_000)}k`;
  return String(tokens);
}

/** What an option says beside its name, from the fields the server parsed once. */
export function modelBadges(model) {
  const badges = [];
  if (model.price_unknown) {
    badges.push({ kind: "unknown", text: t("Price unknown") });
  } else if (model.free) {
    badges.push({ kind: "free", text: t("Free") });
  } else {
    badges.push({ kind: "price", text: t("Input ${input} · Output ${output} per 1M", {
      input: model.input_per_million, output: model.output_per_million }) });
  }
  if (model.context_length) {
    badges.push({ kind: "context",
                  text: t("{size} context", { size: contextSize(model.context_length) }) });
  }
  return badges;
}

function entryOf(model) {
  const name = model.name || model.id;
  return {
    id: model.id,
    aliases: model.public_id ? [model.public_id] : [],
    name,
    provider: model.provider || t("Other"),
    badges: modelBadges(model),
    search: [name, model.id, model.public_id, model.provider].filter(Boolean).join(" ")
      .toLowerCase(),
  };
}

/** A model known only by its id: until the list arrives, or no longer in it. */
function bareEntry(id, name = id) {
  return { id, aliases: [], name, provider: "", badges: [], search: id.toLowerCase(), bare: true };
}

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function matches(entry, terms) {
  return terms.every((term) => entry.search.includes(term));
}

export class ModelPicker {
  /**
   * root: the .model-picker holding the combobox input, its toggle button and the popup with the
   * listbox. handlers: onError({code, message}) when the list cannot be loaded.
   */
  constructor(root, { url, conversationModel, onError }) {
    this.input = root.querySelector("[role=combobox]");
    this.toggle = root.querySelector(".model-toggle");
    this.popup = root.querySelector(".model-popup");
    this.listbox = root.querySelector("[role=listbox]");
    this.status = root.querySelector(".model-status");
    this.root = root;
    this.url = url;
    this.conversationModel = conversationModel || "";
    this.onError = onError;
    this.entries = null; // null until the list arrived (or failed)
    this.chosen = null;
    this.records = []; // one per option shown, in list order: {entry, node, recent}
    this.byNodeId = new Map();
    this.visible = []; // the records the filter lets through
    this.activeNode = null;
    this.query = ""; // what was typed since the list opened
    this.built = false; // the listbox reflects this.entries and the recent ones
    this.serial = 0; // for unique option and group ids across rebuilds
    // Until the list arrives, the conversation's (or last) model is usable so sending works.
    const initial = this.conversationModel || stored(STORAGE_KEY);
    if (initial) this.setChosen(bareEntry(initial));
    this.listen();
  }

  get value() {
    return this.chosen ? this.chosen.id : "";
  }

  get isOpen() {
    return !this.popup.hidden;
  }

  remember() {
    if (!this.value) return;
    store(STORAGE_KEY, this.value);
    addRecent(this.value);
    this.built = false; // the recent group changed
  }

  async load() {
    let response;
    let body = null;
    try {
      response = await fetch(this.url, { headers: { Accept: "application/json" },
                                         credentials: "same-origin" });
      body = await response.json();
    } catch {
      this.onError({ code: "network", message: t("Could not load the model list.") });
      this.markUnavailable();
      return;
    }
    if (!response.ok || !Array.isArray(body?.models)) {
      this.onError(body?.error || { code: "upstream_error",
                                    message: t("Could not load the model list.") });
      this.markUnavailable();
      return;
    }
    this.fill(body.models);
  }

  fill(models) {
    this.entries = models.map(entryOf);
    const chosen = this.pick();
    if (chosen?.bare) this.entries.unshift(chosen);
    this.setChosen(chosen);
    this.input.placeholder = chosen ? t("Search models") : t("No models available");
    this.refresh();
  }

  /** The conversation's model, else the current or remembered one, else the first offered. */
  pick() {
    for (const candidate of [this.conversationModel, this.value, stored(STORAGE_KEY)]) {
      if (!candidate) continue;
      const known = this.find(candidate);
      if (known) return known;
      if (candidate === this.conversationModel) {
        // The conversation's model is no longer offered: show it rather than switch silently.
        return bareEntry(candidate, t("{model} (not in your model list)", { model: candidate }));
      }
    }
    return this.entries[0] || null;
  }

  find(id) {
    return this.entries?.find((entry) => entry.id === id || entry.aliases.includes(id));
  }

  markUnavailable() {
    this.entries ||= [];
    // Without a list, the conversation's or last model (if any) still works.
    if (!this.value) this.input.placeholder = t("No models available");
    this.refresh();
  }

  /** Rebuilds the list at the next opening, or now if it is open (keeping the search). */
  refresh() {
    this.built = false;
    if (this.isOpen) this.showList(this.query);
  }

  // --- the closed control -------------------------------------------------------------------------

  setChosen(entry) {
    const before = this.chosen;
    this.chosen = entry;
    this.input.dataset.model = entry ? entry.id : "";
    if (!this.isOpen) this.showChosen(); // open, the input holds a search
    for (const record of this.records) {
      if (record.entry === before || record.entry === entry) {
        record.node.setAttribute("aria-selected", String(record.entry === entry));
      }
    }
  }

  /** The closed control says the chosen model's name; the tooltip adds its badges. */
  showChosen() {
    this.input.value = this.chosen ? this.chosen.name : "";
    this.input.title = this.chosen
      ? [this.chosen.name, ...this.chosen.badges.map((badge) => badge.text)].join(" · ")
      : "";
  }

  // --- the list -----------------------------------------------------------------------------------

  render() {
    this.records = [];
    this.byNodeId.clear();
    const groups = [];
    const recent = this.entries.length
      ? recentIds().map((id) => this.find(id)).filter(Boolean).slice(0, RECENT_LIMIT) : [];
    if (recent.length) groups.push(this.group(t("Recently used"), recent, true));
    for (const [provider, entries] of this.byProvider()) {
      groups.push(this.group(provider || t("This conversation"), entries, false));
    }
    this.listbox.replaceChildren(...groups);
    this.activeNode = null;
    this.built = true;
  }

  /** Providers in alphabetical order, models in Nobox's order; a model no longer offered
   * (provider "") first. */
  byProvider() {
    const groups = new Map();
    for (const entry of this.entries) {
      if (!groups.has(entry.provider)) groups.set(entry.provider, []);
      groups.get(entry.provider).push(entry);
    }
    return [...groups].sort(([a], [b]) => a.localeCompare(b));
  }

  group(label, entries, recent) {
    const labelId = `model-group-${++this.serial}`;
    const group = element("ul", { class: "model-group", role: "group",
                                  "aria-labelledby": labelId });
    if (recent) group.dataset.recent = "";
    group.append(element("li", { id: labelId, class: "model-group-label", role: "presentation" },
                         label));
    for (const entry of entries) {
      const node = this.option(entry);
      const record = { entry, node, recent };
      this.records.push(record);
      this.byNodeId.set(node.id, record);
      group.append(node);
    }
    return group;
  }

  option(entry) {
    // Spaces between the parts keep the option's accessible name readable.
    const badges = entry.badges.flatMap((badge) => [
      " ", element("span", { class: `model-badge model-badge-${badge.kind}` }, badge.text)]);
    const node = element("li", { id: `model-option-${++this.serial}`, class: "model-option",
                                 role: "option", "aria-selected": String(entry === this.chosen) },
                         element("span", { class: "model-name" }, entry.name), " ",
                         element("span", { class: "model-badges" }, ...badges));
    node.dataset.id = entry.id;
    return node;
  }

  /** Shows the options matching `query` (every word in the name, id or provider); the recent
   * ones only while nothing is typed, so a match is listed once. */
  filter(query) {
    const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    this.visible = [];
    for (const record of this.records) {
      const shown = terms.length ? !record.recent && matches(record.entry, terms) : true;
      record.node.hidden = !shown;
      if (shown) this.visible.push(record);
    }
    for (const group of this.listbox.children) {
      group.hidden = !group.querySelector("[role=option]:not([hidden])");
    }
    this.listbox.hidden = !this.visible.length; // an empty listbox is not a valid one
    this.status.textContent = this.statusText(terms.length);
  }

  statusText(filtered) {
    if (this.entries === null) return t("Loading models…");
    if (!this.entries.length) return t("No models available");
    if (!this.visible.length) return t("No model matches “{query}”", { query: this.query });
    if (!filtered) return t("{count} models", { count: this.entries.length });
    return this.visible.length === 1 ? t("1 match") : t("{count} matches",
                                                         { count: this.visible.length });
  }

  /** Makes the visible option at `index` (clamped) the active one, scrolled into view. */
  setActive(index) {
    this.clearActive();
    const record = this.visible[Math.max(0, Math.min(index, this.visible.length - 1))];
    if (!record) return;
    this.activeNode = record.node;
    this.activeNode.classList.add("is-active");
    this.input.setAttribute("aria-activedescendant", this.activeNode.id);
    this.activeNode.scrollIntoView({ block: "nearest" });
  }

  clearActive() {
    this.activeNode?.classList.remove("is-active");
    this.activeNode = null;
    this.input.removeAttribute("aria-activedescendant");
  }

  activeIndex() {
    return this.visible.findIndex((record) => record.node === this.activeNode);
  }

  /** The chosen model's place among the visible options: in its provider's group rather than
   * under Recently used; the first option when it is not shown. */
  chosenIndex() {
    const inGroup = this.visible.findIndex((r) => r.entry === this.chosen && !r.recent);
    if (inGroup >= 0) return inGroup;
    return Math.max(0, this.visible.findIndex((r) => r.entry === this.chosen));
  }

  move(step) {
    const current = this.activeIndex();
    this.setActive(current < 0 ? (step > 0 ? 0 : this.visible.length - 1) : current + step);
  }

  // --- open, close, choose ------------------------------------------------------------------------

  /** Opens the list filtered by `query`: the first match is active, or with nothing typed the
   * chosen model. */
  showList(query = "") {
    this.query = query;
    if (!this.built && this.entries) this.render();
    this.popup.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this.toggle.setAttribute("aria-expanded", "true");
    this.place();
    this.filter(query);
    this.setActive(query.trim() ? 0 : this.chosenIndex());
  }

  open() {
    if (this.isOpen) return;
    this.showList();
    this.input.select(); // typing replaces the name shown: it searches
  }

  close() {
    if (!this.isOpen) return;
    this.popup.hidden = true;
    this.input.setAttribute("aria-expanded", "false");
    this.toggle.setAttribute("aria-expanded", "false");
    this.clearActive();
    this.showChosen(); // what was typed to search goes
    // Selected, so typing again searches afresh instead of appending to the name.
    if (document.activeElement === this.input) this.input.select();
  }

  choose(record) {
    if (!record) return;
    this.setChosen(record.entry);
    this.remember();
    this.close();
  }

  /** The list hangs below the control, as wide as a name and its badges need, inside the
   * (visual) viewport: on a phone it spans the screen and ends above the keyboard. */
  place() {
    const control = this.input.getBoundingClientRect();
    const viewportWidth = document.documentElement.clientWidth;
    const viewportHeight = window.visualViewport?.height || window.innerHeight;
    const width = Math.min(Math.max(control.width, LIST_MIN_WIDTH), viewportWidth - 2 * EDGE);
    const left = Math.max(EDGE, Math.min(control.left, viewportWidth - EDGE - width));
    const top = control.bottom + 4;
    // CSSOM, not a style attribute: the Content-Security-Policy allows this.
    this.popup.style.left = `${left}px`;
    this.popup.style.top = `${top}px`;
    this.popup.style.width = `${width}px`;
    this.popup.style.maxHeight = `${Math.max(viewportHeight - top - EDGE, 120)}px`;
  }

  // --- events -------------------------------------------------------------------------------------

  listen() {
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.input.addEventListener("input", () => {
      if (!this.isOpen) {
        this.showList(this.input.value);
        return;
      }
      this.query = this.input.value;
      this.filter(this.query);
      this.setActive(this.query.trim() ? 0 : this.chosenIndex());
    });
    this.input.addEventListener("click", () => this.open());
    // The toggle and the options work with the pointer without taking focus from the input.
    for (const target of [this.toggle, this.popup]) {
      target.addEventListener("mousedown", (event) => event.preventDefault());
    }
    this.toggle.addEventListener("click", () => {
      if (this.isOpen) this.close();
      else this.open();
      this.input.focus();
    });
    this.listbox.addEventListener("click", (event) => {
      const node = event.target.closest("[role=option]");
      if (node) this.choose(this.byNodeId.get(node.id));
    });
    this.root.addEventListener("focusout", (event) => {
      if (!this.root.contains(event.relatedTarget)) this.close();
    });
    const replace = () => {
      if (this.isOpen) this.place();
    };
    window.addEventListener("resize", replace);
    window.visualViewport?.addEventListener("resize", replace);
  }

  onKey(event) {
    if (event.isComposing) return; // Enter and arrows belong to the input method then
    const action = this.keyAction(event);
    if (!action) return;
    event.preventDefault(); // also keeps Esc from stopping a reply (chat.js)
    action();
  }

  keyAction(event) {
    const open = this.isOpen;
    switch (event.key) {
      case "ArrowDown":
        return open ? () => this.move(1) : () => this.open();
      case "ArrowUp":
        if (event.altKey) return open ? () => this.close() : null;
        return open ? () => this.move(-1) : () => this.open();
      case "PageDown":
        return open ? () => this.move(PAGE_STEP) : null;
      case "PageUp":
        return open ? () => this.move(-PAGE_STEP) : null;
      case "Home":
        return open ? () => this.setActive(0) : null;
      case "End":
        return open ? () => this.setActive(this.visible.length - 1) : null;
      case "Enter":
        return open ? () => this.choose(this.byNodeId.get(this.activeNode?.id)) : null;
      case "Escape":
        return open ? () => this.close() : null;
      case "Tab":
        if (open) this.close(); // and Tab moves on as usual
        return null;
      default:
        return null;
    }
  }
}
