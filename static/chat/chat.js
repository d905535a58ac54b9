// The chat page: wires the socket, the message list, the composer and the model picker to the
// protocol in docs/protocol.md. Server data comes from the page's json_script block.
import { chatSocketUrl, ReconnectingSocket } from "./socket.js";
import { MessageList } from "./messages.js";
import { Composer } from "./composer.js";
import { ModelPicker } from "./models.js";
import { enableCopyButtons } from "./copy.js";
import { ConversationCost } from "./cost.js";
import { HeaderMenu, Sidebar } from "./sidebar.js";
import { t } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const page = JSON.parse($("#page-data").textContent);
const urls = $("#chat").dataset;
const MAX_BANNERS = 4;
// Close code for a frame over the server's size limit (docs/protocol.md).
const MESSAGE_TOO_BIG = 1009;
// A send this large (in characters) whose connection drops before its answer was most likely cut
// off for its size, by the server or a proxy on the way that closes without 1009 (plain daphne
// drops anything over 1 MiB): resending it on every reconnect would drop every connection.
const LARGE_FRAME = 1024 * 1024;
const NOT_CONNECTED = t("Not connected: your message will be sent when the connection is back.");

const state = {
  conversation: page.conversation || null,
  // {clientId, frame, inFlight}: a send awaiting its ack, resent after every reconnect; inFlight
  // is its length when sent on the current connection, 0 while it waits for one.
  pending: null,
  closedForGood: false,
  modelsError: null, // why /api/models gave no list, if it did not
};

// --- banners ------------------------------------------------------------------------------------

const banners = $("#banners");

/** An error banner (role=alert), dismissable; `key` replaces an earlier banner of the same kind. */
function showBanner(text, { key = text, link = null } = {}) {
  for (const old of banners.querySelectorAll(".banner")) {
    if (old.dataset.key === key) old.remove();
  }
  const banner = document.createElement("div");
  banner.className = "banner";
  banner.setAttribute("role", "alert");
  banner.dataset.key = key;
  const message = document.createElement("p");
  message.className = "banner-text";
  message.textContent = text;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.label;
    message.append(" ", a);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "banner-close";
  close.setAttribute("aria-label", t("Dismiss"));
  close.textContent = "×";
  banner.append(message, close);
  banners.append(banner);
  while (banners.children.length > MAX_BANNERS) banners.firstElementChild.remove();
}

function dismissBanner(key) {
  for (const banner of banners.querySelectorAll(".banner")) {
    if (banner.dataset.key === key) banner.remove();
  }
}

banners.addEventListener("click", (event) => {
  if (event.target.closest(".banner-close")) event.target.closest(".banner").remove();
});

/** An `error` frame (or /api/models error) as a banner, with what to do about it. */
function showError(code, message, key = code) {
  if (code === "no_token" || code === "invalid_token" || String(code).startsWith("token_")) {
    // no_token, token_unreadable, token_expired, token_revoked, token_rejected: all fixed in
    // Settings, and one such banner is enough.
    showBanner(message || t("Save your Nobox token in Settings before chatting."),
               { key: "token", link: { href: urls.settingsUrl, label: t("Open Settings") } });
  } else if (code === "busy") {
    showBanner(`${message || t("A reply is still being written in this conversation.")} `
               + t("Wait for it to finish or press Stop."), { key });
  } else {
    showBanner(message || t("Something went wrong."), { key });
  }
}

// --- messages -----------------------------------------------------------------------------------

const messagesEl = $("#messages");
const emptyState = $("#empty-state");
const jumpLatest = $("#jump-latest");
const stopButton = $("#stop");
const sendButton = $("#send");
const announcer = $("#announcer");

const list = new MessageList(messagesEl, {
  settingsUrl: urls.settingsUrl,
  onStickChange: (stick) => { jumpLatest.hidden = stick || list.size === 0; },
  onAction: turnAction,
});

// While a reply streams, Send becomes Stop (and Esc stops); focus never falls to the page body.
function refreshChrome() {
  emptyState.hidden = list.size > 0;
  const streaming = state.conversation !== null && list.isStreaming();
  const stopHadFocus = document.activeElement === stopButton;
  stopButton.hidden = !streaming;
  sendButton.hidden = streaming;
  if (!streaming) stopButton.disabled = false;
  if (stopHadFocus && !streaming) composer.focus();
}

/** Says `text` to screen readers (a polite live region): finished replies and errors. */
function announce(text) {
  announcer.textContent = "";
  // A fresh text node after a tick, so the same words twice are announced twice.
  setTimeout(() => { announcer.textContent = text; }, 50);
}

const REPLY_ENDINGS = {
  complete: t("Reply finished."),
  truncated: t("Reply finished: it reached the length limit."),
  stopped: t("Reply stopped."),
  interrupted: t("Reply interrupted."),
  error: t("The reply failed."),
};

jumpLatest.addEventListener("click", () => list.scrollToBottom());

enableCopyButtons(messagesEl, list, announce);

// --- sidebar ------------------------------------------------------------------------------------

const chatTitle = $("#chat-title");

function conversationHref(id) {
  return urls.conversationUrl.replace("CONVERSATION_ID", encodeURIComponent(id));
}

function showTitle(title) {
  chatTitle.textContent = title || t("New chat");
  document.title = `${title || t("New chat")} · noboxweb`;
}

function shareHref(id) {
  return urls.shareUrl.replace("CONVERSATION_ID", encodeURIComponent(id));
}

// The list, its actions and search live in sidebar.js; this page only tells it what it shows.
const sidebar = new Sidebar($("#sidebar"), {
  current: state.conversation,
  href: conversationHref,
  shareHref,
  homeUrl: $(".new-chat").href,
  onRenamed(id, title) {
    if (id !== state.conversation) return;
    showTitle(title);
    headerMenu.attach(id, title);
  },
  onError: (message) => showBanner(message, { key: "conversation-list" }),
});
const headerMenu = new HeaderMenu($("#conversation-menu"), sidebar,
                                  { href: conversationHref, shareHref });
if (state.conversation) headerMenu.attach(state.conversation, $("#rename-title").value);

/** Put the conversation at the top of the sidebar (it is the most recently updated). */
function bumpConversation(id, title) {
  sidebar.bump(id, title);
}

/** A conversation's new title (it was named after its first reply), wherever it shows. */
function renameConversation(id, title) {
  sidebar.retitle(id, title);
}

/** The first `ack` of a new chat: this page now shows that conversation, with its menu. */
const conversationCost = new ConversationCost($("#conversation-cost"), urls.usageUrl);

function adoptConversation(id, title) {
  state.conversation = id;
  conversationCost.adopt(id);
  history.replaceState(null, "", conversationHref(id));
  showTitle(title);
  sidebar.setCurrent(id);
  headerMenu.attach(id, title);
}

const sidebarToggle = $("#sidebar-toggle");
const backdrop = $("#sidebar-backdrop");

function setSidebar(open) {
  document.body.classList.toggle("sidebar-open", open);
  sidebarToggle.setAttribute("aria-expanded", String(open));
  sidebarToggle.setAttribute("aria-label", open ? t("Hide conversations") : t("Show conversations"));
  backdrop.hidden = !open;
  if (open) ($("#sidebar a.current") || $("#sidebar a")).focus();
}

sidebarToggle.addEventListener("click", () => {
  setSidebar(!document.body.classList.contains("sidebar-open"));
});
backdrop.addEventListener("click", () => setSidebar(false));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) {
    event.preventDefault(); // this Esc closes the sidebar; it does not stop a reply
    setSidebar(false);
    sidebarToggle.focus();
  }
});

// --- settings panel -----------------------------------------------------------------------------

const settingsToggle = $("#settings-toggle");
const settingsPanel = $("#chat-settings");
const systemPrompt = $("#system-prompt");
const temperature = $("#temperature");
const maxTokens = $("#max-tokens");

systemPrompt.value = page.system || "";
temperature.value = page.temperature ?? "";
maxTokens.value = page.max_tokens ?? "";

function setSettingsOpen(open) {
  settingsPanel.hidden = !open;
  settingsToggle.setAttribute("aria-expanded", String(open));
}

function markCustomSettings() {
  const custom = systemPrompt.value.trim() || temperature.value !== "" || maxTokens.value !== "";
  settingsToggle.classList.toggle("has-values", Boolean(custom));
}

settingsToggle.addEventListener("click", () => setSettingsOpen(settingsPanel.hidden));
for (const field of [systemPrompt, temperature, maxTokens]) {
  field.addEventListener("input", markCustomSettings);
}
markCustomSettings();

/** The panel's values as send fields, or {error} when one is out of range. */
function readSettings() {
  let temp = null;
  if (temperature.value.trim() !== "") {
    temp = Number(temperature.value);
    if (!Number.isFinite(temp) || temp < 0 || temp > 2 || !temperature.checkValidity()) {
      return { error: t("Temperature must be a number from 0 to 2 (or empty for the default)."),
               field: temperature };
    }
  }
  let tokens = null;
  if (maxTokens.value.trim() !== "") {
    tokens = Number(maxTokens.value);
    if (!Number.isInteger(tokens) || tokens < 1 || tokens > Number(maxTokens.max)) {
      return { error: t("Max tokens must be a whole number from 1 to {max} (or empty for the default).",
                        { max: maxTokens.max }), field: maxTokens };
    }
  }
  return { system: systemPrompt.value, temperature: temp, max_tokens: tokens };
}

// --- model picker -------------------------------------------------------------------------------

const picker = new ModelPicker($("#model-picker"), {
  url: urls.modelsUrl,
  conversationModel: page.model,
  onError: ({ code, message }) => {
    state.modelsError = { code, message };
    if (code === "no_token" && $(".onboarding")) return; // the first-run card asks for it
    if (code === "unauthenticated") {
      showBanner(t("You are signed out."), { key: "session", link: loginLink() });
    } else {
      showError(code, message, "models");
    }
  },
});

function loginLink() {
  const next = encodeURIComponent(location.pathname);
  return { href: `${urls.loginUrl}?next=${next}`, label: t("Sign in again") };
}

// --- sending ------------------------------------------------------------------------------------

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID needs a secure context; a site served over plain http inside a LAN has not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const composer = new Composer($("#composer-form"), {
  onSubmit: send,
  onError: (message) => showBanner(message, { key: "attachment" }),
  announce,
}, page.limits);

/** What a new turn takes from the page (its model and settings), or null once the page has
 * said why it cannot go yet: a reply is streaming (`whileStreaming` says how to go on), no
 * model is picked (when the turn needs one), or a setting is invalid. */
function turnOptions({ needsModel, whileStreaming }) {
  if (state.conversation && list.isStreaming()) {
    composer.setStatus(whileStreaming);
    return null;
  }
  if (needsModel && !picker.value) {
    // Without a model list the reason (usually the token) is already on screen: say it again.
    if (state.modelsError) showError(state.modelsError.code, state.modelsError.message, "models");
    else showBanner(t("Pick a model first."), { key: "send" });
    return null;
  }
  const settings = readSettings();
  if (settings.error) {
    setSettingsOpen(true);
    settings.field.focus();
    showBanner(settings.error, { key: "send" });
    return null;
  }
  return { conversation: state.conversation, model: picker.value || null,
           system: settings.system, temperature: settings.temperature,
           max_tokens: settings.max_tokens };
}

function send() {
  if (state.pending || composer.isEmpty()) {
    composer.focus();
    return;
  }
  // Enter while a reply streams: the draft waits, and the page says how to go on.
  const options = turnOptions({
    needsModel: true,
    whileStreaming: t("A reply is being written: press Stop (or Esc) to end it, then send."),
  });
  if (!options) return;
  picker.remember();
  const frame = { type: "send", text: composer.text, attachments: composer.parts(), ...options };
  // After the last message shown, even if another tab switched branches meanwhile.
  if (state.conversation && list.lastId()) frame.parent = list.lastId();
  const sent = startPending(frame, { fromComposer: true });
  composer.lock(sent ? t("Sending…") : NOT_CONNECTED);
}

/** A frame that stores a turn (`send`, `regenerate`), awaiting its ack: resent with the same
 * client_id after every reconnect, so a double click or a resend never makes two replies. */
function startPending(frame, { fromComposer = false } = {}) {
  const clientId = newClientId();
  state.pending = { clientId, frame: { ...frame, client_id: clientId }, inFlight: 0, fromComposer };
  return sendPending();
}

/** The reader asked for a new version of a message, or to see another one (messages.js). */
function turnAction(kind, id, text) {
  if (kind === "switch") {
    if (list.isStreaming()) {
      composer.setStatus(t("A reply is being written: stop it to see other versions."));
    } else if (!socket.send({ type: "switch", conversation: state.conversation, message: id })) {
      showBanner(t("Not connected: try again when the connection is back."), { key: "send" });
    }
    return;
  }
  if (state.pending) return; // one turn at a time: a second click waits for the first's ack
  // A regenerate without a model keeps the conversation's; an edit is a new message.
  const options = turnOptions({
    needsModel: kind === "edit",
    whileStreaming: t("A reply is being written: press Stop (or Esc) to end it first."),
  });
  if (!options) return;
  if (kind === "regenerate") {
    startPending({ type: "regenerate", reply: id, ...options });
  } else if (kind === "edit") {
    startPending({ type: "send", edit: id, text, ...options });
  }
}

function sendPending() {
  state.pending.inFlight = socket.send(state.pending.frame);
  return state.pending.inFlight > 0;
}

/** Count down to the moment the server said a refused send may go again, then send it. */
function retryPendingIn(seconds, message) {
  const pending = state.pending;
  const until = Date.now() + seconds * 1000;
  const tick = () => {
    if (state.pending !== pending) return; // sent by a reconnect meanwhile, or given up
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left > 0) {
      composer.setStatus(`${message} ${t("Sending again in {seconds} s…", { seconds: left })}`);
      pending.timer = setTimeout(tick, Math.min(1000, until - Date.now()));
      return;
    }
    pending.timer = null;
    composer.setStatus(sendPending() ? t("Sending…") : NOT_CONNECTED);
  };
  clearTimeout(pending.timer);
  pending.inFlight = 0;
  tick();
}

/** The connection dropped: a pending send that caused it is refused, the others wait to resend. */
function pendingDropped(code) {
  const pending = state.pending;
  if (!pending?.inFlight) return;
  if (code !== MESSAGE_TOO_BIG && pending.inFlight < LARGE_FRAME) {
    pending.inFlight = 0;
    return;
  }
  // Nothing was stored: the draft stays, for the user to remove an attachment or shorten it.
  state.pending = null;
  composer.unlock();
  showBanner(t("The message is too large to send: remove an attachment or shorten the text."),
             { key: "send" });
}

function stopReply() {
  if (!state.conversation || stopButton.hidden) return;
  if (socket.send({ type: "stop", conversation: state.conversation })) {
    stopButton.disabled = true;
  } else {
    showBanner(t("Not connected: the reply cannot be stopped right now."), { key: "stop" });
  }
  composer.focus();
}

stopButton.addEventListener("click", stopReply);
document.addEventListener("keydown", (event) => {
  // Shift+Esc goes to the message box (shortcuts below); an Esc someone else took is theirs.
  if (event.key !== "Escape" || event.shiftKey || event.defaultPrevented) return;
  if (document.querySelector("dialog[open]")) return;
  stopReply();
});

// --- frames -------------------------------------------------------------------------------------

function subscribe() {
  if (state.conversation) {
    socket.send({ type: "subscribe", conversation: state.conversation,
                  after_seq: list.afterSeq() });
  }
}

const handlers = {
  ack(frame) {
    const mine = state.pending && frame.client_id === state.pending.clientId;
    if (mine) {
      const { fromComposer } = state.pending;
      state.pending = null;
      if (fromComposer) composer.clear();
      else composer.setStatus(""); // an edit's or regenerate's "Sending…" is over
      // What stood in the way of sending is gone with a stored message.
      for (const key of ["send", "attachment", "busy", "unsupported_file", "too_large"]) {
        dismissBanner(key);
      }
      if (!state.conversation) adoptConversation(frame.conversation, frame.title);
    }
    if (frame.conversation !== state.conversation) return;
    bumpConversation(frame.conversation, frame.title);
    list.upsert(frame.messages || [], frame.base);
    if (mine) list.scrollToBottom();
  },
  history(frame) {
    if (frame.conversation === state.conversation) list.upsert(frame.messages || [], frame.base);
  },
  messages(frame) {
    if (frame.conversation === state.conversation) list.upsert(frame.messages || [], frame.base);
  },
  snapshot(frame) {
    list.snapshot(frame.reply, frame.text);
  },
  title(frame) {
    // The conversation was named after its first reply (chat/titles.py).
    renameConversation(frame.conversation, frame.title);
  },
  delta(frame) {
    // A gap means a lost frame: resubscribe, which answers with a fresh snapshot.
    if (!list.delta(frame.reply, frame.offset, frame.text)) subscribe();
  },
  done(frame) {
    list.done(frame.reply, frame.message);
    dismissBanner("busy"); // the reply that made the chat busy has ended
    dismissBanner("stop");
    if (frame.message && list.records.has(frame.reply)) {
      const ending = REPLY_ENDINGS[frame.message.status];
      const error = frame.message.error?.message;
      if (ending) announce(error ? `${ending} ${error}` : ending);
    }
    // The reply's usage record was written with it: the chat's cost so far has changed. (A
    // socket hears the `done` of the conversation it watches only.)
    conversationCost.refresh();
  },
  error(frame) {
    const mine = state.pending && frame.client_id === state.pending.clientId;
    if (mine && frame.code === "rate_limited" && frame.retry_after > 0) {
      // Nothing was stored: the same send (same client_id) goes again when the server said.
      retryPendingIn(frame.retry_after, frame.message);
      return;
    }
    if (mine) {
      // Nothing was stored: the draft stays for the user to fix or resend.
      const { fromComposer } = state.pending;
      state.pending = null;
      if (fromComposer) {
        composer.unlock();
        composer.focus();
      } else {
        composer.setStatus("");
      }
    }
    if (frame.code === "not_running") return; // Stop raced the end of the reply.
    showError(frame.code, frame.message, mine ? "send" : frame.code);
  },
};

const connectionState = $("#connection-state");
const retryNow = $("#retry-now");

const socket = new ReconnectingSocket(chatSocketUrl(), {
  onReady() {
    subscribe();
    if (state.pending && !state.pending.timer) {
      // Same client_id: if the first attempt did reach the server, it answers with that message.
      sendPending();
      composer.setStatus(t("Sending…"));
    }
  },
  onDropped: pendingDropped,
  onFrame(frame) {
    handlers[frame.type]?.(frame);
    // Deltas are the hot path: nothing in the chrome changes with them.
    if (frame.type !== "delta" && frame.type !== "snapshot") refreshChrome();
  },
  onState(connection, { everConnected }) {
    connectionState.dataset.state = connection;
    connectionState.textContent = {
      connected: t("Connected"),
      connecting: everConnected ? t("Reconnecting…") : t("Connecting…"),
      offline: t("Offline"),
    }[connection];
    retryNow.hidden = connection === "connected" || state.closedForGood;
    if (connection === "connected") dismissBanner("stop"); // "Not connected: cannot stop"
    if (state.pending && connection !== "connected") {
      composer.setStatus(NOT_CONNECTED);
    }
  },
  onClosedForGood(code) {
    state.closedForGood = true;
    retryNow.hidden = true;
    const text = code === 4403 ? t("This account can no longer chat.") : t("You are signed out.");
    showBanner(text, { key: "session", link: loginLink() });
  },
});

retryNow.addEventListener("click", () => socket.retryNow());

// --- keyboard shortcuts ----------------------------------------------------------------------------
// The ones people expect from chat apps; `?` lists them. None fires while typing in a field,
// except the modified ones, which no text field uses.

const shortcutsDialog = $("#shortcuts");

function typing(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

document.addEventListener("keydown", (event) => {
  const mod = event.ctrlKey || event.metaKey;
  if (mod && event.shiftKey && event.key.toLowerCase() === "o") {
    event.preventDefault();
    window.location.assign(urls.homeUrl || "/");
  } else if (event.shiftKey && event.key === "Escape") {
    event.preventDefault();
    composer.focus();
  } else if (event.key === "?" && !mod && !typing(event.target) && !shortcutsDialog.open) {
    event.preventDefault();
    shortcutsDialog.showModal();
  }
});
shortcutsDialog.querySelector("button").addEventListener("click", () => shortcutsDialog.close());
shortcutsDialog.addEventListener("close", () => composer.focus());

// --- older messages -------------------------------------------------------------------------------
// A page carries the latest messages of its conversation; older ones are fetched a page at a time
// when the reader scrolls near the top.

const OLDER_MARGIN_PX = 400;
const older = { more: Boolean(page.older_messages), loading: false, url: page.messages_url };

function watchForOlderMessages() {
  if (!older.more || !older.url) return;
  messagesEl.addEventListener("scroll", () => {
    if (messagesEl.scrollTop < OLDER_MARGIN_PX) loadOlderMessages();
  }, { passive: true });
  if (messagesEl.scrollHeight <= messagesEl.clientHeight + OLDER_MARGIN_PX) loadOlderMessages();
}

async function loadOlderMessages() {
  const before = list.oldestSeq();
  if (!older.more || older.loading || before === null) return;
  older.loading = true;
  messagesEl.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(`${older.url}?before=${before}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    const answer = await response.json();
    list.prepend(answer.messages || []);
    older.more = Boolean(answer.older);
  } catch {
    // Tried again at the next scroll.
  } finally {
    older.loading = false;
    messagesEl.setAttribute("aria-busy", "false");
  }
}

// --- start --------------------------------------------------------------------------------------

list.load(page.messages || []);
conversationCost.show(state.conversation, page.usage);
messagesEl.setAttribute("aria-busy", "false");
watchForOlderMessages();
refreshChrome();
socket.connect();
picker.load();
composer.focus();
// The page is usable: the composer is wired and focused and the first messages are on screen
// (bench/page.py measures up to here).
performance.mark("composer-ready");
