// The conversation list (docs/protocol.md, "Conversation list"): grouping, rename in place, pin,
// archive, delete with undo, search; and the header's conversation menu. Every text that came
// from a user (titles, snippets) is put in with textContent, never as HTML.

import { t } from "./i18n.js";

const SEARCH_DELAY = 250; // ms of quiet typing before a search is sent
const DAY = 24 * 60 * 60 * 1000;
// The undo button goes away this long before the server's window closes, so a click on it
// is not refused for a few milliseconds of network.
const UNDO_MARGIN = 500;

/** A row's group. Days are the browser's own (its time zone), as the person reads them. */
export function groupOf(row, now = new Date()) {
  if (row.archived) return "archived";
  if (row.pinned) return "pinned";
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const updated = new Date(row.updated).getTime();
  if (updated >= today) return "today";
  if (updated >= today - 7 * DAY) return "week";
  return "older";
}

const GROUPS = [
  ["pinned", t("Pinned")],
  ["today", t("Today")],
  ["week", t("Previous 7 days")],
  ["older", t("Older")],
];

function rowFromElement(li) {
  const link = li.querySelector("a");
  return {
    id: li.dataset.id,
    title: link.textContent.trim(),
    updated: li.dataset.updated,
    pinned: li.hasAttribute("data-pinned"),
    archived: li.hasAttribute("data-archived"),
  };
}

function rowFromSummary(summary) {
  return {
    id: summary.id,
    title: summary.title,
    updated: summary.updated_at,
    pinned: summary.pinned,
    archived: summary.archived,
  };
}

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

export class Sidebar {
  /**
   * root: the <aside>; options: current (the shown conversation's id or null), href(id),
   * shareHref(id), homeUrl, onRenamed(id, title), onError(message).
   */
  constructor(root, options) {
    this.root = root;
    this.options = options;
    this.current = options.current;
    this.apiUrl = root.dataset.apiUrl;
    this.csrf = root.dataset.csrf;
    this.list = root.querySelector("#conversation-list");
    this.empty = root.querySelector(".conversation-list-empty");
    this.rows = Array.from(this.list.querySelectorAll("li[data-id]"), rowFromElement);
    this.showArchived = false;
    this.toast = new UndoToast(root.querySelector("#undo-toast"));
    this.search = new Search(root, this);
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.list.addEventListener("keydown", (event) => this.onKeydown(event));
    document.addEventListener("click", (event) => {
      if (!event.target.closest(".row-actions, .row-actions-toggle")) this.closeMenus();
    });
    this.render();
  }

  // --- the list ---------------------------------------------------------------------------------

  find(id) {
    return this.rows.find((row) => row.id === id);
  }

  /** A conversation was written to just now (an `ack`): it moves to the top of its group. */
  bump(id, title) {
    let row = this.find(id);
    if (!row) {
      row = { id, title: title || t("New chat"), pinned: false, archived: false };
      this.rows.push(row);
    }
    row.updated = new Date().toISOString();
    if (title) row.title = title;
    this.render();
  }

  /** A conversation's new title from elsewhere (chat/titles.py): its row stays where it is. */
  retitle(id, title) {
    const row = this.find(id);
    if (row) row.title = title;
    this.render();
    this.options.onRenamed(id, title);
  }

  setCurrent(id) {
    this.current = id;
    this.render();
  }

  render() {
    // Rebuilding now would take the title being edited away: finishing the edit renders.
    if (this.editing) return;
    const now = new Date();
    const sorted = [...this.rows].sort((a, b) => new Date(b.updated) - new Date(a.updated));
    const sections = [];
    for (const [key, label] of GROUPS) {
      const rows = sorted.filter((row) => groupOf(row, now) === key);
      if (rows.length) sections.push(this.section(key, element("h2", { className: "group-title", textContent: label }), rows));
    }
    const archived = sorted.filter((row) => row.archived);
    if (archived.length) {
      const toggle = element("button", {
        type: "button",
        className: "archived-toggle linklike",
        textContent: t("Archived ({count})", { count: archived.length }),
        "aria-expanded": String(this.showArchived),
      });
      const section = this.section("archived", toggle, archived);
      section.querySelector("ul").hidden = !this.showArchived;
      sections.push(section);
    }
    this.list.replaceChildren(...sections);
    this.empty.hidden = this.rows.length > 0;
  }

  section(key, heading, rows) {
    return element(
      "section",
      { className: "conversation-group", dataset: { group: key } },
      heading,
      element("ul", {}, ...rows.map((row) => this.rowElement(row))),
    );
  }

  rowElement(row) {
    const current = row.id === this.current;
    const link = element("a", {
      href: this.options.href(row.id),
      className: current ? "conversation-link current" : "conversation-link",
      textContent: row.title,
      dataset: { id: row.id },
    });
    if (current) link.setAttribute("aria-current", "page");
    const toggle = element("button", {
      type: "button",
      className: "row-actions-toggle",
      textContent: "⋯",
      title: t("Rename, pin, archive or delete"),
      "aria-label": t("Actions for {title}", { title: row.title }),
      "aria-haspopup": "menu",
      "aria-expanded": "false",
    });
    const item = (action, label) =>
      element("button", { type: "button", dataset: { action }, role: "menuitem", textContent: label });
    const menu = element(
      "div",
      { className: "row-actions", role: "menu", hidden: true },
      item("rename", t("Rename")),
      item("pin", row.pinned ? t("Unpin") : t("Pin")),
      item("archive", row.archived ? t("Unarchive") : t("Archive")),
      item("delete", t("Delete")),
    );
    menu.lastElementChild.classList.add("danger");
    // The row's Share entry, as the server renders it (shared links, chat/share_views.py).
    const share = element("a", {
      className: "row-share",
      href: this.options.shareHref(row.id),
      title: t("Share"),
      textContent: t("Share"),
      "aria-label": t("Share “{title}”", { title: row.title }),
    });
    return element("li", { className: "conversation-row", dataset: { id: row.id } },
                   link, share, toggle, menu);
  }

  closeMenus(except = null) {
    for (const menu of this.list.querySelectorAll(".row-actions:not([hidden])")) {
      if (menu === except) continue;
      menu.hidden = true;
      menu.previousElementSibling.setAttribute("aria-expanded", "false");
    }
  }

  onClick(event) {
    if (event.target.closest(".archived-toggle")) {
      this.showArchived = !this.showArchived;
      this.render();
      this.list.querySelector(".archived-toggle").focus();
      return;
    }
    const toggle = event.target.closest(".row-actions-toggle");
    if (toggle) {
      const menu = toggle.nextElementSibling;
      this.closeMenus(menu);
      menu.hidden = !menu.hidden;
      toggle.setAttribute("aria-expanded", String(!menu.hidden));
      if (!menu.hidden) menu.querySelector("button").focus();
      return;
    }
    const action = event.target.closest(".row-actions [data-action]");
    if (!action) return;
    const id = action.closest("li").dataset.id;
    this.closeMenus();
    const row = this.find(id);
    if (!row) return;
    ({
      rename: () => this.startRename(id),
      pin: () => this.update(id, "pin", { pinned: String(!row.pinned) }),
      archive: () => this.update(id, "archive", { archived: String(!row.archived) }),
      delete: () => this.delete(id),
    })[action.dataset.action]();
  }

  onKeydown(event) {
    if (event.key !== "Escape") return;
    const menu = event.target.closest(".row-actions");
    if (menu) {
      this.closeMenus();
      menu.previousElementSibling.focus();
      event.stopPropagation();
    }
  }

  // --- actions ----------------------------------------------------------------------------------

  async post(id, action, fields = {}) {
    const body = new URLSearchParams(fields);
    let response;
    try {
      response = await fetch(`${this.apiUrl}/${encodeURIComponent(id)}/${action}`, {
        method: "POST",
        headers: { "X-CSRFToken": this.csrf, Accept: "application/json" },
        body,
        credentials: "same-origin",
      });
    } catch {
      return { error: { code: "network", message: t("Could not reach the server. Try again.") } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      return { error: data?.error
               || { code: "http", message: t("The server answered {status}.", { status: response.status }) } };
    }
    return data;
  }

  async update(id, action, fields) {
    const answer = await this.post(id, action, fields);
    if (answer.error) {
      this.options.onError(answer.error.message);
      return false;
    }
    this.adopt(answer.conversation);
    return true;
  }

  /** A conversation as the server now describes it replaces our row. */
  adopt(summary) {
    const row = rowFromSummary(summary);
    const index = this.rows.findIndex((r) => r.id === row.id);
    if (index >= 0) this.rows[index] = row;
    else this.rows.push(row);
    if (row.archived && !this.showArchived && index >= 0) {
      // Archiving tucks the row away; say where it went.
      this.toast.show(t("Archived “{title}”.", { title: row.title }));
    }
    this.render();
    this.options.onRenamed(row.id, row.title);
  }

  startRename(id) {
    const row = this.find(id);
    const li = this.list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
    if (!row || !li) return;
    const input = element("input", {
      type: "text",
      className: "rename-input",
      value: row.title,
      maxLength: 200,
      "aria-label": t("New title"),
    });
    this.editing = id;
    li.querySelector("a").replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = () => {
      done = true;
      this.editing = null;
      this.render();
    };
    input.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish();
        this.focusRow(id);
      } else if (event.key === "Enter") {
        event.preventDefault();
        const title = input.value.trim();
        if (!title) {
          this.options.onError(t("A title cannot be empty."));
          return;
        }
        input.disabled = true;
        const saved = await this.update(id, "rename", { title });
        if (saved) {
          finish();
          this.focusRow(id);
        } else {
          input.disabled = false;
          input.focus();
        }
      }
    });
    // Leaving the field without Enter keeps the old title (as Esc does).
    input.addEventListener("blur", () => {
      if (!done && !input.disabled) finish();
    });
  }

  focusRow(id) {
    this.list.querySelector(`a[data-id="${CSS.escape(id)}"]`)?.focus();
  }

  /** Delete now (a running reply stops at once), with Undo for the server's window. */
  async delete(id) {
    const row = this.find(id);
    const answer = await this.post(id, "delete");
    if (answer.error) {
      this.options.onError(answer.error.message);
      return;
    }
    this.rows = this.rows.filter((r) => r.id !== id);
    this.render();
    const wasCurrent = id === this.current;
    this.toast.show(t("Deleted “{title}”.", { title: row?.title || t("conversation") }), {
      seconds: answer.undo_seconds,
      undo: () => this.restore(id),
      expired: () => {
        // The chat on screen is gone for good: leave it.
        if (wasCurrent && this.current === id) location.assign(this.options.homeUrl);
      },
    });
  }

  async restore(id) {
    const answer = await this.post(id, "restore");
    if (answer.error) {
      this.toast.show(answer.error.message);
      if (id === this.current && answer.error.code === "undo_expired") {
        location.assign(this.options.homeUrl);
      }
      return;
    }
    this.adopt(answer.conversation);
    this.toast.show(t("Restored “{title}”.", { title: answer.conversation.title }));
  }
}

/** The one "Deleted … Undo" line at the bottom of the sidebar. */
class UndoToast {
  constructor(root) {
    this.root = root;
    this.timer = null;
  }

  show(text, { seconds = 5, undo = null, expired = null } = {}) {
    clearTimeout(this.timer);
    // A toast replaced before its time is up still counts as expired for its conversation.
    this.expired?.();
    this.expired = expired;
    const message = element("span", { className: "undo-text", textContent: text });
    const children = [message];
    if (undo) {
      const button = element("button", { type: "button", className: "undo-button", textContent: t("Undo") });
      button.addEventListener("click", () => {
        this.expired = null;
        this.hide();
        undo();
      });
      children.push(button);
    }
    this.root.replaceChildren(...children);
    this.root.hidden = false;
    const wait = undo ? Math.max(1000, seconds * 1000 - UNDO_MARGIN) : seconds * 1000;
    this.timer = setTimeout(() => {
      const then = this.expired;
      this.expired = null;
      this.hide();
      then?.();
    }, wait);
  }

  hide() {
    clearTimeout(this.timer);
    this.root.hidden = true;
    this.root.replaceChildren();
  }
}

/** The search box: debounced requests, results with snippets, arrow keys between them. */
class Search {
  constructor(root, sidebar) {
    this.sidebar = sidebar;
    this.input = root.querySelector("#conversation-search");
    this.panel = root.querySelector("#search-results");
    this.status = root.querySelector("#search-status");
    this.results = root.querySelector("#search-result-list");
    this.nav = root.querySelector("#conversation-nav");
    this.timer = null;
    this.controller = null;
    this.input.addEventListener("input", () => this.schedule());
    this.input.addEventListener("keydown", (event) => this.onInputKey(event));
    this.results.addEventListener("keydown", (event) => this.onResultKey(event));
  }

  schedule() {
    clearTimeout(this.timer);
    const query = this.input.value.trim();
    if (!query) {
      this.clear();
      return;
    }
    this.timer = setTimeout(() => this.run(query), SEARCH_DELAY);
  }

  clear() {
    this.controller?.abort();
    this.panel.hidden = true;
    this.nav.hidden = false;
    this.results.replaceChildren();
    this.status.textContent = "";
  }

  async run(query) {
    this.controller?.abort();
    this.controller = new AbortController();
    this.panel.hidden = false;
    this.nav.hidden = true;
    this.status.textContent = t("Searching…");
    let data;
    try {
      const response = await fetch(`${this.sidebar.apiUrl}?q=${encodeURIComponent(query)}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        signal: this.controller.signal,
      });
      data = await response.json();
      if (!response.ok) {
        throw new Error(data?.error?.message
                        || t("The server answered {status}.", { status: response.status }));
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      this.status.textContent = error.message || t("Search failed. Try again.");
      this.results.replaceChildren();
      return;
    }
    if (this.input.value.trim() !== query) return; // typed on meanwhile
    this.show(data.results);
  }

  show(results) {
    this.status.textContent = results.length
      ? (results.length === 1 ? t("1 conversation found")
        : t("{count} conversations found", { count: results.length }))
      : t("No conversations found.");
    this.results.replaceChildren(...results.map((result) => this.resultElement(result)));
  }

  resultElement(result) {
    const snippet = element("span", { className: "result-snippet" });
    if (result.highlight) {
      const [start, end] = result.highlight;
      snippet.append(
        result.snippet.slice(0, start),
        element("mark", { textContent: result.snippet.slice(start, end) }),
        result.snippet.slice(end),
      );
    } else {
      snippet.textContent = result.snippet;
    }
    const title = element("span", { className: "result-title", textContent: result.title });
    const link = element(
      "a",
      { href: this.sidebar.options.href(result.id), className: "search-result", dataset: { id: result.id } },
      title,
      snippet,
    );
    if (result.archived) title.append(element("span", { className: "result-badge", textContent: "Archived" }));
    return element("li", {}, link);
  }

  links() {
    return Array.from(this.results.querySelectorAll("a.search-result"));
  }

  onInputKey(event) {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      this.links()[0]?.focus();
    } else if (event.key === "Escape" && this.input.value) {
      event.preventDefault();
      event.stopPropagation();
      this.input.value = "";
      this.clear();
    } else if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(this.timer);
      const query = this.input.value.trim();
      if (query) this.run(query);
    }
  }

  onResultKey(event) {
    const links = this.links();
    const index = links.indexOf(document.activeElement);
    if (event.key === "ArrowDown" && index < links.length - 1) {
      event.preventDefault();
      links[index + 1].focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      (index > 0 ? links[index - 1] : this.input).focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.input.focus();
    }
  }
}

/** The header's conversation menu: hidden for a new chat until its first `ack` gives it an id. */
export class HeaderMenu {
  constructor(root, sidebar, { href, shareHref }) {
    this.root = root;
    this.sidebar = sidebar;
    this.href = href;
    this.shareHref = shareHref;
    this.renameForm = root.querySelector(".rename-form");
    this.deleteForm = root.querySelector(".delete-form");
    this.titleInput = root.querySelector("#rename-title");
    this.id = null;
    this.renameForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!this.id) return;
      const title = this.titleInput.value.trim();
      if (!title) {
        this.sidebar.options.onError(t("A title cannot be empty."));
        return;
      }
      // The sidebar's onRenamed updates the header's title (and this form's value).
      if (await this.sidebar.update(this.id, "rename", { title })) this.root.open = false;
    });
    this.deleteForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!this.id) return;
      this.root.open = false;
      this.sidebar.delete(this.id);
    });
  }

  /** The menu belongs to conversation `id` (its forms also work without this script). */
  attach(id, title) {
    this.id = id;
    this.renameForm.action = `${this.href(id)}rename`;
    this.deleteForm.action = `${this.href(id)}delete`;
    // Entry points of other features (shared links, export) follow the same conversation.
    const share = this.root.querySelector(".share-entry");
    if (share) share.href = this.shareHref(id);
    const markdown = this.root.querySelector(".export-markdown");
    if (markdown) markdown.href = `${this.href(id)}export.md`;
    const json = this.root.querySelector(".export-json");
    if (json) json.href = `${this.href(id)}export.json`;
    this.titleInput.value = title || "";
    this.root.hidden = false;
  }
}
