// The shared page (docs/protocol.md, "The share viewer socket"): read-only. The messages render
// through the chat's own MessageList and render.js (one sanitiser for both pages); a live link
// follows the conversation over a viewer socket that accepts no writes.
import { ReconnectingSocket } from "./socket.js";
import { t } from "./i18n.js";
import { MessageList } from "./messages.js";
import { enableCopyButtons } from "./copy.js";

const $ = (selector) => document.querySelector(selector);
const page = JSON.parse($("#page-data").textContent);
// Replies that ended before they were finished, said in so many words for a reader who did not
// see them being written.
const INCOMPLETE = new Set(["stopped", "interrupted", "error", "truncated"]);
// The server closes a viewer's socket with this when the link is revoked or expires.
const LINK_GONE = 4404;

class SharedMessageList extends MessageList {
  footer(data) {
    const footer = super.footer(data);
    if (INCOMPLETE.has(data.status)) {
      const note = document.createElement("span");
      note.className = "message-incomplete";
      note.textContent = t("Incomplete reply");
      footer.prepend(note);
    }
    return footer;
  }
}

const messagesEl = $("#messages");
const list = new SharedMessageList(messagesEl);

function refreshEmpty() {
  $("#empty-state").hidden = list.size > 0;
}

function showBanner(text) {
  const banner = document.createElement("div");
  banner.className = "banner";
  banner.setAttribute("role", "alert");
  const message = document.createElement("p");
  message.className = "banner-text";
  message.textContent = text;
  banner.append(message);
  $("#banners").replaceChildren(banner);
}

enableCopyButtons(messagesEl, list);

function follow() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const connectionState = $("#connection-state");
  let socket = null;
  const subscribe = () => socket.send({ type: "subscribe", after_seq: list.afterSeq() });
  const handlers = {
    // `base`: the owner switched branches or started a new version; drop what is no longer shown.
    history: (frame) => list.upsert(frame.messages || [], frame.base),
    messages: (frame) => list.upsert(frame.messages || [], frame.base),
    snapshot: (frame) => list.snapshot(frame.reply, frame.text),
    // A gap means a lost frame: subscribing again answers with a fresh snapshot.
    delta: (frame) => { if (!list.delta(frame.reply, frame.offset, frame.text)) subscribe(); },
    done: (frame) => list.done(frame.reply, frame.message),
  };
  socket = new ReconnectingSocket(`${scheme}://${location.host}${page.socket_path}`, {
    onReady: subscribe,
    onFrame(frame) {
      handlers[frame.type]?.(frame);
      if (frame.type !== "delta" && frame.type !== "snapshot") refreshEmpty();
    },
    onState(state, { everConnected }) {
      connectionState.dataset.state = state;
      connectionState.textContent = {
        connected: t("Live"),
        connecting: everConnected ? t("Reconnecting…") : t("Connecting…"),
        offline: t("Offline"),
      }[state];
    },
    onClosedForGood(code) {
      connectionState.dataset.state = "offline";
      connectionState.textContent = t("Closed");
      showBanner(code === LINK_GONE
        ? t("This link was revoked or has expired: the conversation is no longer shared.")
        : t("Sign in to keep following this conversation."));
    },
  });
  socket.connect();
}

list.load(page.messages || []);
messagesEl.setAttribute("aria-busy", "false");
refreshEmpty();
if (page.live) follow();
