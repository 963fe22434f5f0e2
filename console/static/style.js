// The answer-style page: edit the merchant's style, check it, preview it side by side on the merchant's
// own questions, publish, restore an old version.
import { $, CAN_WRITE, api, clear, el, fmtTime, guard, splitList, toast } from "./common.js";

function value() {
  return {
    greeting: $("#st-greeting").value.trim(), sign_off: $("#st-signoff").value.trim(), tone: $("#st-tone").value,
    address: $("#st-address").value, banned_words: splitList($("#st-banned").value),
    always_mention: $("#st-mention").value.split("\n").map((s) => s.trim()).filter(Boolean),
  };
}

function fill(st) {
  $("#st-greeting").value = st.greeting; $("#st-signoff").value = st.sign_off; $("#st-tone").value = st.tone;
  $("#st-address").value = st.address; $("#st-banned").value = st.banned_words.join("、"); $("#st-mention").value = st.always_mention.join("\n");
}

function showProblems(list) {
  const ul = clear($("#style-problems"));
  ul.classList.toggle("ok", !list.length);
  if (!list.length) ul.append(el("li", { text: "检查通过：风格只加固定话术，不加数字或说法" }));
  for (const p of list) ul.append(el("li", { text: p }));
}

async function check() {
  const d = await api("style/check", { method: "POST", json: value() });
  showProblems(d.problems);
  return d.problems;
}

async function load() {
  const d = await api("style");
  fill(d.style);
  $("#style-version").textContent = d.version ? `已发布 v${d.version}` : "未设置";
  if (!$("#st-questions").value.trim()) $("#st-questions").value = d.questions.join("\n");
  const tb = clear($("#style-history tbody"));
  $("#style-history-empty").classList.toggle("hidden", d.history.length > 0);
  for (const h of d.history) {
    const act = el("td");
    if (h.published) act.append(el("span", { class: "badge on", text: "使用中" }));
    else if (CAN_WRITE) act.append(el("button", { class: "small", type: "button", text: "恢复此版本", onclick: guard(async () => {
      await api(`style/restore/${h.version}`, { method: "POST" }); toast(`已恢复 v${h.version}`); await load();
    }) }));
    tb.append(el("tr", {}, el("td", { text: `v${h.version}` }), el("td", { text: h.author }), el("td", { text: fmtTime(h.at) }), el("td", { text: h.note || "" }), act));
  }
}

async function preview() {
  const btn = $("#style-preview");
  btn.disabled = true;
  try {
    const questions = $("#st-questions").value.split("\n").map((s) => s.trim()).filter(Boolean).slice(0, 8);
    let d;
    try { d = await api("style/preview", { method: "POST", json: { style: value(), questions } }); } catch (e) {
      if (e.data?.problems) showProblems(e.data.problems);
      throw e;
    }
    showProblems([]);
    const tb = clear($("#style-rows tbody"));
    for (const r of d.rows) tb.append(el("tr", {}, el("td", { text: r.question }), el("td", { class: "was", text: r.published.answer }), el("td", { class: "now", text: r.draft.answer })));
  } finally { btn.disabled = false; }
}

function init() {
  guard(load)();
  $("#style-form").addEventListener("change", guard(check));
  $("#style-preview").addEventListener("click", guard(preview));
  $("#style-publish")?.addEventListener("click", guard(async () => {
    try { await api("style/publish", { method: "POST", json: { style: value(), note: $("#style-note").value.trim() } }); } catch (e) {
      if (e.data?.problems) showProblems(e.data.problems);
      throw e;
    }
    toast("风格已发布：之后的每条回答都按它来");
    await load();
  }));
}

init();
