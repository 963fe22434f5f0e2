// The campaigns page: list (issued / used / remaining), create, edit, pause / resume, and a burn-down
// chart of the selected campaign from the coupon ledger.
import { $, $$, CAN_WRITE, api, clear, el, guard, splitList, toast, yuan } from "./common.js";

const STATUS = { active: ["进行中", "on"], paused: ["已暂停", "warn"], ended: ["已结束", "bad"] };
let chart = null;
let selected = null;
let campaigns = [];

const offer = (c) => (c.kind === "amount" ? `满${yuan(c.threshold)}减${yuan(c.amount)}` : `满${yuan(c.threshold)}享${Math.round(c.discount * 100) / 10}折` + (c.max_off ? `（最多减${yuan(c.max_off)}）` : ""));
const who = (c) => [c.eligible_tiers.length ? c.eligible_tiers.join("/") : "所有人", c.members_only ? "仅会员" : "", c.eligible_tags.length ? `兴趣：${c.eligible_tags.join("、")}` : "", c.skus.length ? `商品：${c.skus.join("、")}` : "全店"].filter(Boolean).join(" · ");

async function load() {
  campaigns = await api("campaigns");
  const tb = clear($("#campaigns tbody"));
  $("#campaigns-empty").classList.toggle("hidden", campaigns.length > 0);
  for (const c of campaigns) {
    const [label, cls] = STATUS[c.status] || [c.status, ""];
    const actions = el("td", { class: "nowrap" }, el("button", { class: "small", type: "button", text: "消耗图", onclick: () => guard(show)(c.campaign_id) }));
    if (CAN_WRITE) {
      actions.append(" ", el("button", { class: "small", type: "button", text: "编辑", data: { edit: c.campaign_id }, onclick: () => edit(c) }));
      if (c.status === "active") actions.append(" ", el("button", { class: "small", type: "button", text: "暂停", data: { pause: c.campaign_id }, onclick: guard(() => setStatus(c, "paused")) }));
      if (c.status === "paused") actions.append(" ", el("button", { class: "small", type: "button", text: "恢复", data: { resume: c.campaign_id }, onclick: guard(() => setStatus(c, "active")) }));
    }
    tb.append(el("tr", { data: { campaign: c.campaign_id } },
      el("td", {}, el("b", { text: c.title }), el("div", { class: "muted small" }, el("code", { text: c.campaign_id }))),
      el("td", { text: offer(c) }), el("td", { class: "small", text: who(c) }), el("td", { class: "num", text: c.per_viewer_limit }),
      el("td", { class: "num", text: c.budget_count + (c.budget_money ? ` 张 / ${yuan(c.budget_money)} 元` : " 张") }),
      el("td", { class: "num issued", text: c.issued_count }), el("td", { class: "num used", text: c.used }), el("td", { class: "num", text: c.remaining }),
      el("td", {}, el("span", { class: `badge ${cls}`, text: label })), actions));
  }
  if (!selected && campaigns.length) await show(campaigns[campaigns.length - 1].campaign_id);
  else if (selected) await show(selected);
}

async function setStatus(c, status) {
  await api(`campaigns/${encodeURIComponent(c.campaign_id)}/status`, { method: "POST", json: { status } });
  toast(status === "paused" ? "已暂停：不再发券" : "已恢复发券");
  await load();
}

async function show(cid) {
  selected = cid;
  const d = await api(`campaigns/${encodeURIComponent(cid)}/burndown`);
  const c = campaigns.find((x) => x.campaign_id === cid);
  $("#burndown-title").textContent = `${c ? c.title : cid} · 预算 ${d.budget} 张，已发 ${d.issued}，已用 ${d.used}`;
  if (!window.echarts) return;
  chart = chart || window.echarts.init($("#chart-burndown"));
  const t = d.points.map((p) => new Date(p.at * 1000).toLocaleTimeString("zh-CN", { hour12: false, hour: "2-digit", minute: "2-digit" }));
  chart.setOption({
    animation: false, tooltip: { trigger: "axis" }, legend: { data: ["剩余预算", "已发", "已用"] }, grid: { left: 44, right: 16, top: 32, bottom: 28 },
    xAxis: { type: "category", data: t }, yAxis: { type: "value", min: 0, max: d.budget },
    series: [
      { name: "剩余预算", type: "line", data: d.points.map((p) => p.remaining), areaStyle: { opacity: 0.12 }, showSymbol: false },
      { name: "已发", type: "line", data: d.points.map((p) => p.issued), showSymbol: false },
      { name: "已用", type: "line", data: d.points.map((p) => p.used), showSymbol: false },
    ],
  });
  $("#chart-burndown").dataset.points = String(d.points.length);
}

// ----------------------------------------------------------------------------- create / edit form
const num = (id) => { const v = $(id).value.trim(); return v === "" ? null : Number(v); };
const toIso = (v) => (v ? new Date(v).toISOString() : null);
const toLocal = (s) => { if (!s) return ""; const d = new Date(s); const z = new Date(d.getTime() - d.getTimezoneOffset() * 60000); return z.toISOString().slice(0, 16); };

function kindChanged() {
  const amount = $("#cf-kind").value === "amount";
  $$(".kind-amount").forEach((n) => n.classList.toggle("hidden", !amount));
  $$(".kind-discount").forEach((n) => n.classList.toggle("hidden", amount));
}

function formValue(editing) {
  const tiers = $$("#cf-tiers input[type=checkbox][value]").filter((b) => b.checked).map((b) => b.value);
  const common = {
    title: $("#cf-title").value.trim(), budget_count: num("#cf-budget"), budget_money: num("#cf-budget-money"),
    per_viewer_limit: num("#cf-limit"), eligible_tiers: tiers, eligible_tags: splitList($("#cf-tags").value),
    members_only: $("#cf-members").checked, valid_from: toIso($("#cf-from").value), valid_until: toIso($("#cf-until").value),
  };
  if (editing) return Object.fromEntries(Object.entries(common).filter(([, v]) => v !== null));
  const kind = $("#cf-kind").value;
  return { ...common, kind, amount: kind === "amount" ? num("#cf-amount") : null, discount: kind === "discount" ? num("#cf-discount") : null,
    max_off: kind === "discount" ? num("#cf-max-off") : null, threshold: num("#cf-threshold") || 0, skus: splitList($("#cf-skus").value) };
}

function edit(c) {
  $("#cf-id").value = c.campaign_id; $("#camp-form-title").textContent = `编辑：${c.title}`;
  $("#cf-title").value = c.title; $("#cf-kind").value = c.kind; kindChanged();
  $("#cf-amount").value = c.amount ?? ""; $("#cf-discount").value = c.discount ?? ""; $("#cf-max-off").value = c.max_off ?? ""; $("#cf-threshold").value = c.threshold;
  $("#cf-budget").value = c.budget_count; $("#cf-budget-money").value = c.budget_money ?? ""; $("#cf-limit").value = c.per_viewer_limit;
  $$("#cf-tiers input[type=checkbox][value]").forEach((b) => { b.checked = c.eligible_tiers.includes(b.value); });
  $("#cf-members").checked = c.members_only; $("#cf-tags").value = c.eligible_tags.join("、"); $("#cf-skus").value = c.skus.join("、");
  $("#cf-from").value = toLocal(c.valid_from); $("#cf-until").value = toLocal(c.valid_until);
  // what a coupon is worth and where it applies stay fixed once created
  for (const id of ["#cf-kind", "#cf-amount", "#cf-discount", "#cf-max-off", "#cf-threshold", "#cf-skus"]) $(id).disabled = true;
  $("#cf-submit").textContent = "保存修改"; $("#cf-cancel").classList.remove("hidden");
}

function resetForm() {
  $("#camp-form").reset(); $("#cf-id").value = ""; $("#camp-form-title").textContent = "新建活动";
  for (const id of ["#cf-kind", "#cf-amount", "#cf-discount", "#cf-max-off", "#cf-threshold", "#cf-skus"]) $(id).disabled = false;
  $("#cf-submit").textContent = "创建活动"; $("#cf-cancel").classList.add("hidden"); kindChanged();
}

function init() {
  guard(load)();
  const form = $("#camp-form");
  if (!form) return;
  $("#cf-kind").addEventListener("change", kindChanged);
  $("#cf-cancel").addEventListener("click", resetForm);
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const cid = $("#cf-id").value;
    clear($("#cf-problems"));
    try {
      if (cid) await api(`campaigns/${encodeURIComponent(cid)}`, { method: "PATCH", json: formValue(true) });
      else { const c = await api("campaigns", { method: "POST", json: formValue(false) }); selected = c.campaign_id; }
    } catch (e) {
      $("#cf-problems").append(el("li", { text: e.message }));
      throw e;
    }
    toast(cid ? "活动已更新" : "活动已创建");
    resetForm();
    await load();
  }));
}

init();
