// The composer: the draft text, its attachments (read as base64, sent as `file` parts: the
// server decides from the bytes what each is), Enter to send, and the lock that keeps the draft
// until `ack`. The microphone button records a WAV into the same attachments
// (static/chat/recorder.js, loaded at its first press).
import { t } from "./i18n.js";


const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const AUDIO_FORMATS = {
  "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
  "audio/mpeg": "mp3", "audio/mp3": "mp3",
};
const MAX_TEXTAREA_SHARE = 0.4; // of the viewport height

function audioFormat(file) {
  if (AUDIO_FORMATS[file.type]) return AUDIO_FORMATS[file.type];
  const ext = file.name.split(".").pop().toLowerCase();
  return ext === "wav" || ext === "mp3" ? ext : null;
}

// Whether a file may be text the server accepts (it checks the bytes: UTF-8, no NUL). Types
// browsers give code files vary, so any text/* type, no type at all, or a text-like one.
function mayBeText(file) {
  return !file.type || file.type.startsWith("text/")
    || /json|xml|javascript|x-sh|x-python|yaml|toml|sql|csv/.test(file.type);
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener("load", () => resolve(reader.result));
    reader.addEventListener("error", () => reject(reader.error));
    reader.readAsDataURL(file);
  });
}

/** Whether this browser can record (getUserMedia needs a secure context: https or localhost). */
function canRecord() {
  return Boolean(navigator.mediaDevices?.getUserMedia) && typeof AudioWorkletNode === "function";
}

function megabytes(bytes) {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MB`;
}

export class Composer {
  /**
   * handlers: onSubmit(), onError(message), announce(message). limits: the server's (page data
   * `limits`), so the page refuses what the server would refuse before reading or sending it.
   */
  constructor(form, handlers, limits) {
    this.form = form;
    this.handlers = handlers;
    this.limits = limits;
    this.textarea = form.querySelector("#composer");
    this.sendButton = form.querySelector("#send");
    this.fileInput = form.querySelector("#attach-input");
    this.previews = form.querySelector("#attachment-previews");
    this.status = form.querySelector("#composer-status");
    this.attachments = [];
    this.locked = false;
    this.nextKey = 1;

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.textarea.addEventListener("keydown", (event) => this.onKeydown(event));
    this.textarea.addEventListener("input", () => this.autosize());
    this.textarea.addEventListener("paste", (event) => this.onPaste(event));
    form.querySelector("#attach").addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      this.addFiles(Array.from(this.fileInput.files));
      this.fileInput.value = "";
    });
    form.addEventListener("dragover", (event) => {
      if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
    });
    form.addEventListener("drop", (event) => {
      if (!event.dataTransfer?.files.length) return;
      event.preventDefault();
      this.addFiles(Array.from(event.dataTransfer.files));
    });
    this.previews.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-key]");
      if (button && !this.locked) this.removeAttachment(Number(button.dataset.key));
    });
    this.recordButton = form.querySelector("#record");
    this.recorder = null; // a promise of the RecorderControls, from the first press on
    if (this.recordButton && canRecord()) {
      this.recordButton.hidden = false;
      this.recordButton.addEventListener("click", () => this.toggleRecording());
    }
  }

  async toggleRecording() {
    this.recorder ??= import("./recorder.js").then(({ RecorderControls }) =>
      new RecorderControls(this.form, {
        onRecorded: (file) => {
          this.setStatus("");
          this.addFiles([file]);
        },
        onError: this.handlers.onError,
        announce: this.handlers.announce,
        focus: () => this.focus(),
        refusal: () => this.recordingRefusal(),
      }, this.limits));
    let recorder;
    try {
      recorder = await this.recorder;
    } catch {
      this.recorder = null; // offline or mid-deploy: tried again at the next press
      this.handlers.onError(t("The recorder could not be loaded. Check the connection and try again."));
      return;
    }
    recorder.toggle();
  }

  /** Why a recording may not start now (it would have nowhere to go), or null. */
  recordingRefusal() {
    if (this.locked) return t("Wait until the message is sent to record another.");
    if (this.attachments.length >= this.limits.max_attachments) {
      return t("At most {count} attachments per message.", { count: this.limits.max_attachments });
    }
    return null;
  }

  get recording() {
    return this.recordButton?.getAttribute("aria-pressed") === "true";
  }

  onKeydown(event) {
    // While an IME composes (Japanese, Chinese...), Enter confirms the candidate: never send.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    this.submit();
  }

  submit() {
    if (this.locked) return;
    if (this.recording) {
      // The recording is not in the draft yet: sending now would leave it behind.
      this.setStatus(t("Stop the recording first (or press Escape to discard it), then send."));
      return;
    }
    this.handlers.onSubmit();
  }

  get text() {
    return this.textarea.value;
  }

  isEmpty() {
    return !this.textarea.value.trim() && this.attachments.length === 0;
  }

  /** The attachments as protocol content parts. */
  parts() {
    return this.attachments.map((a) => a.part);
  }

  focus() {
    this.textarea.focus();
  }

  /** While a send waits for its `ack` the draft stays, read-only, so nothing typed is lost. */
  lock(message) {
    this.locked = true;
    this.textarea.readOnly = true;
    this.sendButton.disabled = true;
    if (this.recordButton) this.recordButton.disabled = true;
    this.form.classList.add("is-sending");
    this.setStatus(message);
  }

  unlock() {
    this.locked = false;
    this.textarea.readOnly = false;
    this.sendButton.disabled = false;
    if (this.recordButton) this.recordButton.disabled = false;
    this.form.classList.remove("is-sending");
    this.setStatus("");
  }

  setStatus(message) {
    this.status.textContent = message || "";
  }

  /** The message was stored (`ack`): the draft is done with. */
  clear() {
    this.textarea.value = "";
    this.attachments = [];
    this.renderPreviews();
    this.autosize();
    this.unlock();
  }

  autosize() {
    const t = this.textarea;
    t.style.height = "auto";
    const max = Math.max(120, window.innerHeight * MAX_TEXTAREA_SHARE);
    t.style.height = `${Math.min(t.scrollHeight + 2, max)}px`;
    t.style.overflowY = t.scrollHeight + 2 > max ? "auto" : "hidden";
  }

  onPaste(event) {
    const files = Array.from(event.clipboardData?.files || []);
    if (!files.length) return;
    event.preventDefault();
    this.addFiles(files);
  }

  async addFiles(files) {
    if (this.locked) return;
    for (const file of files) {
      if (this.attachments.length >= this.limits.max_attachments) {
        this.handlers.onError(t("At most {count} attachments per message.",
                                { count: this.limits.max_attachments }));
        return;
      }
      const isImage = IMAGE_TYPES.has(file.type);
      const format = isImage ? null : audioFormat(file);
      if (!isImage && !format && !mayBeText(file)) {
        this.handlers.onError(t("{name}: only PNG, JPEG, GIF and WebP images, WAV or MP3 audio and text or code files can be attached.",
                                { name: file.name }));
        continue;
      }
      if (file.size > this.limits.max_attachment_bytes) {
        this.handlers.onError(
          t("{name} is larger than {size}.",
            { name: file.name, size: megabytes(this.limits.max_attachment_bytes) }));
        continue;
      }
      let url;
      try {
        url = await readAsDataUrl(file);
      } catch {
        this.handlers.onError(t("{name} could not be read.", { name: file.name }));
        continue;
      }
      const part = { type: "file", file: { name: file.name, data: url.slice(url.indexOf(",") + 1) } };
      this.attachments.push({ key: this.nextKey++, name: file.name, url, isImage, format, part });
    }
    this.renderPreviews();
  }

  removeAttachment(key) {
    this.attachments = this.attachments.filter((a) => a.key !== key);
    this.renderPreviews();
    this.focus();
  }

  renderPreviews() {
    const items = this.attachments.map((a) => {
      const item = document.createElement("div");
      item.className = "attachment-preview";
      if (a.isImage) {
        const img = document.createElement("img");
        img.src = a.url;
        img.alt = a.name;
        item.append(img);
      } else {
        const label = document.createElement("span");
        label.className = "attachment-file";
        label.textContent = `${a.format ? "♪" : "📄"} ${a.name}`;
        item.append(label);
      }
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove-attachment";
      remove.dataset.key = String(a.key);
      remove.setAttribute("aria-label", t("Remove {name}", { name: a.name }));
      remove.textContent = "×";
      item.append(remove);
      return item;
    });
    this.previews.replaceChildren(...items);
    this.previews.hidden = items.length === 0;
  }
}
