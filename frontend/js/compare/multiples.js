// Small multiples: one chart per metric, every run overlaid. Series arrive one metric at a time (one
// /api/compare request per metric, in parallel) and each chart is drawn as soon as its data is in.

import { api } from "../api.js";
import { allPositive, baseLayout, draw, GL_THRESHOLD, smooth, stepLines } from "../charts.js";
import { h, replace, stateBox } from "../dom.js";
import { label } from "../keys.js";

export class Multiples {
  /** node: the grid; runs: RunOut[]; labels/colors: run id → legend label / color. */
  constructor(node, runs, keys, labels, colors, view) {
    Object.assign(this, { node, runs, keys, labels, colors, view });
    this.series = Object.fromEntries(runs.map((r) => [r.id, {}]));
    this.resumes = new Map(); // run id → resume steps of its lineage (a resumed run shows its parent's steps too)
    this.charts = new Map(keys.map((k) => [k, h("div", { class: "chart", dataset: { key: k } }, stateBox("loading", label(k)))]));
    replace(node, keys.map((k) => h("section", { class: "panel" }, this.charts.get(k))));
  }

  /** Take the replies (one promise per key, same order as keys) and draw each as it arrives. */
  async receive(replies) {
    await Promise.all(replies.map(async (reply, i) => {
      const data = await reply.catch(() => ({ series: {} }));
      for (const r of this.runs) this.series[r.id][this.keys[i]] = data.series[r.id]?.[this.keys[i]];
      for (const [id, chain] of Object.entries(data.lineage || {})) {
        this.resumes.set(id, chain.filter((s) => s.after_step !== null).map((s) => s.after_step));
      }
      await this.drawKey(this.keys[i]);
    }));
    this.finish();
  }

  /** Redraw every chart (after a view change). */
  async redraw() {
    await Promise.all([...this.charts.keys()].filter((k) => this.charts.get(k).isConnected).map((k) => this.drawKey(k)));
    this.finish();
  }

  finish() {
    if (!this.node.querySelector(".chart")) {
      replace(this.node, stateBox("empty", "None of these runs has points for the chosen metrics yet."));
    }
  }

  async drawKey(key) {
    const node = this.charts.get(key);
    const runs = this.runs.filter((r) => this.series[r.id][key]?.steps.length);
    if (!runs.length) {
      node.closest(".panel")?.remove();
      return;
    }
    node.replaceChildren();
    const traces = runs.map((r) => trace(this.series[r.id][key], this.labels.get(r.id), this.colors.get(r.id), this.view));
    const marks = runs.flatMap((r) => (this.resumes.get(r.id) || [])
      .map((step) => ({ step, label: `resumed (${this.labels.get(r.id)})`, color: this.colors.get(r.id) })));
    const result = layout(key, runs.map((r) => this.series[r.id][key]), this.view);
    result.shapes = stepLines(marks, (step) => step).map((shape) => ({ ...shape, line: { ...shape.line, dash: "dash" } }));
    await draw(node, traces, result);
  }
}

function trace(s, name, color, view) {
  return {
    type: s.steps.length > GL_THRESHOLD ? "scattergl" : "scatter", mode: "lines", name,
    x: s.steps, y: smooth(s.values, view.smoothing), customdata: s.values, line: { color, width: 1.5 },
    hovertemplate: view.smoothing ? "%{y:.5g} (raw %{customdata:.5g})<extra>%{fullData.name}</extra>"
      : "%{y:.5g}<extra>%{fullData.name}</extra>",
  };
}

function layout(key, series, view) {
  const result = baseLayout(label(key), { uirevision: key, showlegend: true, height: 280 });
  const log = view.logY && series.every((s) => allPositive(s.values));
  result.yaxis.type = log ? "log" : "linear";
  if (view.logY && !log) result.yaxis.title = { text: "linear: values ≤ 0", font: { size: 10 } };
  result.xaxis.title = { text: "step", font: { size: 10 }, standoff: 2 };
  result.legend = { ...result.legend, font: { size: 10 } };
  return result;
}

/** One /api/compare request per key (all runs), started at once. */
export function requestSeries(ids, keys) {
  return keys.map((k) => api.compare(ids, [k]));
}
