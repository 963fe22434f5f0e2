// LiveRoom OBS overlay: answers (AI-generated label), the virtual host's caption and voice, hot questions.
// Reconnects by itself (backoff up to 10 s), so it survives the server restarting; the token is the
// page's own ?token= (room-scoped, from the console). Text is always set with textContent (never HTML).
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const prompter = params.get("view") === "prompter";  // the human host's teleprompter
  if (prompter) document.body.classList.add("prompter");
  const room = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const $ = (id) => document.getElementById(id);
  const stats = { frames: 0, answers: 0, captions: 0, audioBytesReceived: 0, audioBytesPlayed: 0, reconnects: 0,
                  connected: false, lastAnswerAt: 0, errors: [] };
  window.liveroomOverlay = stats;  // read by tests and by anyone debugging a scene
  const MAX_ANSWERS = 3;
  let backoff = 500;
  let ws = null;
  let audio = null;
  let playHead = 0;
  let pendingAudio = null;  // the header of the next binary frame

  function show(el, on) { el.classList.toggle("hidden", !on); }

  function status(text) {
    const s = $("status");
    s.textContent = text || "";
    show(s, !!text);
    $("overlay").dataset.state = text ? "disconnected" : "connected";
  }

  function addAnswer(a) {
    stats.answers += 1;
    stats.lastAnswerAt = performance.now();
    stats.lastAnswerWall = Date.now();
    const list = $("answers");
    const last = list.lastElementChild;
    if (last && last.dataset.answer === (a.answer || "") && last.dataset.question === (a.question || "")) {
      last.dataset.times = String(Number(last.dataset.times || "1") + 1);  // many asked the same: one card
      stats.lastAnswer = a.answer || "";
      return;
    }
    const box = document.createElement("article");
    box.dataset.answer = a.answer || "";
    box.dataset.question = a.question || "";
    box.className = "card answer";
    const q = document.createElement("p");
    q.className = "q";
    q.textContent = a.question || "";
    const p = document.createElement("p");
    p.className = "a";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = a.label || "AI生成";
    p.append(label, document.createTextNode(a.answer || ""));
    box.append(q, p);
    list.append(box);
    while (list.children.length > MAX_ANSWERS) list.firstElementChild.remove();
    stats.lastAnswer = a.answer || "";
  }

  function caption(c) {
    $("caption-text").textContent = c.text || "";
    show($("caption"), !!c.text);
    stats.captions += 1;
    stats.lastCaption = c.text || "";
  }

  function hot(h) {
    const ol = $("hot-list");
    ol.replaceChildren();
    for (const q of h.questions || []) {
      const li = document.createElement("li");
      li.textContent = `${q.label}（${q.viewers}人）`;
      ol.append(li);
    }
    show($("hot"), (h.questions || []).length > 0);
  }

  function suggestion(sg) {
    if (!prompter) return;
    $("prompter-say").textContent = sg.say || sg.label || "";
    $("prompter-why").textContent = sg.message || "";
    show($("prompter"), true);
    stats.suggestions = (stats.suggestions || 0) + 1;
  }

  function event(e) {
    const t = $("ticker");
    const what = { gift: "送出礼物", follow: "关注了主播", fan_club: "加入粉丝团" }[e.kind] || e.kind;
    t.textContent = `感谢 ${e.nickname || "观众"} ${what}${e.count > 1 ? " ×" + e.count : ""}`;
    show(t, true);
  }

  function ensureAudio() {
    if (audio) return audio;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audio = new Ctx();
    return audio;
  }

  function playPcm(buf, rate) {
    const ctx = ensureAudio();
    if (!ctx) return;
    if (ctx.state === "suspended") ctx.resume();
    const pcm = new Int16Array(buf);
    const b = ctx.createBuffer(1, pcm.length, rate);
    const ch = b.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const src = ctx.createBufferSource();
    src.buffer = b;
    src.connect(ctx.destination);
    const at = Math.max(ctx.currentTime, playHead);
    src.onended = () => { stats.audioBytesPlayed += buf.byteLength; };
    src.start(at);
    playHead = at + b.duration;
  }

  function onFrame(msg) {
    stats.frames += 1;
    if (msg.type === "answer") addAnswer(msg);
    else if (msg.type === "caption") caption(msg);
    else if (msg.type === "hot") hot(msg);
    else if (msg.type === "event") event(msg);
    else if (msg.type === "suggestion") suggestion(msg);
    else if (msg.type === "audio") pendingAudio = msg;
    else if (msg.type === "ready") for (const a of msg.recent || []) addAnswer(a);
    else if (msg.type === "error") { stats.errors.push(msg.code); status(msg.message || msg.code); }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws/overlay/${encodeURIComponent(room)}?token=${encodeURIComponent(token)}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { stats.connected = true; backoff = 500; status(""); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        try { onFrame(JSON.parse(ev.data)); } catch (e) { stats.errors.push("bad_frame"); }
      } else if (pendingAudio) {
        stats.audioBytesReceived += ev.data.byteLength;
        playPcm(ev.data, pendingAudio.rate);
        pendingAudio = null;
      }
    };
    ws.onclose = (ev) => {
      stats.connected = false;
      stats.reconnects += 1;
      status(ev.code === 1008 ? "叠加层令牌无效，请在控制台重新生成" : "重新连接中…");
      const wait = ev.code === 1008 ? 10000 : backoff;
      backoff = Math.min(10000, backoff * 2);
      setTimeout(connect, wait);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  setInterval(() => { if (ws && ws.readyState === 1) ws.send('{"type":"ping"}'); }, 15000);
  connect();
})();
