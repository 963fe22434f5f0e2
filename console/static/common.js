// Helpers shared by the console's modules (app.js, regression.js, campaigns.js, style.js). Same rules as app.js:
// no innerHTML, every piece of data goes in as text.
export const $ = (s, r = document) => r.querySelector(s);
export const $$ = (s, r = document) => Array.from(r.querySelectorAll(s));
export const MERCHANT = document.body.dataset.merchant;
export const CAN_WRITE = document.body.dataset.canWrite === "1";
export const BASE = `/console/api/m/${encodeURIComponent(MERCHANT || "")}`;
export const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = String(v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}
export const clear = (n) => { while (n.firstChild) n.removeChild(n.firstChild); return n; };
export const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString("zh-CN", { hour12: false }) : "—");
export const yuan = (x) => (x === null || x === undefined ? "—" : Number(x).toLocaleString("zh-CN", { maximumFractionDigits: 2 }));
export const splitList = (s) => s.split(/[、,，;；\n]/).map((x) => x.trim()).filter(Boolean);

export function toast(msg, kind = "") {
  const box = $("#toast");
  if (!box) return;
  const d = el("div", { class: kind, text: msg });
  box.append(d);
  setTimeout(() => d.remove(), kind === "error" ? 6000 : 3000);
}

export class ApiError extends Error {
  constructor(message, status, data) { super(message); this.status = status; this.data = data; }
}

function detailText(data) {
  if (!data) return "";
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}：${d.msg}`).join("；");
  return "";
}

export async function api(path, { method = "GET", json } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  let payload;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(json); }
  const r = await fetch(path.startsWith("/") ? path : `${BASE}/${path}`, { method, headers, body: payload, credentials: "same-origin" });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (r.status === 401) location.href = `/console/login?next=${encodeURIComponent(location.pathname)}`;
  if (!r.ok) throw new ApiError(detailText(data) || `请求失败（${r.status}）`, r.status, data);
  return data;
}

export function guard(fn) {
  return async (...args) => {
    try { return await fn(...args); } catch (e) { console.error(e); toast(e.message || String(e), "error"); }
  };
}
