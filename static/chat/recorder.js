// Voice messages: the microphone, recorded into a WAV file that joins the composer's attachments
// exactly as a picked .wav would. Nobox takes audio as WAV or MP3 only, and MediaRecorder makes
// WebM/Opus, so the raw samples are taken from an AudioWorklet (recorder-worklet.js) and encoded
// here as 16-bit PCM, mono. Loaded by composer.js at the first press of the microphone button.
import { t } from "./i18n.js";

export const WAV_HEADER_BYTES = 44;
const BYTES_PER_SAMPLE = 2; // 16-bit PCM
// Plenty for speech, and a third of the bytes of the usual 48 kHz: three times as long fits
// under the attachment limit.
const SPEECH_SAMPLE_RATE = 16000;
const FLUSH_TIMEOUT_MS = 1000;
const CLOCK_INTERVAL_MS = 250;

/** The WAV file (RIFF, PCM 16-bit little-endian, mono) of `chunks` of samples in [-1, 1]. */
export function encodeWav(chunks, sampleRate) {
  const samples = chunks.reduce((total, chunk) => total + chunk.length, 0);
  const dataBytes = samples * BYTES_PER_SAMPLE;
  const bytes = new Uint8Array(WAV_HEADER_BYTES + dataBytes);
  const view = new DataView(bytes.buffer);
  const ascii = (offset, text) => {
    for (let i = 0; i < text.length; i++) bytes[offset + i] = text.charCodeAt(i);
  };
  ascii(0, "RIFF");
  view.setUint32(4, WAV_HEADER_BYTES - 8 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // the fmt chunk's size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // channels
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * BYTES_PER_SAMPLE, true); // bytes per second
  view.setUint16(32, BYTES_PER_SAMPLE, true); // block align
  view.setUint16(34, 8 * BYTES_PER_SAMPLE, true); // bits per sample
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  let offset = WAV_HEADER_BYTES;
  for (const chunk of chunks) {
    for (const sample of chunk) {
      const clamped = Math.max(-1, Math.min(1, sample));
      view.setInt16(offset, clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff, true);
      offset += BYTES_PER_SAMPLE;
    }
  }
  return bytes;
}

/** The most samples a WAV may hold and stay within `maxBytes`. */
export function maxSamplesFor(maxBytes) {
  return Math.max(0, Math.floor((maxBytes - WAV_HEADER_BYTES) / BYTES_PER_SAMPLE));
}

/** 65 -> "1:05". */
export function clockText(seconds) {
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** What went wrong when the microphone could not be opened, said so a person can fix it. */
export function microphoneError(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return t("Microphone access was refused. Allow the microphone for this site in your browser's settings, then try again.");
    case "NotFoundError":
    case "OverconstrainedError":
      return t("No microphone was found. Connect one and try again.");
    case "NotReadableError":
      return t("The microphone could not be started: another application may be using it.");
    default:
      return t("Recording could not start: {reason}", { reason: error?.message || String(error) });
  }
}

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

/** An audio context fed by `stream`: at the speech rate where the browser can resample the
 * microphone to it (some refuse to connect a stream to a context of another rate), else at the
 * context's own rate. */
function listen(stream) {
  try {
    const context = new AudioContext({ sampleRate: SPEECH_SAMPLE_RATE });
    try {
      return { context, source: context.createMediaStreamSource(stream) };
    } catch {
      context.close();
    }
  } catch {
    // This browser cannot make a context at that rate: its own rate it is.
  }
  const context = new AudioContext();
  return { context, source: context.createMediaStreamSource(stream) };
}

/** One recording: microphone -> worklet -> blocks of samples kept here, up to `maxSamples`. */
class Take {
  static async start(workletUrl, maxSamples, onLimit) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    let context = null;
    try {
      const heard = listen(stream);
      context = heard.context;
      await context.audioWorklet.addModule(workletUrl);
      // No outputs: the node is pulled by the graph without playing anything back.
      const node = new AudioWorkletNode(context, "capture", { numberOfOutputs: 0 });
      heard.source.connect(node);
      await context.resume();
      return new Take(stream, context, node, maxSamples, onLimit);
    } catch (error) {
      stopTracks(stream);
      context?.close();
      throw error;
    }
  }

  constructor(stream, context, node, maxSamples, onLimit) {
    this.stream = stream;
    this.context = context;
    this.node = node;
    this.maxSamples = maxSamples;
    this.onLimit = onLimit;
    this.chunks = [];
    this.length = 0;
    this.flushed = null;
    node.port.onmessage = (event) => this.receive(event.data);
  }

  get seconds() {
    return this.length / this.context.sampleRate;
  }

  receive(data) {
    if (data === "flushed") {
      this.flushed?.();
      return;
    }
    const room = this.maxSamples - this.length;
    if (room <= 0) return;
    const chunk = data.length > room ? data.subarray(0, room) : data;
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length >= this.maxSamples) this.onLimit();
  }

  /** Stops and returns the WAV of everything recorded (the worklet's last block included). */
  async finish() {
    await new Promise((resolve) => {
      this.flushed = resolve;
      setTimeout(resolve, FLUSH_TIMEOUT_MS); // a worklet that never answers loses one block
      this.node.port.postMessage("flush");
    });
    this.release();
    return encodeWav(this.chunks, this.context.sampleRate);
  }

  release() {
    stopTracks(this.stream);
    this.node.port.onmessage = null;
    this.node.disconnect();
    this.context.close();
  }
}

function fileName(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
  return `recording-${day}-${time}.wav`;
}

function sizeText(bytes) {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MB`;
}

/**
 * The microphone button and the recording bar of the composer. handlers: onRecorded(file),
 * onError(message), announce(message), focus() (the message box), refusal() (why a recording
 * may not start now, or null).
 */
export class RecorderControls {
  constructor(form, handlers, limits) {
    this.handlers = handlers;
    this.maxBytes = limits.max_attachment_bytes;
    this.maxSamples = maxSamplesFor(this.maxBytes);
    this.button = form.querySelector("#record");
    this.bar = form.querySelector("#recording");
    this.clock = form.querySelector("#recording-time");
    this.workletUrl = this.button.dataset.workletUrl;
    this.state = "idle"; // idle, starting, recording, finishing
    this.take = null;
    this.timer = null;

    form.querySelector("#recording-stop").addEventListener("click", () => this.stop());
    form.querySelector("#recording-cancel").addEventListener("click", () => this.cancel());
    // Capture phase, before the page's own Escape (which stops a streaming reply).
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || this.state === "idle" || this.state === "finishing") return;
      event.preventDefault();
      this.cancel();
    }, true);
  }

  toggle() {
    if (this.state === "idle") this.start();
    else if (this.state === "recording") this.stop();
    else if (this.state === "starting") this.cancel();
  }

  async start() {
    const refused = this.handlers.refusal();
    if (refused) {
      this.handlers.onError(refused);
      return;
    }
    this.show("starting");
    let take;
    try {
      take = await Take.start(this.workletUrl, this.maxSamples, () => this.stop(true));
    } catch (error) {
      this.show("idle");
      this.handlers.onError(microphoneError(error));
      return;
    }
    if (this.state !== "starting") {
      take.release(); // cancelled while the browser asked for permission
      return;
    }
    this.take = take;
    this.show("recording");
    this.handlers.announce(t("Recording. Press Stop to add it to your message, Escape to discard it."));
  }

  /** Ends the recording and hands its WAV to the composer. */
  async stop(reachedLimit = false) {
    if (this.state !== "recording") return;
    const take = this.take;
    this.take = null;
    this.show("finishing");
    let wav;
    try {
      wav = await take.finish();
    } catch (error) {
      const reason = error?.message || String(error);
      this.handlers.onError(t("The recording could not be finished: {reason}", { reason }));
      return;
    } finally {
      this.show("idle");
    }
    const seconds = take.seconds;
    if (reachedLimit) {
      const size = sizeText(this.maxBytes);
      this.handlers.onError(
        t("The recording reached the {size} limit for a file and was stopped there; what was recorded is attached.", { size }));
    }
    if (take.length === 0) {
      this.handlers.onError(t("Nothing was recorded: check that the microphone is on and try again."));
      return;
    }
    this.handlers.onRecorded(new File([wav], fileName(), { type: "audio/wav" }));
    this.handlers.announce(t("Recording of {time} attached.", { time: clockText(seconds) }));
  }

  /** Ends the recording and throws it away. */
  cancel() {
    if (this.state === "idle" || this.state === "finishing") return;
    this.take?.release();
    this.take = null;
    this.show("idle"); // a take still starting sees this and releases itself
    this.handlers.announce(t("Recording discarded."));
  }

  show(state) {
    // The bar's buttons vanish with it: focus goes back to the message box, not to the page.
    if (state === "idle" && this.bar.contains(document.activeElement)) this.handlers.focus();
    this.state = state;
    const active = state !== "idle";
    // A toggle button keeps its name ("Record audio"); pressed says that it records.
    this.button.setAttribute("aria-pressed", String(active));
    this.button.disabled = state === "finishing";
    this.bar.hidden = !active;
    this.bar.dataset.state = state;
    clearInterval(this.timer);
    this.timer = null;
    if (state === "recording") {
      this.tick();
      this.timer = setInterval(() => this.tick(), CLOCK_INTERVAL_MS);
    } else if (state === "starting") {
      this.clock.textContent = t("Waiting for the microphone…");
    }
  }

  tick() {
    if (!this.take) return;
    this.clock.textContent = t("Recording {time}", { time: clockText(this.take.seconds) });
  }
}
