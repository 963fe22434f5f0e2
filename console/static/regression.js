// Publish with proof (docs/regression.md): the regression page, and the product page's "save as draft and
// test" button. Same rules as app.js: no innerHTML, every piece of data goes in as text.
import { $, BASE, CSRF, MERCHANT, clear, el, fmtTime } from "./common.js";

const body = document.body;
const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);

function toast(msg, kind = "") {
  const box = $("#toast");
  if (!box) return;
  const d = el("div", { class: kind, text: msg });
  box.append(d);
  setTimeout(() => d.remove(), kind === "error" ? 6000 : 3000);
}

async function api(path, { method = "GET", json } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  let payload;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(json); }
  const r = await fetch(`${BASE}/${path}`, { method, headers, body: payload, credentials: "same-origin" });
  let data = null;
  try { data = await r.json(); } catch { data = null; }
  if (r.status === 401) location.href = `/console/login?next=${encodeURIComponent(location.pathname)}`;
  if (!r.ok) {
    const e = new Error((data && typeof data.detail === "string" && data.detail) || `请求失败（${r.status}）`);
    e.status = r.status; e.data = data; throw e;
  }
  return data;
}
const guard = (fn) => async (...a) => { try { return await fn(...a); } catch (e) { console.error(e); toast(e.message || String(e), "error"); } };

// ------------------------------------------------------------------------------- product page
const numOrRaw = (s) => { s = s.trim(); if (s === "") return null; const n = Number(s); return Number.isFinite(n) ? n : s; };

function productFromForm(f) {
  // as app.js reads the form for "save" (window.__product keeps the fields the form does not show)
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

function initProductDraft() {
  const btn = $("#product-draft");
  if (!btn) return;
  btn.addEventListener("click", guard(async () => {
    const data = productFromForm($("#product-form"));
    btn.disabled = true;
    try {
      const j = await api(`kb/products/${encodeURIComponent(body.dataset.sku)}/draft`, { method: "POST", json: data });
      location.href = `/console/m/${encodeURIComponent(MERCHANT)}/regression?job=${encodeURIComponent(j.job_id)}`;
    } catch (e) {
      btn.disabled = false;
      if (e.status === 422 && e.data?.issues) { toast(e.data.issues.map((i) => `${i.field_zh || i.field}：${i.message}`).join("；"), "error"); return; }
      throw e;
    }
  }));
}

// ------------------------------------------------------------------------------- regression page
const STAGE = { building: "生成草稿索引", before: "在已发布版本上回答", after: "在草稿上回答", parsing: "准备" };
let current = null;

function cites(side) {
  if (!side) return el("span", { class: "muted", text: "—" });
  return el("div", {}, el("div", { class: "ans", text: side.answer }),
    side.citations?.length ? el("ol", { class: "cites small muted" }, side.citations.map((c) => el("li", { text: c.text || c.fact_id }))) : null);
}

function verdictBadge(side) {
  if (!side) return el("span", { class: "badge", text: "新增" });
  return el("span", { class: `badge ${side.passed ? "on" : "bad"}`, text: side.passed ? "通过" : "未通过" });
}

function renderRows(tbody, rows, cols) {
  clear(tbody);
  for (const r of rows) tbody.append(el("tr", { data: { case: r.id, status: r.status || "" } }, cols.map((c) => el("td", {}, c(r)))));
}

function question(r) {
  const exp = r.must_refuse ? "应如实说没有" : (r.must_contain || []).length ? `应包含：${r.must_contain.join("、")}` : "";
  return el("div", {}, el("div", { text: r.question }), el("div", { class: "small muted", text: [exp, r.why || r.note].filter(Boolean).join(" · ") }));
}

function showReport(r) {
  current = r;
  $("#rg-report").classList.remove("hidden");
  const what = r.target === "prompt" ? `提示词草稿 ${r.prompt.join("、")}（知识库 ${r.base_version}）` : r.version === r.base_version ? `当前版本 ${r.version}` : `草稿 ${r.version} 对比已发布 ${r.base_version}`;
  const part = r.sampled ? ` · 问题集较大：跑了改动涉及的全部问题和固定抽样，共 ${r.sampled.ran}/${r.sampled.of} 个` : "";
  $("#rg-report-title").textContent = `${what} · ${fmtTime(r.finished)} · 用时 ${r.elapsed_s} 秒${part}`;
  const v = clear($("#rg-verdict"));
  const box = el("div", { class: `alert ${r.blocked ? "error" : "ok"}`, id: "rg-verdict-text", data: { blocked: r.blocked ? "1" : "0" },
    text: r.blocked ? `有 ${r.regressed} 个原本答对的问题现在答错了：不能直接发布` : `没有原本答对、现在答错的问题（${r.passed}/${r.cases} 通过）` });
  v.append(box);
  const tb = clear($("#rg-tally tbody"));
  for (const [label, t] of [["已发布版本", r.before], [r.target === "prompt" ? "提示词草稿" : "草稿", r.after]]) {
    tb.append(el("tr", {}, el("td", { text: label }), el("td", { class: "num", text: t.cases }), el("td", { class: "num", text: t.passed }),
      el("td", { class: "num", text: t.failed }), el("td", { class: "num", text: pct(t.accuracy) }), el("td", { class: "num", text: `${t.refusals_ok}/${t.probes}` })));
  }
  $("#rg-regressions-count").textContent = `${r.regressions_total} 个`;
  renderRows($("#rg-regressions tbody"), r.regressions, [question, (x) => cites(x.before), (x) => cites(x.after), (x) => el("span", { text: (x.after.reasons || []).join("；") })]);
  $("#rg-changed-count").textContent = `${r.changed_total} 个`;
  renderRows($("#rg-changed tbody"), r.changed, [question, (x) => cites(x.before), (x) => cites(x.after),
    (x) => el("span", {}, verdictBadge(x.before), " → ", verdictBadge(x.after))]);
  $("#rg-failures-count").textContent = `${r.failures_total} 个`;
  renderRows($("#rg-failures tbody"), r.failures, [question, (x) => cites(x.after), (x) => el("span", { text: (x.after.reasons || []).join("；") })]);
  const publishable = r.target === "prompt" || r.version !== r.base_version;
  const pub = $("#rg-publish"), ov = $("#rg-override"), reason = $("#rg-override-reason");
  $("#rg-publish-status").textContent = "";
  if (pub) { pub.classList.toggle("hidden", !publishable); pub.disabled = !!r.blocked; pub.title = r.blocked ? "有原本答对的问题答错了" : ""; }
  if (ov) { ov.classList.toggle("hidden", !(publishable && r.blocked)); reason.classList.toggle("hidden", !(publishable && r.blocked)); }
  if (r.published) { // a save or upload that published itself once the run broke nothing
    $("#rg-publish-status").textContent = `已发布 ${r.target === "kb" ? `知识库 ${r.version}` : "提示词"}（发布检查通过）`;
    for (const n of [pub, ov, reason]) n?.classList.add("hidden");
  }
}

async function follow(jobId) {
  const prog = $("#rg-progress");
  prog.classList.remove("hidden");
  for (;;) {
    const j = await api(`regression/jobs/${encodeURIComponent(jobId)}`);
    const p = j.state === "done" ? 100 : j.total ? Math.round((100 * j.done) / j.total) : 3;
    $("#rg-progress-bar").style.width = `${p}%`;
    prog.dataset.state = j.state;
    prog.dataset.stage = j.stage;
    $("#rg-progress-text").textContent = j.state === "done" ? `测试完成：${j.result.passed}/${j.result.cases} 通过，用时 ${j.elapsed_s} 秒`
      : j.state === "failed" ? `测试失败：${j.error}` : `${STAGE[j.stage] || j.stage} ${j.done}/${j.total || "?"}`;
    if (j.state === "done") {
      history.replaceState(null, "", `?run=${encodeURIComponent(j.result.run_id)}`);
      showReport(j.result);
      await loadRuns();
      return;
    }
    if (j.state === "failed") throw new Error(j.error || "测试失败");
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function loadRuns() {
  const runs = await api("regression/runs");
  const tb = clear($("#rg-runs tbody"));
  for (const r of runs) {
    const open = el("button", { class: "small", type: "button", text: "查看" });
    open.addEventListener("click", guard(async () => { showReport(await api(`regression/runs/${r.run_id}`)); history.replaceState(null, "", `?run=${r.run_id}`); }));
    tb.append(el("tr", { data: { run: r.run_id } }, el("td", { text: fmtTime(r.finished) }),
      el("td", { text: r.target === "prompt" ? `提示词 ${(r.prompt || []).join("、")}` : r.version === r.base_version ? `当前 ${r.version}` : `草稿 ${r.version}` }),
      el("td", { class: "num", text: `${r.passed}/${r.cases}` }), el("td", { class: "num", text: r.regressed ?? 0 }),
      el("td", {}, el("span", { class: `badge ${r.blocked ? "bad" : "on"}`, text: r.blocked ? "拦截" : "可发布" })), el("td", {}, open)));
  }
}

async function loadCases() {
  const s = await api("regression/cases?limit=500");
  const names = { price: "价格", variant_price: "规格价", stock: "库存", spec: "参数", faq: "问答", qa: "店铺问答", compare: "对比", probe: "资料没有", manual: "手动", review: "复核更正" };
  $("#rg-summary").textContent = `当前版本 ${s.version || "—"} · ${s.total} 个问题（` +
    Object.entries(s.counts).map(([k, n]) => `${names[k] || k} ${n}`).join("、") + "）";
  const ul = clear($("#rg-manual"));
  for (const c of s.cases.filter((x) => x.source !== "generated")) {
    const del = el("button", { class: "small link", type: "button", text: "删除" });
    del.addEventListener("click", guard(async () => { await api(`regression/cases/${encodeURIComponent(c.id)}`, { method: "DELETE" }); await loadCases(); }));
    ul.append(el("li", { data: { case: c.id } }, el("span", { text: `${c.source === "review" ? "［复核］" : ""}${c.question}` }),
      el("span", { class: "muted", text: c.must_refuse ? " → 应如实说没有" : ` → 包含 ${c.must_contain.join("、")}` }), " ", del));
  }
}

async function loadDrift() {
  const d = await api("regression/drift");
  const box = clear($("#rg-drift"));
  box.append(el("div", { text: `近 ${Math.round(d.window_s / 60)} 分钟直播回答 ${d.answers} 条，其中“稍后确认” ${d.checks} 条（${pct(d.check_share)}，此前 ${pct(d.baseline_check_share)}）；已抽检 ${d.sampled} 条送去复核` }));
  for (const a of d.alerts) box.append(el("div", { class: "alert warn", text: a.text, data: { kind: a.kind } }));
}

function splitList(s) { return s.split(/[、,，;；\n]/).map((x) => x.trim()).filter(Boolean); }

function initRegression() {
  $("#rg-run-active").addEventListener("click", guard(async () => follow((await api("regression/runs", { method: "POST", json: {} })).job_id)));
  $("#rg-run-prompt")?.addEventListener("click", guard(async () => follow((await api("regression/runs", { method: "POST", json: { prompt: $("#rg-prompt").value } })).job_id)));
  const publish = async (json) => {
    const r = await api(`regression/runs/${current.run_id}/publish`, { method: "POST", json });
    const what = r.target === "kb" ? `知识库 ${r.version}` : `提示词 ${Object.entries(r.prompts).map(([n, v]) => `${n} v${v}`).join("、")}`;
    $("#rg-publish-status").textContent = `已发布 ${what}${r.overridden ? "（店主强制发布，已记入审计）" : ""}`;
    $("#rg-publish")?.classList.add("hidden"); $("#rg-override")?.classList.add("hidden"); $("#rg-override-reason")?.classList.add("hidden");
    toast(`已发布 ${what}`);
    await Promise.all([loadCases(), loadRuns()]);
  };
  $("#rg-publish")?.addEventListener("click", guard(() => publish({})));
  $("#rg-override")?.addEventListener("click", guard(() => publish({ override_reason: $("#rg-override-reason").value })));
  $("#rg-case-form")?.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    await api("regression/cases", { method: "POST", json: { question: f.question.value, must_contain: splitList(f.must_contain.value),
      must_not_contain: splitList(f.must_not_contain.value), must_refuse: f.must_refuse.checked } });
    f.reset();
    toast("已添加");
    await loadCases();
  }));
  const qs = new URLSearchParams(location.search);
  guard(loadCases)(); guard(loadRuns)(); guard(loadDrift)();
  setInterval(guard(loadDrift), 15000);
  if (qs.get("job")) guard(follow)(qs.get("job"));
  else if (qs.get("run")) guard(async () => showReport(await api(`regression/runs/${encodeURIComponent(qs.get("run"))}`)))();
}

// ------------------------------------------------------------------------------- reviews page
function correctionForm(li) {
  if (li.querySelector(".rg-correct") || body.dataset.canWrite !== "1") return;
  const id = li.dataset.review;
  const input = el("input", { class: "grow", maxlength: "500", placeholder: "正确的回答", name: "correction" });
  const qa = el("input", { type: "checkbox", name: "add_qa", checked: true });
  const go = el("button", { class: "small", type: "button", text: "更正" });
  go.addEventListener("click", guard(async () => {
    if (!input.value.trim()) { input.focus(); return; }
    const r = await api(`reviews/${encodeURIComponent(id)}/correct`, { method: "POST", json: { answer: input.value, add_qa: qa.checked } });
    if (r.job) location.href = `/console/m/${encodeURIComponent(MERCHANT)}/regression?job=${encodeURIComponent(r.job.job_id)}`;
    else { toast("已加入发布检查"); li.remove(); }
  }));
  li.append(el("div", { class: "row rg-correct" }, input, el("label", { class: "small" }, qa, " 作为问答加入草稿并测试"), go));
}

function initReviews() {
  const ul = $("#reviews");
  const each = () => ul.querySelectorAll("li[data-review]").forEach((li) => { if (!/resolved|dismissed/.test(li.textContent.split("状态：")[1] || "")) correctionForm(li); });
  new MutationObserver(each).observe(ul, { childList: true });
  each();
}

if (body.dataset.page === "regression") initRegression();
if (body.dataset.page === "reviews") initReviews();
if (body.dataset.page === "product") initProductDraft();
