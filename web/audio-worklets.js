// AudioWorklet processors for the LiveRoom voice client (the AudioContext runs at 16 kHz).
//
// "liveroom-capture": microphone → Int16 PCM chunks of 320 samples (20 ms), posted to the page.
// "liveroom-player":  Int16 PCM from the server → speakers, with flush (barge-in), pause/resume
//                     (tentative barge-in) and progress reports.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.chunk = new Int16Array(320);
    this.fill = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (input && input[0]) {
      const ch = input[0];
      for (let i = 0; i < ch.length; i++) {
        const s = Math.max(-1, Math.min(1, ch[i]));
        this.chunk[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        if (this.fill === this.chunk.length) {
          this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
          this.chunk = new Int16Array(320);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}

class PlayerProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];   // Int16Array chunks
    this.offset = 0;   // read position in queue[0]
    this.queued = 0;   // samples waiting
    this.paused = false;
    this.played = 0;
    this.playing = false;
    this.sinceReport = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "audio") {
        const a = new Int16Array(m.buffer);
        this.queue.push(a);
        this.queued += a.length;
      } else if (m.type === "flush") {
        this.queue = []; this.offset = 0; this.queued = 0; this.paused = false;
        this.report(true);
      } else if (m.type === "pause") {
        this.paused = true;
      } else if (m.type === "resume") {
        this.paused = false;
      }
    };
  }
  report(force) {
    if (force || this.sinceReport >= 1600) {
      this.port.postMessage({type: "progress", played: this.played, queued: this.queued, playing: this.playing});
      this.sinceReport = 0;
    }
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    if (!this.paused) {
      while (i < out.length && this.queue.length) {
        const head = this.queue[0];
        const n = Math.min(out.length - i, head.length - this.offset);
        for (let k = 0; k < n; k++) out[i + k] = head[this.offset + k] / 32768;
        i += n; this.offset += n; this.queued -= n; this.played += n; this.sinceReport += n;
        if (this.offset >= head.length) { this.queue.shift(); this.offset = 0; }
      }
    }
    for (; i < out.length; i++) out[i] = 0;
    const playing = this.queued > 0;
    if (playing !== this.playing) { this.playing = playing; this.report(true); } else { this.report(false); }
    return true;
  }
}

registerProcessor("liveroom-capture", CaptureProcessor);
registerProcessor("liveroom-player", PlayerProcessor);
