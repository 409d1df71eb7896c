// Pair-level comparison of runs: one pair's discrepancy across runs (kept ● / filtered ×) — what
// β-DPO dropped that DPO kept learning from — and the discrepancy distributions overlaid.

import { api } from "../api.js";
import { baseLayout, draw, wholeSteps } from "../charts.js";
import { h, replace, stateBox } from "../dom.js";
import { pairCard } from "../pages/pairs.js";

const PAGE = 1000;
const MAX_RECORDS = 10000;

/** Every pair record of a run (newest first, up to MAX_RECORDS); `pair_id` narrows it when the API
 * supports the filter, and the records are filtered here as well. */
async function records(runId, pairId = null) {
  const out = [];
  for (let offset = 0; offset < MAX_RECORDS; offset += PAGE) {
    const page = await api.pairs(runId, { order: "step", descending: true, limit: PAGE, offset, pair_id: pairId });
    out.push(...(pairId ? page.filter((r) => r.pair_id === pairId) : page));
    if (page.length < PAGE) break;
  }
  return out;
}

/** The pair-aligned view and the overlaid distributions, drawn into `node`. colors: run id → color. */
export async function pairViews(node, runs, labels, colors) {
  const summaries = await Promise.all(runs.map((r) => api.pairSummary(r.id, { kept: false, limit: 100 }).catch(() => [])));
  const candidates = new Map();
  summaries.flat().forEach((s) => {
    const seen = candidates.get(s.pair_id);
    if (!seen || s.times_filtered > seen.times_filtered) candidates.set(s.pair_id, s);
  });
  const all = await Promise.all(runs.map((r) => records(r.id)));
  const distribution = h("div", { class: "chart", id: "chart-distribution" });
  const aligned = h("div", { class: "chart", id: "chart-pair-aligned" });
  const texts = h("div", { id: "pair-texts" });
  const choose = h("select", { id: "pair-select", "aria-label": "pair" },
    [...candidates.values()].sort((a, b) => b.times_filtered - a.times_filtered)
      .map((s) => h("option", { value: s.pair_id }, `${s.pair_id} · filtered ${s.times_filtered}/${s.times_seen} · ${clip(s.prompt)}`)));
  replace(node,
    h("div", { class: "multiples" },
      h("section", { class: "panel" }, distribution, h("p", { class: "note" },
        "Discrepancy M of every recorded pair (all steps), one histogram per run.")),
      h("section", { class: "panel" },
        h("div", { class: "controls" }, h("label", {}, "pair", choose)), aligned,
        h("p", { class: "note" }, "One pair across runs: ● kept, × filtered. A pair β-DPO filtered while DPO kept "
          + "learning from it shows as × in one run and ● in the other."))),
    texts);
  await drawDistributions(distribution, runs, all, labels, colors);
  const show = async () => {
    const id = choose.value;
    if (!id) {
      replace(aligned, stateBox("empty", "No run filtered any pair, so there is no outlier to align."));
      return;
    }
    const perRun = all.map((list) => list.filter((r) => r.pair_id === id));
    const found = perRun.flat()[0] || candidates.get(id);
    replace(texts, found ? pairCard(found, [["pair", "aligned across the runs above"]]) : "");
    await drawAligned(aligned, runs, perRun, labels, colors, id);
  };
  choose.addEventListener("change", show);
  await show();
}

async function drawDistributions(node, runs, all, labels, colors) {
  const traces = runs.map((r, i) => ({
    type: "histogram", name: labels.get(r.id), x: all[i].map((p) => p.discrepancy).filter((v) => v !== null),
    opacity: 0.5, marker: { color: colors.get(r.id) }, nbinsx: 40,
    hovertemplate: "M %{x}: %{y} pairs<extra>%{fullData.name}</extra>",
  }));
  const layout = baseLayout("Discrepancy distributions", { barmode: "overlay", hovermode: "closest" });
  layout.xaxis.title = { text: "M (u-units)", font: { size: 10 }, standoff: 2 };
  await draw(node, traces, layout);
}

async function drawAligned(node, runs, perRun, labels, colors, pairId) {
  const traces = runs.map((r, i) => {
    const list = [...perRun[i]].sort((a, b) => a.step - b.step);
    return {
      type: "scatter", mode: "lines+markers", name: labels.get(r.id), x: list.map((p) => p.step), y: list.map((p) => p.discrepancy),
      marker: { symbol: list.map((p) => (p.kept ? "circle" : "x")), size: 9, color: colors.get(r.id) },
      line: { color: colors.get(r.id), width: 1, dash: "dot" },
      customdata: list.map((p) => [p.kept ? "kept" : "filtered", p.z, p.filter_weight]),
      hovertemplate: "step %{x}: M %{y:.4g}, %{customdata[0]}, z %{customdata[1]:.2f}<extra>%{fullData.name}</extra>",
    };
  });
  const layout = baseLayout(`Pair ${pairId}: discrepancy across runs`, { hovermode: "closest" });
  layout.xaxis.title = { text: "step", font: { size: 10 }, standoff: 2 };
  wholeSteps(layout.xaxis, perRun.flat().map((p) => p.step));
  await draw(node, traces, layout);
}

function clip(text) {
  const s = String(text ?? "");
  return s.length > 40 ? `${s.slice(0, 39)}…` : s;
}
