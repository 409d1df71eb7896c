// The outlier inspector: the pairs β-guided filtering dropped, with their texts side by side —
// by pair (how often filtered of how often seen), by occurrence (M, z, weight, step), or every pair
// of one step (opened by clicking a step on any chart of the run page).

import { api, message } from "../api.js";
import { baseLayout, draw } from "../charts.js";
import { h, replace, stateBox } from "../dom.js";
import { num } from "../format.js";
import { K } from "../keys.js";
import { calibrationScope } from "../run/advice.js";

const PAGE = 50;
const SORTS = {
  "discrepancy-desc": { order: "discrepancy", descending: true, label: "discrepancy, high first" },
  "discrepancy-asc": { order: "discrepancy", descending: false, label: "discrepancy, low first" },
  "z-desc": { order: "z", descending: true, label: "z, high first" },
  "z-asc": { order: "z", descending: false, label: "z, low first" },
  "step-desc": { order: "step", descending: true, label: "step, latest first" },
};
const SIDES = { all: "all filtered", high: "high discrepancy (z > 0)", low: "low or negative (z < 0)" };

export async function mount(root, { id, params }) {
  const run = await api.run(id);
  const drawn = calibrationScope(run.config) === "batch" ? "optimizer step (β-DPO scope batch)" : "micro-batch";
  const state = { tab: params.has("step") ? "step" : params.get("tab") || "pairs", step: Number(params.get("step") ?? NaN),
    side: params.get("side") || "all", sort: params.get("sort") || "discrepancy-desc" };
  const m0 = await api.metrics(id, [K.m0], 5).then((m) => lastValue(m.series[K.m0])).catch(() => null);
  const body = h("div", { id: "pairs-body" });
  const go = (changes) => {
    const next = { ...state, ...changes };
    const search = new URLSearchParams({ tab: next.tab, side: next.side, sort: next.sort });
    if (next.tab === "step" && Number.isInteger(next.step)) search.set("step", String(next.step));
    location.hash = `#/run/${id}/pairs?${search}`;
  };
  const tab = (name, text) => h("button", { class: state.tab === name ? "active" : "", dataset: { tab: name },
    onclick: () => go({ tab: name }) }, text);
  const stepInput = h("input", { type: "number", min: 0, value: Number.isInteger(state.step) ? state.step : "",
    placeholder: "step", style: "width:90px", onchange: (e) => go({ tab: "step", step: Number(e.target.value) }) });
  replace(root,
    h("div", { class: "page-head" },
      h("h1", {}, "Outlier inspector"),
      h("a", { href: `#/run/${id}` }, `← ${run.name}`),
      h("span", { class: "muted small" }, `M0 now ${num(m0, 3)} (u-units) · β-guided filtering keeps pairs near M0`)),
    h("p", { class: "muted small", id: "random-note" }, `Filtering is random: in each ${drawn} it keeps ⌊N·ρ⌋ pairs `
      + "drawn without replacement by weight exp(−(M−M0)²/2σ²), so a pair can be dropped while one with a lower weight "
      + `is kept. “keep chance” is the probability that a pair was kept, given the ${drawn} it was drawn in (estimated `
      + "from 4,000 draws). High / low side is judged against the M0 of the step the pair was filtered in."),
    h("div", { class: "controls card" },
      h("div", { class: "tabs" }, tab("pairs", "Filtered pairs"), tab("suspicious", "Most suspicious"),
        tab("records", "Filtered occurrences"), tab("step", "One step")),
      h("label", {}, "step", stepInput),
      !["step", "suspicious"].includes(state.tab) ? h("label", {}, "show", select(SIDES, state.side, (side) => go({ side }), "side")) : null,
      state.tab === "records" && state.side === "all" ? h("label", {}, "sort", select(Object.fromEntries(Object.entries(SORTS)
        .map(([k, v]) => [k, v.label])), state.sort, (sort) => go({ sort }), "sort")) : null),
    body);
  replace(body, stateBox("loading", "Loading pairs…"));
  try {
    if (state.tab === "step" && Number.isInteger(state.step)) await stepView(body, id, state.step);
    else if (state.tab === "step") replace(body, stateBox("empty", "Enter a step, or click a step on any chart of the run page."));
    else if (state.tab === "records") await recordsView(body, id, state);
    else if (state.tab === "suspicious") await suspiciousView(body, id);
    else await summaryView(body, id, state, run);
  } catch (error) {
    replace(body, stateBox("error", `Could not load pairs: ${message(error)}`));
  }
  return undefined;
}

function select(options, value, onChange, name) {
  return h("select", { name, onchange: (e) => onChange(e.target.value) },
    Object.entries(options).map(([k, text]) => h("option", { value: k, selected: k === value }, text)));
}

function lastValue(series) {
  if (!series) return null;
  for (let i = series.values.length - 1; i >= 0; i -= 1) if (series.values[i] !== null) return series.values[i];
  return null;
}

/** A pair with its numbers in a header row and prompt / chosen / rejected side by side. */
export function pairCard(pair, facts, kept = null) {
  return h("article", { class: "pair", dataset: { pairId: pair.pair_id } },
    h("div", { class: "pair-head" },
      kept === null ? null : h("span", { class: `badge ${kept ? "kept" : "filtered"}` }, kept ? "kept" : "filtered"),
      keepChance(pair),
      facts.map(([name, value]) => h("span", {}, h("span", { class: "muted" }, `${name} `), h("strong", {}, value))),
      h("span", { class: "muted mono" }, pair.pair_id)),
    h("div", { class: "pair-texts" },
      h("div", { class: "prompt" }, h("h4", {}, "prompt"), h("pre", {}, pair.prompt ?? "(text not recorded)")),
      h("div", { class: "chosen" }, h("h4", {}, "chosen"), h("pre", {}, pair.chosen ?? "—")),
      h("div", { class: "rejected" }, h("h4", {}, "rejected"), h("pre", {}, pair.rejected ?? "—"))));
}

/** "keep chance 62 %" next to a record's kept/filtered badge (null for a pair summary). */
function keepChance(pair) {
  if (pair.keep_probability === null || pair.keep_probability === undefined) return null;
  return h("span", { class: "keep-chance", title: "probability that filtering kept this pair, given its micro-batch" },
    h("span", { class: "muted" }, "keep chance "), h("strong", {}, `${Math.round(100 * pair.keep_probability)} %`));
}

/** A filtered pair's side: the sign of its mean z over the times it was filtered, each z against the M0
 * and σ of that step (not today's M0). */
function sideOf(r) {
  if (r.mean_filtered_z === null || r.mean_filtered_z === undefined) return "all";
  return r.mean_filtered_z > 0 ? "high" : "low";
}

async function summaryView(body, id, state, run) {
  const rows = await api.pairSummary(id, { kept: false, limit: 200 });
  const side = sideOf;
  const shown = rows.filter((r) => state.side === "all" || side(r) === state.side);
  if (!shown.length) {
    const filtering = run.config?.beta_dpo?.enabled && run.config?.beta_dpo?.filtering;
    replace(body, stateBox("empty", rows.length ? "No filtered pair on this side."
      : filtering ? "No pair has been filtered yet." : "This run filters nothing (β-guided filtering is off); open a step to see its pairs."));
    return;
  }
  const card = (r) => pairCard(r, [
    ["filtered", `${r.times_filtered} of ${r.times_seen}`],
    ["mean M", num(r.mean_discrepancy, 4)],
    ["side", side(r) === "high" ? "high" : side(r) === "low" ? "low / negative" : "—"],
    ["mean z when filtered", num(r.mean_filtered_z, 3)],
    ["steps", `${r.first_step}–${r.last_step}`],
  ]);
  const list = h("div", { id: "summary" }, shown.slice(0, PAGE).map(card));
  let count = PAGE;
  const more = h("button", { hidden: shown.length <= PAGE, onclick: () => {
    list.append(...shown.slice(count, count + PAGE).map(card));
    count += PAGE;
    more.hidden = count >= shown.length;
  } }, "Show more");
  replace(body,
    h("p", { class: "muted small" }, `${shown.length} pairs filtered at least once, most often first. `
      + "High: filtered above the M0 of its step (easy or uninformative); low/negative: below it (possibly "
      + "mislabelled)."),
    list, more);
}

/** Every pair by its noise score (mean of max(0, −z) over its records), planted pairs marked. */
async function suspiciousView(body, id) {
  const rows = await api.pairSummary(id, { order: "noise_score", limit: 200 });
  if (!rows.length || rows[0].noise_score === null) {
    replace(body, stateBox("empty", rows.length ? "The noise score needs β-DPO's M0 and σ: enable beta_dpo "
      + "(dynamic_beta and filtering may both be off, the loss is then plain DPO)." : "No pair records yet."));
    return;
  }
  const planted = rows.filter((r) => r.planted !== null);
  const card = (r) => {
    const node = pairCard(r, [["noise score", num(r.noise_score, 3)], ["filtered below M0", `${r.times_filtered_below} of ${r.times_seen}`],
      ["mean M", num(r.mean_discrepancy, 4)]]);
    node.dataset.noiseScore = String(r.noise_score);
    if (r.planted) node.querySelector(".pair-head").prepend(h("span", { class: "badge planted", title: "label noise "
      + "planted by data.label_noise: chosen and rejected were swapped on purpose" }, "planted"));
    return node;
  };
  replace(body, h("p", { class: "muted small" }, "Most suspicious first: the noise score is how far below M0, in σ, "
    + "a pair sat on average over its records (0 = never below). A mislabelled pair is learnt the other way round, "
    + "so it sinks below M0."
    + (planted.length ? ` This run planted label noise: ${planted.filter((r) => r.planted).length} of the top `
      + `${rows.length} are planted pairs.` : "")),
  h("div", { id: "suspicious" }, rows.slice(0, PAGE * 2).map(card)));
}

async function recordsView(body, id, state) {
  const sort = SORTS[state.sort] || SORTS["discrepancy-desc"];
  const bySide = state.side === "high" ? { order: "z", descending: true } : state.side === "low" ? { order: "z", descending: false } : sort;
  const keep = (r) => state.side === "all" || (state.side === "high" ? r.z > 0 : r.z < 0);
  const list = h("div", { id: "records" });
  const more = h("button", {}, "Load more");
  let offset = 0;
  const loadPage = async () => {
    more.disabled = true;
    const page = await api.pairs(id, { kept: false, order: bySide.order, descending: bySide.descending, limit: PAGE, offset });
    offset += page.length;
    const shown = page.filter(keep);
    for (const r of shown) list.append(recordCard(r));
    const sideEnded = page.length > shown.length && state.side !== "all";
    more.hidden = page.length < PAGE || sideEnded;
    more.disabled = false;
    if (!list.childElementCount) replace(list, stateBox("empty", "No filtered occurrence here."));
  };
  more.addEventListener("click", loadPage);
  replace(body, h("p", { class: "muted small" }, "Each time a pair was filtered out: its discrepancy M, "
    + "z = (M − M0)/σ, its filter weight exp(−z²/2) and the step."), list, more);
  await loadPage();
}

function recordCard(r, kept = null) {
  return pairCard(r, [["step", String(r.step)], ["M", num(r.discrepancy, 4)], ["z", num(r.z, 3)],
    ["weight", num(r.filter_weight, 3)], ["β", num(r.beta, 3)]], kept);
}

async function stepView(body, id, step) {
  const rows = await api.pairs(id, { step, order: "discrepancy", descending: true, limit: 1000 });
  if (!rows.length) {
    replace(body, stateBox("empty", `No pair records at step ${step} (pairs are recorded when diagnostics.pair_records is on).`));
    return;
  }
  const chart = h("div", { class: "chart", id: "chart-step", style: "min-height:210px" });
  const filtered = rows.filter((r) => !r.kept).length;
  replace(body, h("div", { class: "card" }, chart,
    h("p", { class: "muted small" }, `Step ${step}: ${rows.length} pairs, ${filtered} filtered.`)),
  rows.map((r) => recordCard(r, r.kept)));
  await drawStep(chart, rows, step);
}

async function drawStep(node, rows, step) {
  const withM = rows.filter((r) => r.discrepancy !== null);
  const m0 = withM.find((r) => r.m0 !== null)?.m0 ?? null;
  const sigma = withM.find((r) => r.sigma !== null)?.sigma ?? null;
  const trace = (kept) => {
    const part = withM.filter((r) => r.kept === kept);
    return { type: "scatter", mode: "markers", name: kept ? "kept" : "filtered", x: part.map((r) => r.discrepancy),
      y: part.map((r) => r.micro_batch), customdata: part.map((r) => [r.pair_id, r.z, r.filter_weight]),
      marker: { symbol: kept ? "circle" : "x", size: 8, color: kept ? "#2ca02c" : "#d62728" },
      hovertemplate: "M %{x:.4g}, z %{customdata[1]:.2f}, weight %{customdata[2]:.3f}<br>pair %{customdata[0]}<extra></extra>" };
  };
  const layout = baseLayout(`Discrepancy of each pair at step ${step}`, { hovermode: "closest", height: 210,
    legend: { orientation: "v", x: 1.01, y: 1, font: { size: 11 } } });
  layout.xaxis.title = { text: "M (u-units)" };
  layout.yaxis.title = { text: "micro-batch" };
  layout.yaxis.dtick = 1;
  if (m0 !== null && sigma !== null) {
    layout.shapes = [{ type: "rect", xref: "x", yref: "paper", x0: m0 - 2 * sigma, x1: m0 + 2 * sigma, y0: 0, y1: 1,
      fillcolor: "rgba(255,127,14,0.12)", line: { width: 0 } },
    { type: "line", xref: "x", yref: "paper", x0: m0, x1: m0, y0: 0, y1: 1, line: { color: "#ff7f0e", dash: "dash" },
      label: { text: "M0 ± 2σ", textposition: "end", textangle: 0, font: { size: 10, color: "#ff7f0e" } } }];
  }
  await draw(node, [trace(true), trace(false)], layout);
}
