// Plotly line charts over per-step series: history drawn with Plotly.react, live points appended
// with Plotly.extendTraces (capped), zoom kept through `uirevision`, WebGL for long series,
// null values drawn as gaps. Each chart div carries data-points (points in its first trace) and
// data-ready="1" once drawn, for tests and the browser bench.

/** Plotly, once its script (loaded async by index.html, so data requests start meanwhile) ran. */
export function plotlyReady() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  return new Promise((resolve, reject) => {
    const script = document.getElementById("plotly-script");
    script.addEventListener("load", () => resolve(window.Plotly), { once: true });
    script.addEventListener("error", () => reject(new Error("could not load Plotly.js")), { once: true });
  });
}

/** Plotly.purge when Plotly is loaded (nothing was drawn otherwise). */
export function purge(node) {
  if (window.Plotly) window.Plotly.purge(node);
}

export const LIVE_CAP = 20000; // points kept per trace while appending live
export const GL_THRESHOLD = 5000; // traces longer than this are drawn with scattergl
export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

/** The default view: no smoothing, linear y, optimizer step on x. */
export const DEFAULT_VIEW = Object.freeze({ smoothing: 0, logY: false, x: "step" });

/**
 * Exponential moving average with TensorBoard's debiasing; nulls stay null and do not move the
 * average. `state` ({last, n}) is advanced in place so live points continue the same curve.
 */
export function smooth(values, weight, state = { last: 0, n: 0 }) {
  if (!weight) return values.slice();
  return values.map((v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    state.last = state.last * weight + (1 - weight) * v;
    state.n += 1;
    return state.last / (1 - weight ** state.n);
  });
}

/** Base layout shared by every chart (readable at 1280×800: small margins, legend on top). */
export function baseLayout(title, extra = {}) {
  return {
    title: { text: title, font: { size: 13 }, x: 0.01, xanchor: "left" },
    margin: { l: 54, r: 54, t: 34, b: 40 },
    height: 260,
    hovermode: "x unified",
    legend: { orientation: "h", x: 0, y: -0.17, yanchor: "top", font: { size: 11 } },
    font: { family: "system-ui, sans-serif", size: 11 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fff",
    xaxis: { automargin: true, gridcolor: "#eee" },
    yaxis: { automargin: true, gridcolor: "#eee", zerolinecolor: "#ccc" },
    ...extra,
  };
}

/** Mark a chart div drawn, with the number of points of its first trace. */
export function markReady(node) {
  const first = node.data?.[0];
  node.dataset.points = String(first?.x?.length ?? 0);
  node.dataset.ready = "1";
}

/** Plotly.react, then markReady. */
export async function draw(node, traces, layout, config = {}) {
  const Plotly = await plotlyReady();
  await Plotly.react(node, traces, layout, { ...CONFIG, ...config });
  reportMissingTypes(node, traces);
  markReady(node);
}

/**
 * Plotly silently draws a trace type its bundle lacks as a scatter; say so on the console (where the
 * browser tests catch it). The vendored bundle holds the types listed in scripts/build-plotly-bundle.
 */
function reportMissingTypes(node, traces) {
  traces.forEach((trace, i) => {
    const drawn = node._fullData?.[i]?.type;
    if (trace.type && drawn && drawn !== trace.type) {
      console.error(`Plotly.js bundle lacks trace type "${trace.type}" (drawn as "${drawn}"): `
        + "add it to scripts/build-plotly-bundle");
    }
  });
}

/** Maps a step to an x value: the step itself, or a Date from `timeOf(step)` (unix seconds). */
export function xMapper(view, timeOf) {
  if (view.x === "time" && timeOf) return (step) => new Date(timeOf(step) * 1000);
  return (step) => step;
}

/**
 * A chart of several metric keys of one run. spec: {title, traces: [{key, name, axis ("y"|"y2"),
 * color, dash, stack, fill}], y2Title, yRange, onStep(step), shapes(view) → Plotly shapes}.
 */
export class LineChart {
  constructor(node, spec) {
    this.node = node;
    this.spec = spec;
    this.states = [];
    this.drawn = false;
  }

  /** The spec's traces that have data in `store` (a SeriesStore). */
  present(store) {
    return this.spec.traces.filter((t) => store.has(t.key));
  }

  trace(t, series, view, index, mapX) {
    const state = { last: 0, n: 0 };
    this.states[index] = state;
    const y = smooth(series.values, view.smoothing, state);
    const long = series.steps.length > GL_THRESHOLD;
    return {
      type: long && !t.stack ? "scattergl" : "scatter",
      mode: "lines",
      name: t.name,
      meta: t.key, // the metric key, for tests comparing the page with the stored series
      x: series.steps.map(mapX),
      y,
      customdata: series.steps.map((s, i) => [s, series.values[i]]),
      hovertemplate: view.smoothing
        ? "%{y:.5g} (raw %{customdata[1]:.5g}) · step %{customdata[0]}<extra>%{fullData.name}</extra>"
        : "%{y:.5g} · step %{customdata[0]}<extra>%{fullData.name}</extra>",
      yaxis: t.axis || "y",
      line: { color: t.color, dash: t.dash, width: 1.6, shape: "linear" },
      connectgaps: false,
      stackgroup: t.stack,
      fill: t.fill,
    };
  }

  layout(view) {
    const s = this.spec;
    const layout = baseLayout(s.title, { uirevision: `${s.title}:${view.x}` });
    const log = view.logY && !s.linearOnly && this.positive;
    layout.yaxis.type = log ? "log" : "linear";
    const note = view.logY && !log ? " (linear: values ≤ 0)" : "";
    layout.yaxis.title = { text: `${s.yTitle || ""}${note}`, font: { size: 11 } };
    const range = s.yRange ?? s.yRangeOf?.(this.store);
    if (range) layout.yaxis.range = range;
    if (view.x === "time") layout.xaxis.type = "date";
    else {
      layout.xaxis.title = { text: "step", font: { size: 10 }, standoff: 2 };
      wholeSteps(layout.xaxis, (this.keys || []).flatMap((k) => {
        const steps = this.store.get(k).steps;
        return steps.length ? [steps[0], steps[steps.length - 1]] : [];
      }));
    }
    if (s.traces.some((t) => t.axis === "y2")) {
      layout.yaxis2 = { overlaying: "y", side: "right", showgrid: false, automargin: true, tickmode: "auto",
        title: { text: s.y2Title || "", font: { size: 11 } }, range: s.y2Range };
    }
    layout.shapes = [...(s.shapes ? s.shapes(view, this.store) : []), ...resumeLines(this.store, view)];
    return layout;
  }

  /** Draw from scratch (history, a view change, or a series that outgrew the SVG renderer). */
  async render(store, view) {
    this.store = store;
    const mapX = xMapper(view, store.timeOf);
    const traces = this.present(store).map((t, i) => this.trace(t, store.get(t.key), view, i, mapX));
    this.keys = this.present(store).map((t) => t.key);
    this.positive = this.present(store).filter((t) => (t.axis || "y") === "y")
      .every((t) => allPositive(store.get(t.key).values));
    this.gl = this.keys.map((k) => store.get(k).steps.length > GL_THRESHOLD);
    await draw(this.node, traces, this.layout(view));
    this.drawn = true;
    if (this.spec.onStep && !this.clickBound) {
      this.clickBound = true;
      this.node.on("plotly_click", (event) => {
        const step = event.points?.[0]?.customdata?.[0];
        if (Number.isInteger(step)) this.spec.onStep(step);
      });
    }
  }

  /** Append `fresh` (Map key → {steps, values}) to the drawn traces, or redraw when needed. */
  async extend(store, fresh, view) {
    const keys = this.present(store).map((t) => t.key);
    const grew = keys.some((k, i) => this.keys?.[i] !== k) || keys.length !== (this.keys || []).length;
    const outgrew = keys.some((k, i) => !this.gl[i] && store.get(k).steps.length > GL_THRESHOLD);
    if (!this.drawn || grew || outgrew || this.spec.traces.some((t) => t.stack)) {
      return this.render(store, view);
    }
    const mapX = xMapper(view, store.timeOf);
    const update = { x: [], y: [], customdata: [] };
    const indices = [];
    keys.forEach((key, i) => {
      const part = fresh.get(key);
      if (!part || !part.steps.length) return;
      indices.push(i);
      update.x.push(part.steps.map(mapX));
      update.y.push(smooth(part.values, view.smoothing, this.states[i]));
      update.customdata.push(part.steps.map((s, j) => [s, part.values[j]]));
    });
    if (!indices.length) return undefined;
    await window.Plotly.extendTraces(this.node, update, indices, LIVE_CAP);
    if (this.spec.shapes) {
      const shapes = this.spec.shapes(view, store);
      if (JSON.stringify(shapes) !== JSON.stringify(this.node.layout.shapes ?? [])) {
        await window.Plotly.relayout(this.node, { shapes });
      }
    }
    markReady(this.node);
    return undefined;
  }

  destroy() {
    purge(this.node);
  }
}

/** On a short step range, ticks at whole steps only (Plotly would put ticks at 1.5, 2.5, …). */
export function wholeSteps(axis, steps) {
  if (!steps.length) return;
  const span = Math.max(...steps) - Math.min(...steps);
  if (span < 8) axis.dtick = 1;
}

/**
 * A y range for a noisy series that keeps `include` (e.g. a reference line at 1) in view: the 10th to
 * 90th percentile of the values (a ratio with a near-zero denominator spikes far out, and a short run
 * has few values; hover still shows every value), padded by 15 %; null when there are no values.
 */
export function robustRange(values, include = [], low = 0.1, high = 0.9) {
  const finite = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (!finite.length) return null;
  const at = (q) => finite[Math.min(finite.length - 1, Math.max(0, Math.round(q * (finite.length - 1))))];
  const bottom = Math.min(at(low), ...include);
  const top = Math.max(at(high), ...include);
  const pad = 0.15 * (top - bottom || 1);
  return [bottom - pad, top + pad];
}

/** True when every non-null value is > 0 (a log axis can show it). */
export function allPositive(values) {
  return values.every((v) => v === null || v > 0);
}

/**
 * Vertical dotted lines at marks [{step, label, color}] (e.g. alert steps), labelled. Marks closer than
 * `gap` steps share one line and one label ("D3 · D2"), so labels never print over each other.
 */
export function stepLines(marks, mapX, gap = 0) {
  const groups = [];
  for (const m of [...marks].sort((a, b) => a.step - b.step)) {
    const last = groups[groups.length - 1];
    if (last && m.step - last.step <= gap) last.labels.push(m.label);
    else groups.push({ step: m.step, color: m.color, labels: [m.label] });
  }
  return groups.map((g) => ({
    type: "line", xref: "x", yref: "paper", x0: mapX(g.step), x1: mapX(g.step), y0: 0, y1: 1,
    line: { color: g.color || "#b00020", width: 1.2, dash: "dot" },
    label: { text: g.labels.join(" · "), textposition: "end", textangle: 0, yanchor: "bottom",
      font: { size: 10, color: g.color || "#b00020" } },
  }));
}

/** Marks closer than this share a label: 4 % of the x range in steps (labels are ~30 px wide). */
export function labelGap(store) {
  let first = Infinity;
  let last = -Infinity;
  for (const key of store?.keys?.() ?? []) {
    const { steps } = store.get(key);
    first = Math.min(first, steps[0]);
    last = Math.max(last, steps[steps.length - 1]);
  }
  return Number.isFinite(first) ? 0.04 * (last - first) : 0;
}

/** A grey dashed line where a resumed run continues its parent ("resumed"), on every chart. */
export function resumeLines(store, view) {
  const marks = (store?.resumes?.() ?? []).map((r) => ({ step: r.step, label: "resumed", color: "#5b6778" }));
  return stepLines(marks, xMapper(view, store?.timeOf)).map((shape) => ({ ...shape, line: { ...shape.line, dash: "dash" } }));
}

/** A horizontal reference line (e.g. S_l = 1). */
export function hLine(y, color = "#888", axis = "y") {
  return { type: "line", xref: "paper", yref: axis, x0: 0, x1: 1, y0: y, y1: y,
    line: { color, width: 1, dash: "dash" } };
}
