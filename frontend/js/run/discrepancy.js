// The reward-discrepancy distribution over time, from the run's pair records (GET /pairs): per-step
// quantile bands of M, the M0 ± 2σ band β-guided filtering keeps pairs near, and the filtered pairs
// marked. New steps arrive as SSE `pairs` events and are fetched in batches.

import { api } from "../api.js";
import { baseLayout, draw, purge, wholeSteps, xMapper } from "../charts.js";

const PAGE = 1000;
const MAX_RECORDS = 8000; // most recent pair records loaded for the chart
const REFRESH_MS = 1000;
const K_SIGMA = 2;

/** q-quantile (0..1) of sorted numbers, linear interpolation. */
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

export class DiscrepancyPanel {
  /** onStep(step): a click on a step; onData(): the first records arrived (show the panel). */
  constructor(node, runId, onStep, onData) {
    this.node = node;
    this.runId = runId;
    this.onStep = onStep;
    this.onData = onData;
    this.records = new Map(); // "step/micro_batch/pair_id" → record
    this.dirtySince = null; // smallest step announced by a `pairs` event and not fetched yet
    this.timer = null;
    this.view = null;
    this.timeOf = null;
  }

  /** Load the most recent records (newest steps first). Returns how many were loaded. */
  async load() {
    for (let offset = 0; offset < MAX_RECORDS; offset += PAGE) {
      const page = await api.pairs(this.runId, { order: "step", descending: true, limit: PAGE, offset });
      this.add(page);
      if (page.length < PAGE) break;
    }
    return this.records.size;
  }

  add(records) {
    for (const r of records) this.records.set(`${r.step}/${r.micro_batch}/${r.pair_id}`, r);
  }

  /** A `pairs` SSE event: fetch that step (batched with the others announced meanwhile). */
  announce(step) {
    this.dirtySince = this.dirtySince === null ? step : Math.min(this.dirtySince, step);
    if (this.timer === null) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    this.timer = null;
    const since = this.dirtySince;
    this.dirtySince = null;
    if (since === null) return;
    const page = await api.pairs(this.runId, { order: "step", descending: true, limit: PAGE });
    this.add(page.filter((r) => r.step >= since));
    if (!this.records.size || !this.view) return;
    this.onData();
    await this.render(this.view, this.timeOf);
  }

  /** Per step: quantiles of M, M0 and σ (means over micro-batches), filtered records. */
  summarize() {
    const bySteps = new Map();
    for (const r of this.records.values()) {
      if (r.discrepancy === null) continue;
      if (!bySteps.has(r.step)) bySteps.set(r.step, []);
      bySteps.get(r.step).push(r);
    }
    const steps = [...bySteps.keys()].sort((a, b) => a - b);
    const rows = steps.map((step) => {
      const group = bySteps.get(step);
      const values = group.map((r) => r.discrepancy).sort((a, b) => a - b);
      const m0s = group.map((r) => r.m0).filter((v) => v !== null);
      const sigmas = group.map((r) => r.sigma).filter((v) => v !== null);
      const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
      return { step, q: [0.1, 0.25, 0.5, 0.75, 0.9].map((q) => quantile(values, q)), m0: mean(m0s), sigma: mean(sigmas) };
    });
    const filtered = [...this.records.values()].filter((r) => !r.kept && r.discrepancy !== null);
    return { rows, filtered };
  }

  traces(mapX) {
    const { rows, filtered } = this.summarize();
    const x = rows.map((r) => mapX(r.step));
    const steps = rows.map((r) => [r.step]);
    const band = (i, name, fill, color) => ({
      type: "scatter", mode: "lines", name, x, y: rows.map((r) => r.q[i]), line: { width: 0, color },
      fill, fillcolor: color, customdata: steps, hoverinfo: "skip", showlegend: Boolean(fill), legendgroup: name,
    });
    const traces = [
      band(0, "10–90 %", null, "rgba(31,119,180,0.15)"), band(4, "10–90 %", "tonexty", "rgba(31,119,180,0.15)"),
      band(1, "25–75 %", null, "rgba(31,119,180,0.3)"), band(3, "25–75 %", "tonexty", "rgba(31,119,180,0.3)"),
      { type: "scatter", mode: "lines", name: "median M", x, y: rows.map((r) => r.q[2]), customdata: steps,
        line: { color: "#1f77b4", width: 1.6 }, hovertemplate: "median M %{y:.4g} · step %{customdata[0]}<extra></extra>" },
    ];
    if (rows.some((r) => r.m0 !== null)) {
      const edge = (sign) => rows.map((r) => (r.m0 === null || r.sigma === null ? null : r.m0 + sign * K_SIGMA * r.sigma));
      traces.push(
        { type: "scatter", mode: "lines", name: "M0", x, y: rows.map((r) => r.m0), customdata: steps,
          line: { color: "#ff7f0e", width: 1.4 }, hovertemplate: "M0 %{y:.4g}<extra></extra>" },
        { type: "scatter", mode: "lines", name: `M0 ± ${K_SIGMA}σ`, x, y: edge(1), customdata: steps,
          line: { color: "#ff7f0e", width: 1, dash: "dash" }, legendgroup: "band", hovertemplate: `M0+${K_SIGMA}σ %{y:.4g}<extra></extra>` },
        { type: "scatter", mode: "lines", name: `M0 − ${K_SIGMA}σ`, x, y: edge(-1), customdata: steps, showlegend: false,
          line: { color: "#ff7f0e", width: 1, dash: "dash" }, legendgroup: "band", hovertemplate: `M0−${K_SIGMA}σ %{y:.4g}<extra></extra>` },
      );
    }
    if (filtered.length) {
      traces.push({
        type: filtered.length > 5000 ? "scattergl" : "scatter", mode: "markers", name: "filtered pairs",
        x: filtered.map((r) => mapX(r.step)), y: filtered.map((r) => r.discrepancy),
        customdata: filtered.map((r) => [r.step, r.z, r.filter_weight, r.pair_id]),
        marker: { symbol: "x", size: 6, color: "#d62728" },
        hovertemplate: "filtered: M %{y:.4g}, z %{customdata[1]:.2f}, weight %{customdata[2]:.3f}"
          + "<br>pair %{customdata[3]} · step %{customdata[0]}<extra></extra>",
      });
    }
    return traces;
  }

  async render(view, timeOf) {
    this.view = view;
    this.timeOf = timeOf;
    const mapX = xMapper(view, timeOf);
    const layout = baseLayout("Reward discrepancy M = ρ_w − ρ_l per step", { uirevision: `disc:${view.x}` });
    layout.yaxis.title = { text: "M (u-units)", font: { size: 11 } };
    if (view.x === "time") layout.xaxis.type = "date";
    else {
      layout.xaxis.title = { text: "step · click a step to open its pairs", font: { size: 10 }, standoff: 2 };
      wholeSteps(layout.xaxis, [...this.records.values()].map((r) => r.step));
    }
    await draw(this.node, this.traces(mapX), layout);
    if (!this.clickBound) {
      this.clickBound = true;
      this.node.on("plotly_click", (event) => {
        const step = event.points?.[0]?.customdata?.[0];
        if (Number.isInteger(step)) this.onStep(step);
      });
    }
  }

  stop() {
    clearTimeout(this.timer);
    purge(this.node);
  }
}
