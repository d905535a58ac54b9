// The chat WebSocket (docs/protocol.md), reconnecting by itself. It knows frames only as JSON; what
// they mean is chat.js's business, except `hello` (the socket is ready) and `pong` (it is alive).

const MIN_DELAY = 500;
const MAX_DELAY = 10000;
const PING_EVERY = 25000;
// A socket that stays silent this long after a ping is half-open (a sleeping laptop, a dropped
// NAT entry): the browser would not notice for minutes, so it is closed and replaced.
const PONG_TIMEOUT = 10000;
// An attempt that has not said `hello` by then is given up and retried.
const CONNECT_TIMEOUT = 10000;
// After this many failed attempts in a row the page says "Offline" (it keeps retrying).
const OFFLINE_AFTER = 4;
// Close codes after which retrying cannot help (docs/protocol.md; 4404: a share link is gone).
const FINAL_CODES = new Set([4401, 4403, 4404]);

export function chatSocketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/chat/`;
}

/** Delay before reconnect attempt `attempt` (0-based): exponential with jitter, 0.5 s to 10 s. */
export function backoffDelay(attempt) {
  const ceiling = Math.min(MAX_DELAY, MIN_DELAY * 2 ** (attempt + 1));
  return MIN_DELAY + Math.random() * (ceiling - MIN_DELAY);
}

export class ReconnectingSocket {
  /**
   * handlers: onFrame(frame) for every frame but pong; onReady() after each `hello`;
   * onState(state, detail) with state "connecting" | "connected" | "offline";
   * onDropped(code) when a ready connection closes and will be retried (code 1009: a frame sent
   * was over the server's size limit);
   * onClosedForGood(code) when the server refuses this session (no more retries).
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.everConnected = false;
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    window.addEventListener("online", () => this.retryNow());
    window.addEventListener("offline", () => {
      if (!this.ready) this.setState("offline");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.ready) this.retryNow();
    });
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopPinging();
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close();
    }
    this.setState(navigator.onLine === false || this.attempt >= OFFLINE_AFTER
      ? "offline" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.pongTimer = setTimeout(() => this.abandon(ws), CONNECT_TIMEOUT);
    ws.addEventListener("message", (event) => this.receive(ws, event));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  /** Sends a frame if the socket is ready; returns its length in characters, or 0 (and sends
   * nothing) when not ready. */
  send(frame) {
    if (!this.ready || this.ws?.readyState !== WebSocket.OPEN) return 0;
    const text = JSON.stringify(frame);
    this.ws.send(text);
    return text.length;
  }

  /** Reconnect at once (the network came back, the user asked): forget the backoff. */
  retryNow() {
    if (this.stopped || this.ready) return;
    this.attempt = 0;
    if (this.ws) return; // an attempt is under way
    this.connect();
  }

  receive(ws, event) {
    if (ws !== this.ws) return;
    if (this.ready) this.alive();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame?.type === "pong") return;
    if (frame?.type === "hello") {
      this.alive();
      this.ready = true;
      this.attempt = 0;
      this.everConnected = true;
      this.startPinging();
      this.setState("connected");
      this.handlers.onReady?.();
      return;
    }
    this.handlers.onFrame?.(frame);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    const wasReady = this.ready;
    this.ws = null;
    this.ready = false;
    this.stopPinging();
    if (FINAL_CODES.has(event.code)) {
      this.stopped = true;
      this.setState("offline");
      this.handlers.onClosedForGood?.(event.code);
      return;
    }
    if (wasReady) this.handlers.onDropped?.(event.code);
    this.scheduleRetry();
  }

  // Closing a dead connection waits for a closing handshake that never comes, so the socket is
  // dropped from our side at once and its close event ignored.
  abandon(ws) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    this.stopPinging();
    try {
      ws.close();
    } catch {
      // already closed
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.stopped) return;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.setState(navigator.onLine === false || this.attempt >= OFFLINE_AFTER
      ? "offline" : "connecting", { retryIn: delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startPinging() {
    this.stopPinging();
    this.pingTimer = setInterval(() => {
      if (this.send({ type: "ping" }) && !this.pongTimer) {
        const ws = this.ws;
        this.pongTimer = setTimeout(() => this.abandon(ws), PONG_TIMEOUT);
      }
    }, PING_EVERY);
  }

  stopPinging() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  alive() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  setState(state, detail = {}) {
    this.handlers.onState?.(state, { ...detail, everConnected: this.everConnected });
  }
}
