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

  // --- labels: one language at a time, following the picker ------------------------------
  const I18N = {
    zh: {
      title: "直播间", language: "语言", aiLabel: "回答由AI生成", ai: "AI生成", typing: "主播助手正在输入…",
      photo: "发图片提问", placeholder: "发弹幕提问…", send: "发送", ptt: "按住说话", pttTitle: "按住说话（或按空格键）",
      stop: "打断", stopTitle: "打断回答", half: "播报时静音麦克风", halfTitle: "播报时麦克风静音：不戴耳机也不会回声，但不能插话",
      handsOn: "免提：开", handsOff: "免提：关", via_text: "文字", via_voice: "语音", via_spoken: "播报", via_photo: "图片",
      cut: "已打断", welcome: "欢迎来到直播间：打字、发图片或按住说话提问（回答由AI生成）。",
      photoAsk: "这个有吗？", photoFail: "图片上传失败", stock: (n) => (n > 0 ? `库存 ${n} 件` : "已售罄"),
      price: (x) => `¥${x}`, mic: "麦克风",
      st: { idle: "语音：未开启", connecting: "语音：连接中…", ready: "语音：就绪，按住说话", listening: "语音：免提收听中",
        speaking: "语音：播报中", paused: "语音：暂停（在听）", disconnected: "语音：已断开", last: "上一轮：说完到出声" },
    },
    en: {
      title: "Live room", language: "Language", aiLabel: "Answers are AI-generated", ai: "AI-generated", typing: "The assistant is typing…",
      photo: "Ask with a photo", placeholder: "Ask a question…", send: "Send", ptt: "Hold to talk", pttTitle: "Hold to talk (or hold Space)",
      stop: "Stop", stopTitle: "Stop the answer", half: "Mute mic while the bot speaks", halfTitle: "The mic is muted while the bot speaks: safe without headphones, but you can't talk over it",
      handsOn: "Hands-free: on", handsOff: "Hands-free: off", via_text: "text", via_voice: "voice", via_spoken: "spoken", via_photo: "photo",
      cut: "interrupted", welcome: "Welcome: type, send a photo or hold the mic button to ask — answers are AI-generated.",
      photoAsk: "Do you have this?", photoFail: "Photo upload failed", stock: (n) => (n > 0 ? `${n} in stock` : "Sold out"),
      price: (x) => `¥${x}`, mic: "microphone",
      st: { idle: "voice: off", connecting: "voice: connecting…", ready: "voice: ready — hold to talk", listening: "voice: listening (hands-free)",
        speaking: "voice: speaking", paused: "voice: paused (listening)", disconnected: "voice: disconnected", last: "last turn: end of speech → first audio" },
    },
  };
  const T = () => I18N[langSel.value] || I18N.zh;
  function applyLabels() {
    const t = T();
    document.documentElement.lang = langSel.value;
    document.title = `LiveRoom · ${t.title} · ${roomId}`;
    for (const n of document.querySelectorAll("[data-i18n]")) n.textContent = t[n.dataset.i18n];
    for (const n of document.querySelectorAll("[data-i18n-title]")) n.title = t[n.dataset.i18nTitle];
    for (const n of document.querySelectorAll("[data-i18n-placeholder]")) n.placeholder = t[n.dataset.i18nPlaceholder];
    for (const n of document.querySelectorAll(".msg.bot")) n.dataset.ai = t.ai;
    for (const n of document.querySelectorAll(".msg.interrupted")) n.dataset.cut = t.cut;
    for (const n of document.querySelectorAll(".via[data-via]")) n.textContent = t["via_" + n.dataset.via];
    $("handsfree-label").textContent = handsFree ? t.handsOn : t.handsOff;
    if (stats.state) status(stats.state);
    if (card) showCard(card);
  }
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
    if (kind === "bot") div.dataset.ai = T().ai;
    if (via) { const s = document.createElement("span"); s.className = "via"; s.dataset.via = via; s.textContent = T()["via_" + via]; div.appendChild(s); }
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
  // The voice state, as a key of I18N.*.st (stats.state keeps the key for tests and debugging).
  const status = (s) => { stats.state = s; $("status").textContent = T().st[s] || s; };

  // --- typing indicator: from the question until the first words of the answer -------------
  const waiting = new Set();
  function typing(id, on) {
    if (on) waiting.add(id); else if (id === null) waiting.clear(); else waiting.delete(id);
    $("typing").classList.toggle("hidden", waiting.size === 0);
    if (waiting.size) $("log").appendChild($("typing"));  // stays the last line of the log
    $("log").scrollTop = $("log").scrollHeight;
  }

  // --- product card: the product the last answer was about (name, live price, stock) --------
  let card = null;
  const apiQ = () => { const p = new URLSearchParams(); if (merchant) p.set("merchant", merchant); const s = p.toString(); return s ? "?" + s : ""; };
  function showCard(c) {
    card = c;
    const t = T();
    $("card-name").textContent = c.name;
    $("card-price").textContent = t.price(c.price);
    $("card-list").textContent = c.list_price && c.list_price > c.price ? t.price(c.list_price) : "";
    const st = $("card-stock");
    st.textContent = c.stock === null || c.stock === undefined ? "" : t.stock(c.stock);
    st.classList.toggle("out", c.stock === 0);
    $("product-card").dataset.sku = c.sku;
    $("product-card").classList.remove("hidden");
  }
  async function cardFor(answer) {
    const skus = (answer.citations || []).map((x) => x.sku).filter(Boolean);
    if (!skus.length) return;
    const counts = {};
    for (const k of skus) counts[k] = (counts[k] || 0) + 1;
    const sku = Object.keys(counts).sort((a, b) => counts[b] - counts[a] || skus.indexOf(a) - skus.indexOf(b))[0];
    try {
      const r = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/products/${encodeURIComponent(sku)}${apiQ()}`, {credentials: "same-origin"});
      if (r.ok) showCard(await r.json());
    } catch (err) { stats.errors.push({code: "card", message: String(err)}); }
  }

  // --- text chat --------------------------------------------------------------------------
  let textWs = null, textQueue = [];
  function connectText() {
    textWs = new WebSocket(wsBase + "/ws/rooms/" + encodeURIComponent(roomId) + "?" + mq({}));
    textWs.onopen = () => { for (const m of textQueue) textWs.send(m); textQueue = []; };
    textWs.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === "answer.delta") { typing(m.id, false); botText("t-" + m.id, m.text, "text"); }
      else if (m.type === "answer.done") { typing(m.id, false); botText("t-" + m.id, m.answer, "text", true); stats.answers.push(m.answer); cardFor(m); }
      else if (m.type === "error") { typing(m.id || null, false); addMsg("error", m.message); stats.errors.push(m); }
    };
    textWs.onclose = () => { textWs = null; };
  }
  let seq = 0;
  function ask(text, imageId) {
    const id = "c" + Date.now() + "-" + (seq++);
    const body = {type: "ask", id, viewer_id: viewerId, text, lang: langSel.value};
    if (imageId) body.image_id = imageId;
    const msg = JSON.stringify(body);
    typing(id, true);
    if (textWs && textWs.readyState === 1) textWs.send(msg); else { textQueue.push(msg); if (!textWs) connectText(); }
  }
  $("chat").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    addMsg("viewer", text, "text");
    ask(text);
  });

  // --- a picture: uploaded to the room (POST /api/rooms/{room}/images), then asked about ----
  $("photo").addEventListener("click", () => $("photo-input").click());
  $("photo-input").addEventListener("change", async () => {
    const file = $("photo-input").files[0];
    $("photo-input").value = "";
    if (!file) return;
    const text = $("text").value.trim() || T().photoAsk;
    $("text").value = "";
    const bubble = addMsg("viewer", text, "photo");
    const reader = new FileReader();  // a data: URL (the page's CSP allows data: images, not blob:)
    reader.onload = () => { const img = document.createElement("img"); img.className = "shot"; img.alt = ""; img.src = reader.result; bubble.appendChild(img); };
    reader.readAsDataURL(file);
    const p = new URLSearchParams({text});
    if (merchant) p.set("merchant", merchant);
    if (viewerToken) p.set("token", viewerToken);
    try {
      const r = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/images?${p}`, {method: "POST", body: file,
        headers: {"Content-Type": file.type || "application/octet-stream"}, credentials: "same-origin"});
      const d = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error((d.detail && (d.detail.message || d.detail)) || r.status);
      stats.images = (stats.images || 0) + 1;
      ask(text, d.image_id);
    } catch (err) { stats.errors.push({code: "image", message: String(err)}); addMsg("error", `${T().photoFail}: ${err.message || err}`); }
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
    status("connecting");
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
          status(handsFree ? "listening" : "ready");
          break;
        case "transcript":
          if (m.final) { stats.transcripts.push(m.text); addMsg("viewer", m.text, m.source === "text" ? "text" : "voice"); typing("voice", true); }
          break;
        case "transcript.ignored": addMsg("system", `(${m.reason}: ${m.text})`); break;
        case "answer": typing("voice", false); botText("v-" + m.id, m.text, "spoken"); break;
        case "answer.done": typing("voice", false); botText("v-" + m.id, m.answer, "spoken", true); stats.answers.push(m.answer); cardFor(m); break;
        case "answer.interrupted": if (bubbles["v-" + m.id]) { bubbles["v-" + m.id].classList.add("interrupted"); bubbles["v-" + m.id].dataset.cut = T().cut; } break;
        case "interruption": if (player) player.port.postMessage({type: "flush"}); break;
        case "bot.paused": if (player) player.port.postMessage({type: "pause"}); status("paused"); break;
        case "bot.resumed": if (player) player.port.postMessage({type: "resume"}); status("speaking"); break;
        case "bot.started_speaking": botSpeaking = true; status("speaking"); break;
        case "bot.stopped_speaking": botSpeaking = false; status(handsFree ? "listening" : "ready"); break;
        case "turn.metrics":
          stats.metrics.push(m);
          $("status").textContent += ` · ${T().st.last} ${Math.round(m.eos_to_first_audio_ms)} ms` +
            ` (STT ${Math.round(m.stt_ms)} ms, agent ${Math.round(m.agent_first_sentence_ms)} ms, TTS ${Math.round(m.tts_first_byte_ms)} ms)`;
          break;
        case "error": typing("voice", false); stats.errors.push(m); addMsg("error", m.code + ": " + m.message); break;
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
    })().catch((err) => { ctx = null; starting = null; stats.errors.push({code: "mic", message: String(err)}); addMsg("error", T().mic + ": " + err); });
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
    $("handsfree-label").textContent = handsFree ? T().handsOn : T().handsOff;
    await startVoice();
    if (ready) status(handsFree ? "listening" : "ready");
  });
  $("stop").addEventListener("click", interruptBot);
  const reconnect = () => { pending = []; if (voiceWs) { const old = voiceWs; voiceWs = null; old.close(); } if (ctx) connectVoice(); };
  langSel.addEventListener("change", () => { applyLabels(); reconnect(); });
  $("halfduplex").addEventListener("change", reconnect);

  connectText();
  status("idle");
  applyLabels();
  const welcome = addMsg("system", T().welcome);
  welcome.dataset.i18n = "welcome";
})();
