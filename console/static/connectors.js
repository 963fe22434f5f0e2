// The room dashboard's "平台连接" card: every connector of this room with its health (connected / lagging /
// failing / stopped, events/s, last event age, reconnects and backoff, dead letters, refused forgeries),
// an alert banner when one goes quiet or fails, dead letters (viewable, replayable) and the OBS overlay URL.
// Data from /api/merchants/{m}/connectors (connectors/api.py), refreshed every 2 s. Text only (textContent).
(function () {
  "use strict";
  const card = document.getElementById("connectors");
  if (!card) return;
  const merchant = document.body.dataset.merchant;
  const room = document.body.dataset.room;
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const canWrite = document.body.dataset.canWrite === "1";
  const STATE = { connected: ["on", "正常"], lagging: ["warn", "延迟/无消息"], failing: ["bad", "异常"], stopped: ["", "已停止"] };
  const base = `/api/merchants/${encodeURIComponent(merchant)}`;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  async function call(path, method = "GET", json) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") { headers["X-CSRF-Token"] = csrf; headers["Content-Type"] = "application/json"; }
    const r = await fetch(path, { method, headers, credentials: "same-origin", body: json ? JSON.stringify(json) : undefined });
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new Error((data && data.error && data.error.message) || (data && data.detail) || `请求失败（${r.status}）`);
    return data;
  }

  function age(s) { return s === null || s === undefined ? "—" : s < 60 ? `${Math.round(s)} 秒前` : `${Math.round(s / 60)} 分钟前`; }

  async function showDead(id) {
    const box = document.getElementById("connectors-dead");
    box.replaceChildren(el("h3", `死信 · ${id}`));
    const d = await call(`${base}/connectors/${encodeURIComponent(id)}/dead-letters?limit=50`);
    if (!d.dead_letters.length) box.append(el("p", "没有死信", "muted"));
    for (const x of d.dead_letters) {
      const row = el("div", null, "alert" + (x.replayed ? " ok" : " warn"));
      row.dataset.dl = x.dl_id;
      row.append(el("b", x.reason + (x.replayed ? "（已重放）" : "")), el("br"), el("code", x.raw.slice(0, 300)));
      if (canWrite && !x.replayed) {
        const b = el("button", "重放");
        b.type = "button";
        b.addEventListener("click", async () => {
          try { await call(`${base}/connectors/${encodeURIComponent(id)}/dead-letters/${x.dl_id}/replay`, "POST", {}); showDead(id); }
          catch (e) { b.textContent = `仍无法解析：${e.message}`.slice(0, 80); }
        });
        row.append(el("br"), b);
      }
      box.append(row);
    }
  }

  async function refresh() {
    let data;
    try { data = await call(`${base}/connectors`); } catch (e) { return; }
    const mine = data.connectors.filter((c) => c.room_id === room);
    const tbody = document.getElementById("connectors-rows");
    tbody.replaceChildren();
    const banner = document.getElementById("connectors-alert");
    const bad = [];
    for (const c of mine) {
      const h = c.health;
      const [cls, zh] = STATE[h.state] || ["", h.state];
      const tr = el("tr");
      tr.dataset.connector = c.connector_id;
      tr.dataset.state = h.state;
      const st = el("td");
      st.append(el("span", zh, `badge ${cls}`));
      const dead = el("td");
      const link = el("button", String(h.dead_letters), "link");
      link.type = "button";
      link.addEventListener("click", () => showDead(c.connector_id));
      dead.append(link);
      tr.append(el("td", c.connector_id), el("td", c.platform || c.kind), st, el("td", h.events_per_s), el("td", h.events),
        el("td", age(h.last_event_age_s)), el("td", `${h.reconnects}${h.backoff_s ? `（${h.backoff_s}s 后重连）` : ""}`),
        dead, el("td", h.rejected), el("td", h.duplicates), el("td", (h.last_error || "").slice(0, 60)));
      tbody.append(tr);
      if (h.state === "lagging") bad.push(`${c.connector_id}：${zh}（${age(h.last_event_age_s)}）`);
      if (h.state === "failing") bad.push(`${c.connector_id}：${zh}（${(h.last_error || "").slice(0, 60)}）`);
    }
    document.getElementById("connectors-empty").hidden = mine.length > 0;
    banner.textContent = bad.length ? `平台连接告警：${bad.join("；")}` : "";
    banner.hidden = !bad.length;
  }

  const ov = document.getElementById("overlay-url");
  if (ov) ov.addEventListener("click", async () => {
    try {
      const d = await call(`${base}/rooms/${encodeURIComponent(room)}/overlay-token`, "POST", {});
      const out = document.getElementById("overlay-link");
      out.textContent = `${location.origin}${d.url}`;
      out.hidden = false;
    } catch (e) { ov.textContent = e.message; }
  });
  // the virtual host's show in this room: start / pause / resume / stop (captions and voice go to the overlay)
  const SHOW = { running: ["on", "直播中"], paused: ["warn", "已暂停"], stopped: ["", "未开播"] };
  function showState(d) {
    const s = document.getElementById("show-state");
    if (!s) return;
    const [cls, zh] = SHOW[d.state] || ["", d.state];
    s.className = `badge ${cls}`;
    s.textContent = zh;
    s.dataset.state = d.state;
    document.getElementById("show-info").textContent =
      d.state === "stopped" ? (d.error || "") : `已说 ${d.lines} 句，回答热门问题 ${d.answered_clusters} 个，语音 ${d.audio_s} 秒`;
  }
  async function refreshShow() {
    try { showState(await call(`${base}/rooms/${encodeURIComponent(room)}/show`)); } catch (e) { /* not shown */ }
  }
  for (const b of document.querySelectorAll("#show-controls button[data-show]")) {
    b.addEventListener("click", async () => {
      try { showState(await call(`${base}/rooms/${encodeURIComponent(room)}/show`, "POST", { action: b.dataset.show })); }
      catch (e) { document.getElementById("show-info").textContent = e.message; }
    });
  }
  // a new connector: its secret is shown once (store it in the sender; rotate from the API)
  const kind = document.getElementById("cn-kind");
  if (kind) {
    kind.addEventListener("change", () => { for (const e of document.querySelectorAll(".dy-only")) e.hidden = kind.value !== "douyin"; });
    document.getElementById("cn-create").addEventListener("click", async () => {
      const out = document.getElementById("cn-out");
      const v = (id) => document.getElementById(id).value.trim();
      const body = { connector_id: v("cn-id"), room_id: room, kind: kind.value, platform: v("cn-platform") };
      if (kind.value === "douyin") Object.assign(body, { app_id: v("cn-app"), platform_room: v("cn-room"), secret: v("cn-secret") });
      try {
        const d = await call(`${base}/connectors`, "POST", body);
        out.textContent = kind.value === "webhook"
          ? `已创建。签名密钥（只显示这一次）：${d.secret}　推送地址：${location.origin}/connectors/webhook/${d.connector.connector_id}`
          : `已创建。推送地址：${location.origin}/connectors/douyin/${d.connector.connector_id}/push`;
        out.dataset.secret = d.secret || "";
        refresh();
      } catch (e) { out.textContent = e.message; }
    });
  }
  refresh();
  refreshShow();
  setInterval(refresh, 2000);
  setInterval(refreshShow, 2000);
})();
