// A group summary's figure, drawn with Plotly from its plain series (experiment_groups.Figure):
// "intervals" → one point per method and column with its 95 % interval as an error bar, the methods
// side by side in each column; "lines" → a grid of line panels (two per row) over steps, one colour
// and one legend entry per run. Scatter traces only (the vendored Plotly bundle's core type).

import { PALETTE, baseLayout, draw } from "../charts.js";
import { replace, stateBox } from "../dom.js";

/** Draw `figure` into `node` (an empty div); resolves once drawn (node gets data-ready="1"). */
export async function drawFigure(node, figure) {
  if (!figure.panels.some((p) => p.series.some((s) => s.y.some((v) => v !== null)))) {
    replace(node, stateBox("empty", "Nothing to draw yet: no run recorded results."));
    node.classList.add("empty");
    node.dataset.ready = "1";
    return;
  }
  await (figure.kind === "intervals" ? drawIntervals(node, figure) : drawLines(node, figure));
}

function drawIntervals(node, figure) {
  const panel = figure.panels[0];
  const traces = panel.series.map((s, i) => ({
    type: "scatter", mode: "markers", name: s.name, x: s.x, y: s.y,
    marker: { size: 10, color: PALETTE[i % PALETTE.length] },
    error_y: {
      type: "data", symmetric: false, width: 6, thickness: 1.5,
      array: s.y.map((v, k) => (v === null || s.high[k] === null ? null : s.high[k] - v)),
      arrayminus: s.y.map((v, k) => (v === null || s.low[k] === null ? null : v - s.low[k])),
    },
    hovertemplate: `${s.name}<br>%{x}: %{y:.1f} %<extra></extra>`,
  }));
  const layout = baseLayout(figure.title, {
    height: 380, hovermode: "closest", scattermode: "group", scattergap: 0.35,
    yaxis: { title: { text: panel.y_title }, automargin: true, gridcolor: "#eee", rangemode: "tozero" },
    xaxis: { type: "category", automargin: true },
    legend: { orientation: "h", x: 0, y: -0.15, yanchor: "top", font: { size: 12 } },
  });
  return draw(node, traces, layout);
}

function drawLines(node, figure) {
  const names = [...new Set(figure.panels.flatMap((p) => p.series.map((s) => s.name)))];
  const rows = Math.ceil(figure.panels.length / 2);
  const traces = figure.panels.flatMap((panel, k) => panel.series.map((s) => ({
    type: "scatter", mode: "lines", name: s.name, x: s.x, y: s.y, legendgroup: s.name, showlegend: k === 0,
    line: { width: 1.6, color: PALETTE[names.indexOf(s.name) % PALETTE.length] },
    xaxis: `x${suffix(k)}`, yaxis: `y${suffix(k)}`,
  })));
  const axes = {};
  figure.panels.forEach((panel, k) => {
    axes[`xaxis${suffix(k)}`] = { automargin: true, gridcolor: "#eee", title: { text: figure.x_title, font: { size: 10 } } };
    axes[`yaxis${suffix(k)}`] = { automargin: true, gridcolor: "#eee", title: { text: panel.title, font: { size: 11 } } };
  });
  const layout = baseLayout(figure.title, {
    height: 230 * rows + 90, hovermode: "closest",
    grid: { rows, columns: 2, pattern: "independent", xgap: 0.12, ygap: 0.3 },
    legend: { orientation: "h", x: 0, y: -0.08, yanchor: "top", font: { size: 12 } },
    ...axes,
  });
  return draw(node, traces, layout);
}

/** Plotly's axis id suffix of panel k: "" for the first, then "2", "3", … */
function suffix(k) {
  return k === 0 ? "" : String(k + 1);
}
