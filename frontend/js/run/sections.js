// The run page's sections: a panel per chart spec, the 3D-properties section (two charts, alerts,
// current slopes), the discrepancy panel, the "any metric" panel, and the win-rate panel.

import { LineChart } from "../charts.js";
import { h, replace } from "../dom.js";
import { K, label } from "../keys.js";
import { alertList, slopeReadout } from "./alerts.js";
import { DiscrepancyPanel } from "./discrepancy.js";
import { drawWinRates, JUDGE_KEYS, judgeUsage } from "./evals.js";

const DISCREPANCY_NOTE = "Bands: 10–90 % and 25–75 % of M over the step's pairs; line: median. Orange: "
  + "M0 ± 2σ — β-guided filtering keeps pairs near M0 (weight exp(−(M−M0)²/2σ²)). Red ×: filtered pairs "
  + "(above: high discrepancy, below: low or negative, possibly mislabelled). Click a step to open its pairs.";

/** What an empty chart panel says while the run has no points. */
export function waiting(run) {
  if (run.status === "queued") return "Queued: waiting for a worker to start this run…";
  if (run.status === "running" && run.step) return `Running at step ${run.step}: loading its points…`;
  if (run.status === "running") return "Running: waiting for the first logged step…";
  return `No points were recorded (the run is ${run.status}).`;
}

/** A `<section class="panel" hidden>`; `panels` (key → node) remembers it for showing/hiding. */
export function panel(panels, key, wide, ...children) {
  const node = h("section", { class: `panel${wide ? " wide" : ""}`, id: `panel-${key}`, hidden: true }, children);
  panels.set(key, node);
  return node;
}

/** A chart panel with a title and an empty state (shown before the first point): a chart entry. */
export function chartPanel(panels, spec, run, onStep) {
  const node = h("div", { class: "chart", id: `chart-${spec.id}` });
  const empty = h("div", { class: "state state-empty", hidden: true }, waiting(run));
  const title = h("h3", { class: "panel-title", hidden: true }, spec.title);
  panel(panels, spec.id, false, title, node, empty, h("p", { class: "note" }, spec.note));
  return { spec, chart: new LineChart(node, { ...spec, onStep }), empty, title, panelKey: spec.id };
}

/** The 3D section: per-token log-ratios and S_l charts (entries pushed to `charts`), alerts, slopes. */
export function threeDSection(panels, specs, charts, onStep) {
  const alerts = h("div", { id: "alerts" });
  const slopes = h("div");
  const column = (spec) => {
    const node = h("div", { class: "chart", id: `chart-${spec.id}` });
    charts.push({ spec, chart: new LineChart(node, { ...spec, onStep }) });
    return h("div", {}, node, h("p", { class: "note" }, spec.note));
  };
  const parts = [specs.get("logratios"), specs.get("share")];
  panel(panels, "threed", true, h("h2", {}, "3D properties: drastic drop, degradation, dispersion"),
    h("div", { class: "threed" }, parts.map(column)),
    h("div", { class: "threed-foot" }, h("div", {}, h("h3", {}, "Alerts"), alerts), h("div", {}, h("h3", {}, "Now"), slopes)));
  return {
    present: (store) => parts.some((spec) => spec.traces.some((t) => store.has(t.key))),
    update: (store) => {
      replace(alerts, alertList(store));
      replace(slopes, slopeReadout(store));
    },
  };
}

/** The discrepancy distribution panel (shown once pair records exist). */
export function discrepancySection(panels, runId, onStep) {
  const node = h("div", { class: "chart", id: "chart-discrepancy" });
  panel(panels, "discrepancy", false, node, h("p", { class: "note" }, DISCREPANCY_NOTE));
  return new DiscrepancyPanel(node, runId, onStep, () => { panels.get("discrepancy").hidden = false; });
}

/** Win rates by temperature (shown once the run has evaluations), with the judge's usage and cost
 * (the eval/judge/* running totals an OpenAI-compatible judge records). */
export function winRateSection(panels, runId, api) {
  const node = h("div", { class: "chart", id: "chart-evals" });
  const usage = h("p", { class: "note", id: "judge-usage", hidden: true });
  panel(panels, "evals", false, node, usage);
  return async () => {
    const records = await api.evaluations(runId).catch(() => []);
    panels.get("evals").hidden = records.length === 0;
    if (!records.length) return;
    await drawWinRates(node, records);
    const totals = await api.metrics(runId, JUDGE_KEYS, 10).catch(() => null);
    const text = judgeUsage(totals?.series ?? {});
    usage.hidden = !text;
    usage.textContent = text;
  };
}

/** Any metric of the run, picked from a select. Returns {render(), extend(fresh)}. */
export function anyMetricSection(panels, store, view, onStep) {
  const select = h("select", { id: "other-key", "aria-label": "metric" });
  const node = h("div", { class: "chart", id: "chart-other" });
  panel(panels, "other", false, h("div", { class: "controls" }, h("label", {}, "Any metric", select)), node);
  let chart = null;
  let key = null;
  const render = async () => {
    const keys = store.keys();
    panels.get("other").hidden = keys.length === 0;
    if (!key) key = keys.includes(K.logpsChosen) ? K.logpsChosen : keys[0];
    if (!key) return;
    if (select.options.length !== keys.length) {
      replace(select, keys.map((k) => h("option", { value: k, selected: k === key }, k)));
    }
    chart?.destroy();
    chart = new LineChart(node, { title: label(key), traces: [{ key, name: label(key), color: "#1f77b4" }], onStep });
    await chart.render(store, view);
  };
  select.addEventListener("change", () => {
    key = select.value;
    render();
  });
  return {
    render,
    extend: async (fresh) => (chart ? (fresh.has(key) ? chart.extend(store, fresh, view) : undefined) : render()),
  };
}
