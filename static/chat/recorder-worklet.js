// Runs on the audio thread (an AudioWorklet module, loaded by static/chat/recorder.js): hands the
// microphone's samples, mixed down to mono, to the page in blocks. One message per 128-frame
// render quantum would be hundreds a second; a block of BLOCK frames is a few.

const BLOCK = 4096;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
    // "flush": the page stops; send what is left, then say so (a port keeps messages in order,
    // so "flushed" arrives after the last samples).
    this.port.onmessage = (event) => {
      if (event.data !== "flush") return;
      this.post();
      this.port.postMessage("flushed");
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      this.block[this.filled++] = sum / channels.length;
      if (this.filled === BLOCK) this.post();
    }
    return true;
  }

  post() {
    if (this.filled === 0) return;
    const samples = this.block.slice(0, this.filled);
    this.port.postMessage(samples, [samples.buffer]);
    this.filled = 0;
  }
}

registerProcessor("capture", CaptureProcessor);
