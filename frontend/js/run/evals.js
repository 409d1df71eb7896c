// Win rates by sampling temperature with their 95 % Wilson intervals (GET /evaluations), and the
// run's config and environment.

import { baseLayout, draw, PALETTE } from "../charts.js";
import { h } from "../dom.js";
import { K } from "../keys.js";
import { applicableConfig } from "./applies.js";

export const JUDGE_KEYS = [K.judgeRequests, K.judgePromptTokens, K.judgeCompletionTokens, K.judgeCostUsd];

/** "Judge: 12 requests · 1,200 + 84 tokens · $0.00192" from the eval/judge/* series ("" when absent). */
export function judgeUsage(series) {
  const last = (key) => series[key]?.values?.at(-1) ?? null;
  const requests = last(K.judgeRequests);
  if (requests === null) return "";
  const tokens = (key) => Math.round(last(key) ?? 0).toLocaleString("en-US");
  const cost = last(K.judgeCostUsd);
  const price = cost ? ` · $${cost.toPrecision(3)}` : " · cost unknown (no prices in evaluation.judge)";
  return `Judge: ${Math.round(requests)} requests · ${tokens(K.judgePromptTokens)} prompt + `
    + `${tokens(K.judgeCompletionTokens)} completion tokens${price}`;
}

/** Win rates: vs temperature when evaluated at one step, else over steps with one trace per temperature. */
export async function drawWinRates(node, records) {
  const groups = new Map();
  const steps = new Set(records.map((r) => r.step));
  const overSteps = steps.size > 1;
  for (const r of records) {
    const name = overSteps ? `T=${r.temperature} vs ${r.opponent}` : `vs ${r.opponent} (step ${r.step})`;
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(r);
  }
  const traces = [...groups.entries()].map(([name, rs], i) => {
    rs.sort((a, b) => (overSteps ? a.step - b.step : a.temperature - b.temperature));
    return {
      type: "scatter", mode: "lines+markers", name,
      x: rs.map((r) => (overSteps ? r.step : r.temperature)),
      y: rs.map((r) => r.win_rate),
      error_y: { type: "data", symmetric: false, array: rs.map((r) => (r.ci_high ?? r.win_rate) - r.win_rate),
        arrayminus: rs.map((r) => r.win_rate - (r.ci_low ?? r.win_rate)), thickness: 1, width: 3 },
      customdata: rs.map((r) => [r.step, r.wins, r.ties, r.losses, r.ci_low, r.ci_high, r.judge]),
      hovertemplate: "win rate %{y:.1%} [%{customdata[4]:.1%}, %{customdata[5]:.1%}]<br>"
        + "%{customdata[1]} W / %{customdata[2]} T / %{customdata[3]} L · judge %{customdata[6]}"
        + " · step %{customdata[0]}<extra>%{fullData.name}</extra>",
      line: { color: PALETTE[i % PALETTE.length] },
    };
  });
  const layout = baseLayout("Win rates by sampling temperature (95 % Wilson intervals)", { hovermode: "closest" });
  layout.yaxis = { ...layout.yaxis, range: [0, 1], tickformat: ".0%", title: { text: "win rate" } };
  layout.xaxis.title = { text: overSteps ? "step" : "temperature", font: { size: 10 }, standoff: 2 };
  layout.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.5, y1: 0.5, line: { dash: "dash", color: "#999", width: 1 } }];
  await draw(node, traces, layout);
}

/** Nested object → [["a.b.c", value], ...] in key order. */
export function flatten(value, prefix = "") {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [[prefix, value]];
  return Object.entries(value).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

/** A readable value for a config cell. */
export function show(value) {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

/** The run's config (dotted keys, in columns) beside its environment and identity. */
export function configPanel(run) {
  const list = (pairs, cls) => h("div", { class: cls }, pairs.map(([k, v]) =>
    h("div", { class: "kv-row" }, h("span", { class: "kv-key" }, k), " ", h("span", { class: "kv-value" }, show(v)))));
  return h("div", { class: "config-cols" },
    h("div", {}, h("h3", {}, "Config"), list(applicableConfig(run.config, flatten(run.config)), "kv-columns"),
      h("p", { class: "muted small" }, "Keys that do not apply to this kind of run are left out (the export and the API "
        + "have them all).")),
    h("div", {}, h("h3", {}, "Environment"),
      run.environment ? list(flatten(run.environment), "kv-list") : h("p", { class: "muted small" }, "Recorded when the run starts."),
      h("h3", { style: "margin-top:12px" }, "Run"),
      list([["id", run.id], ["attempt", run.attempt], ["parent", run.parent_id], ["resumes after step", run.resume_step],
        ["group", run.group], ["message", run.message]], "kv-list"))); // the error is shown once, in the header
}
