// LiveRoom merchant console. No framework, no build step. Every piece of data is rendered with
// textContent / createElement (never innerHTML), so product names, prompts and danmaku stay text.
import { $, $$, BASE, CAN_WRITE, CSRF, MERCHANT, clear, el, fmtTime, yuan } from "./common.js";

const body = document.body;
const fmtClock = (t) => new Date(t * 1000).toLocaleTimeString("zh-CN", { hour12: false });

function toast(msg, kind = "") {
  const box = $("#toast");
  if (!box) return;
  const d = el("div", { class: kind, text: msg });
  box.append(d);
  setTimeout(() => d.remove(), kind === "error" ? 6000 : 3000);
}

class ApiError extends Error {
  constructor(message, status, data) { super(message); this.status = status; this.data = data; }
}

function detailText(data) {
  if (!data) return "";
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}：${d.msg}`).join("；");
  return "";
}

async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  let payload;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(json); }
  else if (form) payload = form;
  const r = await fetch(path.startsWith("/") ? path : `${BASE}/${path}`, { method, headers, body: payload, credentials: "same-origin" });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (r.status === 401) { location.href = `/console/login?next=${encodeURIComponent(location.pathname)}`; }
  if (!r.ok) throw new ApiError(detailText(data) || `请求失败（${r.status}）`, r.status, data);
  return data;
}

function guard(fn) {
  return async (...args) => {
    try { return await fn(...args); } catch (e) { console.error(e); toast(e.message || String(e), "error"); }
  };
}

function twoStep(button, label, action) {
  // A second click confirms (no blocking confirm() dialogs).
  let armed = false;
  const orig = button.textContent;
  button.addEventListener("click", guard(async () => {
    if (!armed) {
      armed = true; button.textContent = label; button.classList.add("danger");
      setTimeout(() => { armed = false; button.textContent = orig; button.classList.remove("danger"); }, 4000);
      return;
    }
    armed = false; button.textContent = orig; button.classList.remove("danger");
    await action();
  }));
}

function lineDiff(a, b) {
  // Line diff by longest common subsequence (prompts are short).
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: " ", text: x[i] }); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: "-", text: x[i++] });
    else out.push({ op: "+", text: y[j++] });
  }
  while (i < n) out.push({ op: "-", text: x[i++] });
  while (j < m) out.push({ op: "+", text: y[j++] });
  return out;
}

function diffView(lines) {
  return el("div", { class: "diff" }, lines.map((l) =>
    el("div", { class: l.op === "+" ? "add" : l.op === "-" ? "del" : "" , text: `${l.op} ${l.text}` })));
}

// ---------------------------------------------------------------------------------- common
$("#logout")?.addEventListener("click", guard(async () => {
  const r = await api("/console/logout", { method: "POST" });
  location.href = r.redirect || "/console/login";
}));

// ---------------------------------------------------------------------------------- knowledge base
async function loadProducts() {
  const q = $("#product-filter").value.trim();
  const [summary, items] = await Promise.all([api("kb/summary"), api(`kb/products?q=${encodeURIComponent(q)}`)]);
  $("#kb-summary").textContent = summary.active_version
    ? `当前版本 ${summary.active_version} · ${summary.products} 个商品 · ${summary.facts} 条事实 · ${summary.documents} 篇文档`
    : "知识库为空";
  const tb = clear($("#products tbody"));
  $("#products-empty").classList.toggle("hidden", items.length > 0 || !!q);
  for (const p of items) {
    tb.append(el("tr", { data: { sku: p.sku } },
      el("td", {}, el("code", { text: p.sku })), el("td", { class: "pname", text: p.name }), el("td", { text: p.category }),
      el("td", { class: "num", text: yuan(p.price) }), el("td", { class: "num", text: yuan(p.list_price) }),
      el("td", { class: "num", text: p.stock ?? "—" }), el("td", { class: "num", text: p.facts }),
      el("td", {}, el("a", { href: `/console/m/${encodeURIComponent(MERCHANT)}/kb/products/${encodeURIComponent(p.sku)}`, text: CAN_WRITE ? "编辑" : "查看" }))));
  }
}

function renderIssues(box, data) {
  box.append(el("div", { class: "alert error", text: data.detail || "文件校验未通过" }));
  const tb = el("tbody");
  for (const i of data.issues || []) {
    tb.append(el("tr", { class: "err" }, el("td", { text: i.file }), el("td", { class: "num", text: i.row ?? "—" }),
      el("td", { text: i.field_zh || i.field || "—" }), el("td", { text: i.message })));
  }
  box.append(el("table", { class: "grid", id: "upload-issues" },
    el("thead", {}, el("tr", {}, el("th", { text: "文件" }), el("th", { class: "num", text: "行" }), el("th", { text: "字段" }), el("th", { text: "问题" }))), tb));
}

function renderPreview(box, p) {
  const d = p.diff;
  const line = (label, n) => el("span", { class: "badge" + (n ? " warn" : "") , text: `${label} ${n}` });
  box.append(el("div", { class: "alert ok", id: "upload-ok" }, `校验通过：${p.files.join("、")}。共 ${p.counts.products} 个商品、${p.counts.documents} 篇文档、${p.counts.qa} 条问答，生成 ${p.counts.facts} 条事实。`));
  box.append(el("div", { class: "row" }, line("新增商品", d.products.added.length), line("修改商品", d.products.changed.length),
    line("未变商品", d.products.unchanged), line("新增/修改文档", d.documents.added.length + d.documents.changed.length),
    line("问答表", d.qa.added.length + d.qa.changed.length)));
  if (d.products.changed.length) {
    const ul = el("ul", {});
    for (const c of d.products.changed.slice(0, 30)) {
      ul.append(el("li", {}, el("b", { text: c.name }), ` (${c.sku})：`,
        c.fields.map((f) => `${f.field_zh} ${JSON.stringify(f.before)} → ${JSON.stringify(f.after)}`).join("；")));
    }
    box.append(ul);
  }
  const tb = el("tbody");
  for (const f of p.facts) {
    tb.append(el("tr", { class: f.changed ? "chg" : "" }, el("td", {}, el("span", { class: "badge", text: f.kind_zh })),
      el("td", { text: f.name || "—" }), el("td", { text: f.text })));
  }
  box.append(el("details", { open: true }, el("summary", { text: `事实与分段预览（${p.facts.length}${p.facts_truncated ? ` / 另有 ${p.facts_truncated} 条` : ""}）` }),
    el("table", { class: "grid", id: "preview-facts" }, el("thead", {}, el("tr", {}, el("th", { text: "类型" }), el("th", { text: "商品" }), el("th", { text: "事实 / 分段" }))), tb)));
  const publish = el("button", { class: "primary", id: "upload-publish", type: "button", text: "发布为新版本" });
  const discard = el("button", { type: "button", text: "放弃" });
  box.append(el("div", { class: "row" }, publish, discard));
  discard.addEventListener("click", guard(async () => { await api(`kb/uploads/${p.upload_id}`, { method: "DELETE" }); clear(box); }));
  publish.addEventListener("click", guard(async () => {
    publish.disabled = true;
    const job = await api(`kb/uploads/${p.upload_id}/publish`, { method: "POST" });
    await followJob(job.job_id);
    clear(box);
    await loadProducts();
  }));
}

// every publish is tested on the regression set first (docs/regression.md): a job's result says whether it went out
function publishedText(j) {
  const r = j.result;
  const run = r.run_id ? `，发布检查 ${r.passed}/${r.cases} 通过` : "";
  if (r.published) return `已发布 ${r.version}（${r.facts} 条事实，新计算 ${r.embedded} 条向量${run}，用时 ${j.elapsed_s} 秒）`;
  return r.stale || `未发布：有 ${r.regressed} 个原本答对的问题答错了，已存为草稿 ${r.version}`;
}

function heldLink(box, r) {
  if (r.published || !r.run_id) return;
  box.append(" ", el("a", { id: "publish-held", href: `/console/m/${encodeURIComponent(MERCHANT)}/regression?run=${encodeURIComponent(r.run_id)}`, text: "查看发布检查" }));
}

async function followJob(jobId) {
  const prog = $("#progress");
  prog.classList.remove("hidden");
  for (;;) {
    const j = await api(`kb/jobs/${jobId}`);
    const pct = j.state === "done" ? 100 : j.total ? Math.round((100 * j.done) / j.total) : 5;
    $("#progress-bar").style.width = `${pct}%`;
    $("#progress-text").textContent = j.state === "done" ? publishedText(j)
      : j.state === "failed" ? `发布失败：${j.error}` : `${j.stage_zh} ${j.done}/${j.total || "?"}`;
    $("#progress").dataset.state = j.state;
    if (j.state === "done") { heldLink($("#progress-text"), j.result); if (j.result.published) toast(`知识库已更新为 ${j.result.version}`); return j; }
    if (j.state === "failed") throw new Error(j.error || "发布失败");
    await new Promise((r) => setTimeout(r, 300));
  }
}

function initKb() {
  let timer;
  $("#product-filter").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(guard(loadProducts), 250); });
  guard(loadProducts)();
  const input = $("#upload-files");
  if (!input) return;
  input.addEventListener("change", () => { $("#upload-names").textContent = Array.from(input.files).map((f) => f.name).join("、") || "未选择文件"; });
  $("#upload-form").addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const box = clear($("#upload-result"));
    $("#progress").classList.add("hidden");
    if (!input.files.length) { toast("请先选择文件", "error"); return; }
    const fd = new FormData();
    for (const f of input.files) fd.append("files", f, f.name);
    $("#upload-submit").disabled = true;
    try {
      renderPreview(box, await api("kb/uploads", { method: "POST", form: fd }));
    } catch (e) {
      if (e.status === 422 && e.data?.issues) renderIssues(box, e.data);
      else box.append(el("div", { class: "alert error", id: "upload-error", text: e.message }));
    } finally { $("#upload-submit").disabled = false; }
  }));
}

// ---------------------------------------------------------------------------------- product edit
const splitList = (s) => s.split(/[、,，;；\n]/).map((x) => x.trim()).filter(Boolean);
const numOrRaw = (s) => { s = s.trim(); if (s === "") return null; const n = Number(s); return Number.isFinite(n) ? n : s; };

function productFromForm(f) {
  const specs = {};
  for (const line of f.specs.value.split("\n")) {
    const m = line.match(/^\s*([^:：]+)[:：](.*)$/);
    if (m && m[1].trim()) specs[m[1].trim()] = m[2].trim();
  }
  const faq = [];
  for (const line of f.faq.value.split("\n")) {
    if (!line.trim()) continue;
    const [q, ...rest] = line.split("::");
    faq.push({ q: q.trim(), a: rest.join("::").trim() });
  }
  return { ...(window.__product || {}), name: f.name.value.trim(), category: f.category.value.trim(), series: f.series.value.trim(),
    aliases: splitList(f.aliases.value), price: numOrRaw(f.price.value) ?? "", list_price: numOrRaw(f.list_price.value),
    stock: numOrRaw(f.stock.value), specs, selling_points: f.selling_points.value.split("\n").map((x) => x.trim()).filter(Boolean),
    faq, suitable_for: splitList(f.suitable_for.value), not_suitable_for: splitList(f.not_suitable_for.value) };
}

function fillProduct(f, p) {
  window.__product = p;
  f.name.value = p.name || ""; f.category.value = p.category || ""; f.series.value = p.series || "";
  f.aliases.value = (p.aliases || []).join("、"); f.price.value = p.price ?? ""; f.list_price.value = p.list_price ?? "";
  f.stock.value = p.stock ?? "";
  f.specs.value = Object.entries(p.specs || {}).map(([k, v]) => `${k}：${v}`).join("\n");
  f.selling_points.value = (p.selling_points || []).join("\n");
  f.faq.value = (p.faq || []).map((x) => `${x.q} :: ${x.a}`).join("\n");
  f.suitable_for.value = (p.suitable_for || []).join("、"); f.not_suitable_for.value = (p.not_suitable_for || []).join("、");
}

function renderFacts(facts) {
  const ol = clear($("#product-facts"));
  for (const x of facts) ol.append(el("li", { class: x.changed ? "chg" : "" }, el("span", { class: "badge kind", text: x.kind_zh }), x.text));
}

function renderProductIssues(issues) {
  const box = clear($("#product-issues"));
  if (!issues?.length) return;
  box.append(el("ul", { class: "problems", id: "product-problems" }, issues.map((i) => el("li", { text: `${i.field_zh || i.field}：${i.message}` }))));
}

function initProduct() {
  const sku = body.dataset.sku;
  const f = $("#product-form");
  const path = `kb/products/${encodeURIComponent(sku)}`;
  guard(async () => { const r = await api(path); fillProduct(f, r.product); renderFacts(r.facts); })();
  $("#product-preview").addEventListener("click", guard(async () => {
    try { const r = await api(`${path}/preview`, { method: "POST", json: productFromForm(f) }); renderProductIssues([]); renderFacts(r.facts); }
    catch (e) { if (e.status === 422) renderProductIssues(e.data.issues); else throw e; }
  }));
  f.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const btn = $("#product-save");
    btn.disabled = true;
    const status = $("#product-status");
    status.textContent = "正在重新索引…";
    try {
      // saved as a draft, tested on the regression set, published when nothing that passed fails
      let j = await api(`${path}/draft?publish=1`, { method: "POST", json: productFromForm(f) });
      renderProductIssues([]);
      while (j.state === "running") {
        status.textContent = `${j.stage_zh} ${j.done}/${j.total || "?"}`;
        await new Promise((r) => setTimeout(r, 300));
        j = await api(`kb/jobs/${j.job_id}`);
      }
      if (j.state === "failed") throw new Error(j.error || "保存失败");
      const r = j.result;
      status.textContent = r.published ? `已发布 ${r.version}：只重新计算了 ${r.embedded} 条向量，发布检查 ${r.passed}/${r.cases} 通过，用时 ${j.elapsed_s} 秒` : publishedText(j);
      heldLink(status, r);
      const again = await api(path);
      fillProduct(f, again.product);
      renderFacts(again.facts);
      toast(r.published ? `已保存，知识库 ${r.version}` : "未发布：发布检查拦截", r.published ? "" : "error");
    } catch (e) {
      status.textContent = "";
      if (e.status === 422 && e.data?.issues) renderProductIssues(e.data.issues);
      else if (e.status === 409 && e.message === "没有修改") { status.textContent = "没有修改"; toast("没有修改"); }
      else throw e;
    } finally { btn.disabled = false; }
  }));
}

// ---------------------------------------------------------------------------------- retrieval test
function renderAnswer(box, a) {
  clear(box);
  box.classList.remove("muted");
  box.append(el("div", { class: "text", text: a.answer ?? "（无回答）" }));
  box.append(el("div", { class: "row small muted" }, el("span", { class: "badge", text: a.path === "llm" ? "大模型" : "快速通道" }),
    a.intent ? el("span", { class: "badge", text: `意图：${a.intent}` }) : null, a.refused ? el("span", { class: "badge bad", text: "未能回答" }) : null,
    (a.flags || []).length ? el("span", { class: "badge warn", text: `护栏：${a.flags.join("、")}` }) : null));
  if (a.citations?.length) {
    box.append(el("ol", { class: "cites" }, a.citations.map((c) => el("li", { text: c.text || c.fact_id || c }))));
  }
}

function initSearch() {
  $("#search-form").addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const q = $("#search-q").value.trim();
    if (!q) return;
    $("#search-submit").disabled = true;
    try {
      const r = await api("kb/search", { method: "POST", json: { q, k: 8 } });
      $("#search-meta").textContent = `版本 ${r.version} · ${r.elapsed_ms} 毫秒`;
      renderAnswer($("#search-answer"), r.answer);
      const cited = new Set((r.answer?.citations || []).map((c) => c.fact_id));
      const tb = clear($("#search-hits tbody"));
      for (const h of r.hits) {
        tb.append(el("tr", { class: cited.has(h.fact_id) ? "chg" : "" }, el("td", { text: h.rank }), el("td", { class: "num score", text: h.score.toFixed(4) }),
          el("td", {}, el("span", { class: "badge", text: h.kind_zh })), el("td", { text: h.name || "店铺" }), el("td", { class: "hit-text", text: h.text }),
          el("td", { class: "num", text: h.dense_rank ?? "—" }), el("td", { class: "num", text: h.bm25_rank ?? "—" })));
      }
    } finally { $("#search-submit").disabled = false; }
  }));
}

// ---------------------------------------------------------------------------------- versions
function renderKbDiff(d) {
  const box = clear($("#diff"));
  $("#diff-title").textContent = d.against ? `${d.version} 相对 ${d.against}` : `${d.version}（首个版本）`;
  const p = d.products;
  box.append(el("div", { class: "row" }, el("span", { class: "badge", text: `新增商品 ${p.added.length}` }), el("span", { class: "badge", text: `删除商品 ${p.removed.length}` }),
    el("span", { class: "badge", text: `修改商品 ${p.changed.length}` }), el("span", { class: "badge", text: `事实 +${d.facts.added} −${d.facts.removed} ~${d.facts.changed}` })));
  for (const c of p.changed.slice(0, 50)) {
    box.append(el("div", { class: "alert" }, el("b", { text: c.name }), ` (${c.sku})`,
      el("ul", {}, c.fields.map((f) => el("li", { text: `${f.field_zh}：${JSON.stringify(f.before)} → ${JSON.stringify(f.after)}` })))));
  }
  if (d.facts.lines.length) box.append(diffView(d.facts.lines.map((l) => ({ op: l.op, text: l.text }))));
}

async function loadVersions() {
  const vs = await api("kb/versions");
  const tb = clear($("#versions tbody"));
  for (const v of vs) {
    const show = el("button", { class: "small", type: "button", text: "差异", data: { version: v.version } });
    show.addEventListener("click", guard(async () => renderKbDiff(await api(`kb/versions/${v.version}/diff`))));
    const actions = el("td", {}, show, " ");
    if (v.active) actions.append(el("span", { class: "badge on", text: "当前" }));
    else if (CAN_WRITE) {
      const rb = el("button", { class: "small restore", type: "button", text: "恢复", data: { version: v.version } });
      twoStep(rb, "确认恢复？", async () => { await api(`kb/versions/${v.version}/restore`, { method: "POST" }); toast(`已恢复到 ${v.version}`); await loadVersions(); });
      actions.append(rb);
    }
    tb.append(el("tr", { data: { version: v.version }, class: v.active ? "chg" : "" }, el("td", {}, el("code", { text: v.version })),
      el("td", { class: "nowrap", text: fmtTime(Date.parse(v.created_at) / 1000) }), el("td", { class: "num", text: v.products }), el("td", { class: "num", text: v.facts }),
      el("td", { class: "num", text: v.embedded }), el("td", { text: v.note }), actions));
  }
}

// ---------------------------------------------------------------------------------- prompts
async function initPromptList() {
  const items = await api("prompts");
  const tb = clear($("#prompt-list tbody"));
  for (const p of items) {
    tb.append(el("tr", { data: { prompt: p.name } }, el("td", {}, el("b", { text: p.label }), " ", el("code", { class: "muted", text: p.name })),
      el("td", { class: "muted", text: p.description }),
      el("td", {}, p.published_version ? el("span", { class: "badge on", text: `v${p.published_version}` }) : el("span", { class: "badge", text: "系统默认" })),
      el("td", {}, p.has_draft ? el("span", { class: "badge warn", text: "有草稿" }) : "—"),
      el("td", {}, el("a", { href: `/console/m/${encodeURIComponent(MERCHANT)}/prompts/${encodeURIComponent(p.name)}`, text: "编辑" }))));
  }
}

function initPrompt() {
  const name = body.dataset.prompt;
  const base = `prompts/${encodeURIComponent(name)}`;
  const ta = $("#prompt-text");
  let info = null;
  let vtimer;

  async function validateNow() {
    const r = await api(`${base}/validate`, { method: "POST", json: { text: ta.value } });
    const ul = clear($("#prompt-problems"));
    ul.classList.toggle("ok", r.ok);
    if (r.ok) ul.append(el("li", { text: "模板检查通过" }));
    else for (const p of r.problems) ul.append(el("li", { text: p }));
    const pub = $("#prompt-publish");
    if (pub) pub.disabled = !r.ok;
    return r.ok;
  }

  async function load() {
    info = await api(base);
    $("#prompt-desc").textContent = info.description;
    const vars = clear($("#prompt-vars"));
    for (const v of info.required) vars.append(el("code", { text: "${" + v + "}" }));
    ta.value = info.draft ? info.draft.text : info.published_text;
    $("#prompt-state").textContent = (info.published_version ? `已发布 v${info.published_version}` : "使用系统默认") + (info.draft ? " · 有未发布草稿" : "");
    await validateNow();
    await loadHistory();
  }

  async function loadHistory() {
    const hs = await api(`${base}/history`);
    const tb = clear($("#prompt-history tbody"));
    for (const h of hs) {
      const cmp = el("button", { class: "small", type: "button", text: "与编辑框对比" });
      cmp.addEventListener("click", guard(async () => {
        const old = await api(`${base}/versions/${h.version}`);
        const box = clear($("#prompt-diff"));
        box.append(el("h3", { text: `${h.version ? `v${h.version}` : "系统默认"} → 编辑框中的内容` }), diffView(lineDiff(old.text, ta.value)));
      }));
      const cell = el("td", {}, cmp, " ");
      if (h.published) cell.append(el("span", { class: "badge on", text: "已发布" }));
      else if (CAN_WRITE) {
        const rb = el("button", { class: "small restore", type: "button", text: "恢复", data: { version: h.version } });
        twoStep(rb, "确认恢复？", async () => { const r = await api(`${base}/restore`, { method: "POST", json: { version: h.version } }); toast(`已恢复 v${h.version}（发布为 v${r.version}）`); await load(); });
        cell.append(rb);
      }
      tb.append(el("tr", { data: { version: h.version } }, el("td", {}, el("code", { text: h.version ? `v${h.version}` : "默认" })),
        el("td", { text: h.at ? fmtTime(h.at) : "—" }), el("td", { text: h.author }), el("td", { text: h.note }), cell));
    }
  }

  ta.addEventListener("input", () => { clearTimeout(vtimer); vtimer = setTimeout(guard(validateNow), 300); });
  $("#prompt-save")?.addEventListener("click", guard(async () => {
    await api(`${base}/draft`, { method: "PUT", json: { text: ta.value } });
    toast("草稿已保存");
    $("#prompt-state").textContent = (info.published_version ? `已发布 v${info.published_version}` : "使用系统默认") + " · 有未发布草稿";
  }));
  $("#prompt-publish")?.addEventListener("click", guard(async () => {
    if (!(await validateNow())) { toast("模板有错误，不能发布", "error"); return; }
    try {
      const r = await api(`${base}/publish`, { method: "POST", json: { text: ta.value, note: $("#prompt-note").value } });
      toast(`已发布 v${r.version}`);
      $("#prompt-note").value = "";
      await load();
    } catch (e) {
      if (e.status === 422 && e.data?.problems) {
        const ul = clear($("#prompt-problems"));
        for (const p of e.data.problems) ul.append(el("li", { text: p }));
      }
      throw e;
    }
  }));
  $("#preview-form").addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    $("#preview-run").disabled = true;
    try {
      const r = await api(`${base}/preview`, { method: "POST", json: { question: $("#preview-q").value, text: ta.value } });
      $("#preview-note").textContent = !r.used_by_agent ? "该提示词不用于直播间问答，下面是用示例值渲染的结果。"
        : r.llm ? "两侧回答分别使用草稿和已发布版本（大模型通道）。" : "当前未连接大模型：价格、库存等问题走快速通道，回答由事实直接生成，不受提示词影响；推荐、闲聊类问题在连接大模型后才会体现差异。";
      for (const side of ["draft", "published"]) {
        const a = r[side];
        const box = $(`#preview-${side}-answer`);
        if (a.answer !== undefined) renderAnswer(box, a);
        else { clear(box); box.append(el("div", { class: "muted", text: "（此提示词不参与问答）" })); }
        $(`#preview-${side}-rendered`).textContent = a.rendered;
      }
      $("#preview-pub-version").textContent = r.published.version ? `v${r.published.version}` : "系统默认";
    } catch (e) {
      if (e.status === 422 && e.data?.problems) { const ul = clear($("#prompt-problems")); for (const p of e.data.problems) ul.append(el("li", { text: p })); }
      throw e;
    } finally { $("#preview-run").disabled = false; }
  }));
  guard(load)();
}

// ---------------------------------------------------------------------------------- rooms
async function loadRooms() {
  const rooms = await api("rooms");
  const tb = clear($("#rooms tbody"));
  $("#rooms-empty").classList.toggle("hidden", rooms.length > 0);
  for (const r of rooms) {
    tb.append(el("tr", { data: { room: r.room_id } }, el("td", {}, el("b", { text: r.title })), el("td", {}, el("code", { text: r.room_id })),
      el("td", { class: "viewer-link" }, el("a", { href: r.url, target: "_blank", rel: "noopener", text: r.url }),
        el("img", { class: "qr", alt: "观众页二维码", width: 96, height: 96, src: `${BASE}/rooms/${encodeURIComponent(r.room_id)}/qr.svg` })),
      el("td", { text: fmtTime(r.created_at) }), el("td", {}, r.simulator.running ? el("span", { class: "badge on", text: "运行中" }) : "—"),
      el("td", {}, el("a", { href: `/console/m/${encodeURIComponent(MERCHANT)}/rooms/${encodeURIComponent(r.room_id)}`, text: "打开看板" }), " ", roomStatus(r))));
  }
}

function roomStatus(r) {
  // closed rooms answer nobody on the public channels (404); reopening is one click
  const wrap = el("span", {}, el("span", { class: "badge" + (r.status === "closed" ? " bad" : " on"), text: r.status === "closed" ? "已关闭" : "开放" }));
  if (CAN_WRITE) {
    const b = el("button", { class: "small", type: "button", text: r.status === "closed" ? "重新开放" : "关闭" });
    const next = r.status === "closed" ? "open" : "closed";
    b.addEventListener("click", guard(async () => { await api(`rooms/${encodeURIComponent(r.room_id)}`, { method: "PATCH", json: { status: next } }); await loadRooms(); }));
    wrap.append(" ", b);
  }
  return wrap;
}

function initRooms() {
  guard(loadRooms)();
  $("#room-form")?.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    await api("rooms", { method: "POST", json: { room_id: $("#room-id").value.trim(), title: $("#room-title").value.trim() } });
    $("#room-id").value = ""; $("#room-title").value = "";
    toast("直播间已创建");
    await loadRooms();
  }));
}

// ---------------------------------------------------------------------------------- dashboard
function initDashboard() {
  const room = body.dataset.room;
  const base = `rooms/${encodeURIComponent(room)}`;
  const hasCharts = typeof window.echarts !== "undefined";
  const charts = {};
  if (hasCharts) {
    const common = { animationDuration: 300, grid: { left: 44, right: 44, top: 34, bottom: 26 }, legend: { top: 0 },
      tooltip: { trigger: "axis", renderMode: "richText" }, xAxis: { type: "category", data: [] } };
    charts.traffic = window.echarts.init($("#chart-traffic"));
    charts.traffic.setOption({ ...common, color: ["#ff4d4f", "#1677ff", "#faad14"],
      yAxis: [{ type: "value", name: "人 / 次" }, { type: "value", name: "分钟" }],
      series: [{ name: "观看人数", type: "line", smooth: true, areaStyle: { opacity: 0.12 }, data: [] },
        { name: "商品点击", type: "bar", data: [] }, { name: "观看时长", type: "line", yAxisIndex: 1, smooth: true, data: [] }] });
    charts.sales = window.echarts.init($("#chart-sales"));
    charts.sales.setOption({ ...common, color: ["#69b1ff", "#2ea043", "#ff7a45"],
      yAxis: [{ type: "value", name: "件 / 单" }, { type: "value", name: "元" }],
      series: [{ name: "加购", type: "bar", data: [] }, { name: "订单", type: "bar", data: [] },
        { name: "成交额", type: "line", yAxisIndex: 1, smooth: true, data: [] }] });
    window.addEventListener("resize", () => { charts.traffic.resize(); charts.sales.resize(); });
  } else {
    for (const id of ["#chart-traffic", "#chart-sales"]) $(id).append(el("p", { class: "muted", text: "图表库未安装：运行 scripts/install_console_deps.sh" }));
  }
  let last = null;
  const flagged = new Set();

  function render(d) {
    last = d;
    const f = d.funnel;
    for (const k of ["viewers", "watch_minutes", "clicks", "carts", "orders", "gmv"]) $(`#kpi-${k}`).textContent = yuan(f.totals[k]);
    if (hasCharts) {
      charts.traffic.setOption({ xAxis: { data: f.minutes }, series: [{ data: f.viewers }, { data: f.clicks }, { data: f.watch_minutes }] });
      charts.sales.setOption({ xAxis: { data: f.minutes }, series: [{ data: f.carts }, { data: f.orders }, { data: f.gmv }] });
      $("#chart-traffic").dataset.points = f.viewers.join(",");
    }
    const al = clear($("#alerts"));
    for (const a of d.alerts) al.append(el("div", { class: `alert ${a.level === "warn" ? "warn" : ""}`, text: a.text, data: { kind: a.kind } }));
    const hot = clear($("#hot"));
    $("#hot-empty").classList.toggle("hidden", d.hot_questions.length > 0);
    for (const h of d.hot_questions) {
      hot.append(el("li", {}, el("span", { class: "lbl", text: h.label }), " ", el("span", { class: "badge", text: `${h.viewers} 人 · ${h.count} 次` }),
        h.unanswered ? el("span", { class: "badge bad", text: `${h.unanswered} 未答` }) : null,
        el("div", { class: "tp" }, el("b", { text: "建议话术" }), h.talking_point), el("div", { class: "ex", text: h.examples.join(" / ") })));
    }
    const cp = clear($("#coupons"));
    if (!d.coupons.length) cp.append(el("p", { class: "muted", text: "没有优惠券活动" }));
    for (const c of d.coupons) {
      const pct = Math.min(100, c.used_pct);
      const bar = el("span", { class: pct >= 90 ? "hi" : "" });
      bar.style.width = `${pct}%`;
      cp.append(el("div", { class: "coupon" }, el("div", { class: "row between" }, el("span", {}, el("b", { text: c.title }), " ", el("span", { class: "badge" + (c.status === "active" ? " on" : ""), text: c.status === "active" ? "进行中" : c.status === "paused" ? "已暂停" : "已结束" })),
        el("span", { class: "muted", text: `${c.issued_count} / ${c.budget_count} 张` + (c.budget_money ? ` · ${yuan(c.issued_value)} / ${yuan(c.budget_money)} 元` : "") })),
        el("div", { class: "meter" }, bar)));
    }
    const ul = clear($("#answers"));
    $("#answers-empty").classList.toggle("hidden", d.answers.length > 0);
    for (const a of d.answers) {
      const isFlagged = a.flagged || flagged.has(a.answer_id);
      const btn = el("button", { class: "small thumbs", type: "button", title: "回答有问题，送去复核", text: isFlagged ? "已送复核" : "回答有误", data: { answer: a.answer_id } });
      btn.disabled = isFlagged || !CAN_WRITE;
      btn.addEventListener("click", guard(async () => {
        btn.disabled = true;
        await api(`${base}/answers/${a.answer_id}/feedback`, { method: "POST", json: { reason: "看板标记" } });
        flagged.add(a.answer_id);
        btn.textContent = "已送复核";
        toast("已送去复核");
      }));
      ul.append(el("li", { class: isFlagged ? "flagged" : "", data: { answer: a.answer_id } },
        el("div", { class: "body" }, el("div", { class: "q" }, el("span", { class: "muted", text: `${fmtClock(a.at)} ${a.viewer_id}：` }), el("span", { class: "danmaku", text: a.question })),
          el("div", { class: "a", text: a.answer }),
          el("div", { class: "row small" }, el("span", { class: "badge", text: a.path === "llm" ? "大模型" : "快速通道" }), el("span", { class: "badge", text: a.intent_zh }),
            a.refused ? el("span", { class: "badge bad", text: "未能回答" }) : null, a.kb_version ? el("span", { class: "badge", text: a.kb_version }) : null),
          a.citations.length ? el("ol", { class: "cites" }, a.citations.map((c) => el("li", { text: c.text || c.fact_id }))) : null),
        btn));
    }
    const sim = $("#sim-toggle");
    if (sim) { sim.textContent = d.simulator.running ? "停止模拟直播" : "启动模拟直播"; sim.dataset.running = d.simulator.running ? "1" : "0"; }
    const up = $("#live-updated");
    up.dataset.count = String(Number(up.dataset.count || 0) + 1);
    up.dataset.events = String(f.totals.events);
    up.textContent = `更新于 ${fmtClock(d.now)}`;
  }

  async function poll() {
    try { render(await api(`${base}/live?minutes=20`)); } catch (e) { $("#live-updated").textContent = `连接失败：${e.message}`; }
    setTimeout(poll, document.hidden ? 5000 : 2000);
  }
  $("#sim-toggle")?.addEventListener("click", guard(async () => {
    const running = $("#sim-toggle").dataset.running === "1";
    const s = await api(`${base}/simulator`, { method: "POST", json: { action: running ? "stop" : "start" } });
    toast(s.running ? "模拟直播已启动" : "模拟直播已停止");
    if (last) render({ ...last, simulator: s });
  }));
  poll();
}

// ---------------------------------------------------------------------------------- reviews
async function loadReviews() {
  const status = $("#review-status").value;
  const items = await api(`reviews${status ? `?status=${status}` : ""}`);
  const ul = clear($("#reviews"));
  $("#reviews-empty").classList.toggle("hidden", items.length > 0);
  for (const r of items) {
    const actions = el("div", { class: "row" });
    if (CAN_WRITE && r.status === "open") {
      for (const [st, label] of [["resolved", "已处理"], ["dismissed", "忽略"]]) {
        const b = el("button", { class: "small", type: "button", text: label });
        b.addEventListener("click", guard(async () => { await api(`reviews/${r.id}`, { method: "POST", json: { status: st } }); await loadReviews(); }));
        actions.append(b);
      }
    }
    ul.append(el("li", { data: { review: r.id } }, el("div", { class: "body" },
      el("div", { class: "q" }, el("span", { class: "muted", text: `${fmtTime(r.at)} · ${r.room_id} · ${r.filed_by}：` }), el("span", { text: r.question })),
      el("div", { class: "a", text: r.answer }),
      el("div", { class: "small muted", text: `知识库 ${r.kb_version || "—"} · 原因：${r.reason || "—"} · 状态：${r.status}` }),
      r.citations.length ? el("ol", { class: "cites" }, r.citations.map((c) => el("li", { text: c.fact_id }))) : null), actions));
  }
}

// ---------------------------------------------------------------------------------- team
const ROLE = { owner: "店主", operator: "运营", viewer: "只读" };
async function loadTeam() {
  if (body.dataset.owner === "1") {
    const users = await api("users");
    const tb = clear($("#users tbody"));
    for (const u of users) {
      const sel = el("select", {}, ["owner", "operator", "viewer"].map((r) => el("option", { value: r, text: ROLE[r], selected: r === u.role })));
      sel.addEventListener("change", guard(async () => { await api(`users/${u.user_id}`, { method: "PATCH", json: { role: sel.value } }); toast("角色已修改"); await loadTeam(); }));
      const dis = el("button", { class: "small", type: "button", text: u.disabled ? "启用" : "停用" });
      dis.addEventListener("click", guard(async () => { await api(`users/${u.user_id}`, { method: "PATCH", json: { disabled: !u.disabled } }); await loadTeam(); }));
      tb.append(el("tr", {}, el("td", { text: u.username }), el("td", {}, sel), el("td", {}, el("span", { class: "badge" + (u.disabled ? " bad" : " on"), text: u.disabled ? "已停用" : "正常" })), el("td", {}, dis)));
    }
    const toks = await api("tokens");
    const tt = clear($("#tokens tbody"));
    for (const t of toks) {
      const cell = el("td", {});
      if (t.revoked) cell.append(el("span", { class: "badge bad", text: "已吊销" }));
      else { const b = el("button", { class: "small", type: "button", text: "吊销" }); twoStep(b, "确认吊销？", async () => { await api(`tokens/${t.token_id}`, { method: "DELETE" }); await loadTeam(); }); cell.append(b); }
      tt.append(el("tr", {}, el("td", { text: t.name }), el("td", { text: t.role === "viewer" ? "只读" : t.role === "agent" ? "agent（/v1）" : "读写" }), el("td", { text: fmtTime(t.created_at) }), el("td", { text: fmtTime(t.last_used) }), cell));
    }
  }
  if (body.dataset.owner === "1" && $("#viewer-secret-info")) {
    const vs = await api("viewer-secret");
    $("#viewer-secret-info").textContent = vs.secret_id ? `当前密钥 ${vs.secret_id}（${fmtTime(vs.created_at)} 创建）` : "还没有密钥";
    $("#viewer-secret-rotate").textContent = vs.secret_id ? "轮换密钥" : "生成密钥";
  }
  if (CAN_WRITE) {
    const log = await api("audit?limit=100");
    const ta = clear($("#audit tbody"));
    for (const a of log.items) {
      const show = (x) => (x === null || x === undefined ? "—" : typeof x === "string" ? x : JSON.stringify(x, null, 1));
      ta.append(el("tr", {}, el("td", { text: fmtTime(a.at) }), el("td", { text: a.actor }), el("td", {}, el("code", { text: a.action })), el("td", { text: a.target }),
        el("td", {}, el("details", {}, el("summary", { text: "查看" }), el("div", { class: "cols" }, el("pre", { text: show(a.before) }), el("pre", { text: show(a.after) }))))));
    }
  }
}

function initTeam() {
  guard(loadTeam)();
  $("#user-form")?.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    await api("users", { method: "POST", json: { username: $("#user-name").value.trim(), password: $("#user-pass").value, role: $("#user-role").value } });
    $("#user-name").value = ""; $("#user-pass").value = "";
    toast("成员已添加");
    await loadTeam();
  }));
  $("#token-form")?.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const t = await api("tokens", { method: "POST", json: { name: $("#token-name").value.trim(), role: $("#token-role").value } });
    const box = clear($("#token-secret"));
    box.classList.remove("hidden");
    box.append("令牌只显示这一次，请立即复制保存：", el("code", { id: "token-value", text: t.token }));
    $("#token-name").value = "";
    await loadTeam();
  }));
  $("#viewer-secret-rotate")?.addEventListener("click", guard(async () => {
    const v = await api("viewer-secret", { method: "POST" });
    const box = clear($("#viewer-secret-value"));
    box.classList.remove("hidden");
    box.append(`密钥只显示这一次（kid ${v.secret_id}），请保存在你的服务器端：`, el("code", { id: "viewer-secret", text: v.secret }));
    await loadTeam();
  }));
}

// ---------------------------------------------------------------------------------- boot
const PAGES = { kb: initKb, product: initProduct, search: initSearch, versions: () => guard(loadVersions)(), prompts: () => guard(initPromptList)(),
  prompt: initPrompt, rooms: initRooms, dashboard: initDashboard, reviews: () => { $("#review-status").addEventListener("change", guard(loadReviews)); guard(loadReviews)(); }, team: initTeam };
PAGES[body.dataset.page]?.();
