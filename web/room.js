// LiveRoom live-room page: text chat (/ws/rooms/{room}) and voice (/ws/rooms/{room}/voice).
// Voice protocol: docs/voice.md. Mic audio goes out as 20 ms PCM s16le 16 kHz frames; the bot's
// audio comes back the same way and is played by an AudioWorklet that can flush (interruption),
// pause and resume (tentative barge-in).
(() => {
  "use strict";
  const q = new URLSearchParams(location.search);
  const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "default");
  const merchant = q.get("merchant") || "";
  const $ = (id) => document.getElementById(id);
  const langSel = $("lang");
  langSel.value = q.get("lang") === "en" ? "en" : (q.get("lang") === "zh" ? "zh" : (navigator.language || "zh").startsWith("zh") ? "zh" : "en");
  let viewerId = q.get("viewer_id") || localStorage.getItem("liveroom.viewer");
  if (!viewerId) { viewerId = "web-" + Math.random().toString(36).slice(2, 10); localStorage.setItem("liveroom.viewer", viewerId); }
  $("room-name").textContent = "· " + roomId;
  $("halfduplex").checked = q.get("duplex") === "half";

  // What the page saw, for people debugging and for the browser test.
  const stats = window.liveroom = {
    audioBytesIn: 0, audioChunksIn: 0, played: 0, micChunksOut: 0, micChunksQueued: 0, micChunksDropped: 0,
    micPeak: 0, state: "idle",
    events: [], transcripts: [], answers: [], errors: [], metrics: [],
  };
  const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  // A logged-in viewer: the embedding site passes the viewer token its backend minted (docs/integration.md);
  // without one the server treats the page as an anonymous viewer (viewer_id is only a hint it ignores).
  const viewerToken = q.get("token") || "";
  const mq = (extra) => {
    const p = new URLSearchParams({viewer_id: viewerId, ...extra});
    if (merchant) p.set("merchant", merchant);
    if (viewerToken) p.set("token", viewerToken);
    return p.toString();
  };

  // --- chat log ---------------------------------------------------------------------------
  const bubbles = {};
  function addMsg(kind, text, via) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    if (via) { const s = document.createElement("span"); s.className = "via"; s.textContent = via; div.appendChild(s); }
    div.appendChild(document.createTextNode(text));
    $("log").appendChild(div);
    $("log").scrollTop = $("log").scrollHeight;
    return div;
  }
  function botText(id, text, via, replace) {
    let b = bubbles[id];
    if (!b) { b = bubbles[id] = addMsg("bot", "", via); b.dataset.text = ""; }
    b.dataset.text = replace ? text : b.dataset.text + text;
    b.lastChild.textContent = b.dataset.text;
    $("log").scrollTop = $("log").scrollHeight;
    return b;
  }
  const status = (s) => { stats.state = s; $("status").textContent = "voice: " + s; };

  // --- text chat --------------------------------------------------------------------------
  let textWs = null, textQueue = [];
  function connectText() {
    textWs = new WebSocket(wsBase + "/ws/rooms/" + encodeURIComponent(roomId) + "?" + mq({}));
    textWs.onopen = () => { for (const m of textQueue) textWs.send(m); textQueue = []; };
    textWs.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "answer.delta") botText("t-" + m.id, m.text, "💬");
      else if (m.type === "answer.done") { botText("t-" + m.id, m.answer, "💬", true); stats.answers.push(m.answer); }
      else if (m.type === "error") { addMsg("error", m.message); stats.errors.push(m); }
    };
    textWs.onclose = () => { textWs = null; };
  }
  $("chat").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    addMsg("viewer", text, "💬");
    const msg = JSON.stringify({type: "ask", id: "c" + Date.now(), viewer_id: viewerId, text, lang: langSel.value});
    if (textWs && textWs.readyState === 1) textWs.send(msg); else { textQueue.push(msg); if (!textWs) connectText(); }
  });

  // --- voice ------------------------------------------------------------------------------
  let ctx = null, player = null, voiceWs = null, ready = false, starting = null;
  let handsFree = false, pttDown = false, botSpeaking = false, playing = false;
  const ZERO = new Int16Array(320).buffer;
  const botAudible = () => botSpeaking || playing;
  const halfDuplex = () => $("halfduplex").checked;

  function micOpen() {
    if (halfDuplex() && botAudible()) return false;  // echo-safe mode: the bot can't hear itself
    return handsFree || pttDown;
  }
  // Audio captured before the socket is ready (it connects while the mic opens, and a busy server may
  // take seconds to say "ready") is kept, not dropped: a viewer who starts talking at once would
  // otherwise lose the first words. Up to PENDING_MAX chunks (the newest), sent in order on "ready".
  const PENDING_MAX = 500;  // 10 s of 20 ms chunks
  let pending = [];
  function sendMic(buf) {
    voiceWs.send(buf);
    stats.micChunksOut++;
  }
  function flushPending() {
    // In order, as the 20 ms frames they were (the server's VAD and STT see what a live mic sends).
    for (const b of pending) sendMic(b);
    stats.micChunksQueued += pending.length;
    pending = [];
  }
  function onMic(buf) {
    // Silence (not nothing) when the mic is closed: the server's VAD sees the end of speech at once.
    const open = micOpen();
    if (open) { const a = new Int16Array(buf); let p = 0; for (let i = 0; i < a.length; i += 4) p = Math.max(p, Math.abs(a[i])); stats.micPeak = Math.max(stats.micPeak, p); }
    const chunk = open ? buf : ZERO.slice(0);
    if (!voiceWs) return;  // disconnected: nothing to keep
    if (voiceWs.readyState !== 1 || !ready) {  // connecting: keep it for "ready"
      pending.push(chunk);
      if (pending.length > PENDING_MAX) { pending.shift(); stats.micChunksDropped++; }
      return;
    }
    if (pending.length) flushPending();
    sendMic(chunk);
  }

  function connectVoice() {
    ready = false;
    const duplex = halfDuplex() ? "half" : "full";
    const ws = voiceWs = new WebSocket(wsBase + "/ws/rooms/" + encodeURIComponent(roomId) + "/voice?" +
                                       mq({lang: langSel.value, duplex}));
    ws.binaryType = "arraybuffer";
    status("connecting…");
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") {
        stats.audioBytesIn += e.data.byteLength; stats.audioChunksIn++;
        if (player) player.port.postMessage({type: "audio", buffer: e.data}, [e.data]);
        return;
      }
      const m = JSON.parse(e.data);
      stats.events.push(m.type);
      switch (m.type) {
        case "ready":
          ready = true;
          ws.send(JSON.stringify({type: "start", sample_rate: 16000, encoding: "pcm_s16le", channels: 1}));
          if (pending.length) flushPending();
          status(handsFree ? "listening (hands-free)" : "ready — hold to talk");
          break;
        case "transcript":
          if (m.final) { stats.transcripts.push(m.text); addMsg("viewer", m.text, m.source === "text" ? "💬" : "🎤"); }
          break;
        case "transcript.ignored": addMsg("system", `(${m.reason}: ${m.text})`); break;
        case "answer": botText("v-" + m.id, m.text, "🔊"); break;
        case "answer.done": botText("v-" + m.id, m.answer, "🔊", true); stats.answers.push(m.answer); break;
        case "answer.interrupted": if (bubbles["v-" + m.id]) bubbles["v-" + m.id].classList.add("interrupted"); break;
        case "interruption": if (player) player.port.postMessage({type: "flush"}); break;
        case "bot.paused": if (player) player.port.postMessage({type: "pause"}); status("paused (listening)"); break;
        case "bot.resumed": if (player) player.port.postMessage({type: "resume"}); status("speaking"); break;
        case "bot.started_speaking": botSpeaking = true; status("speaking"); break;
        case "bot.stopped_speaking": botSpeaking = false; status(handsFree ? "listening (hands-free)" : "ready"); break;
        case "turn.metrics":
          stats.metrics.push(m);
          $("status").textContent += ` · last turn: end of speech → first audio ${Math.round(m.eos_to_first_audio_ms)} ms` +
            ` (STT ${Math.round(m.stt_ms)} ms, agent ${Math.round(m.agent_first_sentence_ms)} ms, TTS ${Math.round(m.tts_first_byte_ms)} ms)`;
          break;
        case "error": stats.errors.push(m); addMsg("error", m.code + ": " + m.message); break;
      }
    };
    ws.onclose = () => { if (voiceWs === ws) { voiceWs = null; ready = false; pending = []; status("disconnected"); } };
  }

  async function startVoice() {
    if (ctx) return;
    if (starting) return starting;
    starting = (async () => {
      ctx = new AudioContext({sampleRate: 16000});
      connectVoice();  // in parallel with opening the mic; audio captured before "ready" is queued
      await ctx.audioWorklet.addModule("/static/voice/audio-worklets.js");
      player = new AudioWorkletNode(ctx, "liveroom-player", {numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1]});
      player.connect(ctx.destination);
      player.port.onmessage = (e) => { stats.played = e.data.played; playing = e.data.playing; };
      const stream = await navigator.mediaDevices.getUserMedia({audio: {
        echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1}});
      const src = ctx.createMediaStreamSource(stream);
      const capture = new AudioWorkletNode(ctx, "liveroom-capture", {numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1]});
      capture.port.onmessage = (e) => onMic(e.data);
      const sink = ctx.createGain(); sink.gain.value = 0;  // keeps the capture node pulled, silently
      src.connect(capture); capture.connect(sink); sink.connect(ctx.destination);
      await ctx.resume();
    })().catch((err) => { ctx = null; starting = null; stats.errors.push({code: "mic", message: String(err)}); addMsg("error", "microphone: " + err); });
    return starting;
  }

  function interruptBot() {
    if (voiceWs && voiceWs.readyState === 1) voiceWs.send(JSON.stringify({type: "interrupt"}));
    if (player) player.port.postMessage({type: "flush"});
  }

  const ptt = $("ptt");
  const pttStart = async (ev) => {
    ev.preventDefault();
    pttDown = true; ptt.classList.add("active");
    await startVoice();
    if (botAudible()) interruptBot();  // pressing to talk is an explicit barge-in
  };
  const pttEnd = () => { pttDown = false; ptt.classList.remove("active"); };
  ptt.addEventListener("pointerdown", pttStart);
  ptt.addEventListener("pointerup", pttEnd);
  ptt.addEventListener("pointerleave", pttEnd);
  document.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target === document.body && !pttDown) pttStart(e); });
  document.addEventListener("keyup", (e) => { if (e.code === "Space" && e.target === document.body) pttEnd(); });

  $("handsfree").addEventListener("click", async () => {
    handsFree = !handsFree;
    $("handsfree").setAttribute("aria-pressed", String(handsFree));
    $("handsfree").textContent = "免提 Hands-free: " + (handsFree ? "on" : "off");
    await startVoice();
    if (ready) status(handsFree ? "listening (hands-free)" : "ready — hold to talk");
  });
  $("stop").addEventListener("click", interruptBot);
  const reconnect = () => { pending = []; if (voiceWs) { const old = voiceWs; voiceWs = null; old.close(); } if (ctx) connectVoice(); };
  langSel.addEventListener("change", reconnect);
  $("halfduplex").addEventListener("change", reconnect);

  connectText();
  addMsg("system", "欢迎来到直播间：打字或按住说话提问（回答由AI生成）。 Type, or hold the mic button to ask — answers are AI-generated.");
})();
