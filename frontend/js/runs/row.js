// One row of the runs table, and the small pieces it shows.

import { api } from "../api.js";
import { h } from "../dom.js";
import { ACTIVE, duration, method, num, percent, runDuration, stepOf, when } from "../format.js";
import { splitError } from "../run/error.js";

export const COLUMNS = ["", "name", "status", "progress", "step", "preset", "method", "β0", "win rate", "started",
  "duration", "actions"];
export const NUMERIC = new Set(["step", "β0", "win rate"]);

/**
 * A <tr> for `run`. ctx: {selected (Set of ids), onSelect(), act(label, action), winRate (or null)}.
 */
export function runRow(run, ctx) {
  const active = ACTIVE.has(run.status);
  const check = h("input", { type: "checkbox", "aria-label": `select ${run.name}`, checked: ctx.selected.has(run.id),
    onchange: (e) => {
      if (e.target.checked) ctx.selected.add(run.id);
      else ctx.selected.delete(run.id);
      ctx.onSelect();
    } });
  return h("tr", { dataset: { runId: run.id, status: run.status } },
    h("td", {}, check),
    h("td", { class: "name" }, h("a", { href: `#/run/${run.id}`, title: run.name }, run.name),
      run.group ? h("div", { class: "muted small cut group", title: run.group }, `group ${run.group}`) : null,
      run.external ? h("div", { class: "muted small external-mark" }, `external · ${run.source}`) : null),
    h("td", {}, h("span", { class: `badge ${run.status}`, title: run.error ? splitError(run.error).message : run.message || "" },
      run.stop_requested && active ? "stopping" : run.status),
      run.status === "queued" && run.waiting_for ? h("div", { class: "small muted" }, `waiting for ${run.waiting_for}`) : null),
    h("td", {}, progressBar(run)),
    h("td", { class: "num" }, stepOf(run)),
    h("td", {}, h("span", { class: "cut preset", title: run.preset || "" }, run.preset || "—")),
    h("td", {}, method(run.config)),
    h("td", { class: "num" }, num(run.beta0, 3)),
    h("td", { class: "num", title: ctx.winRate?.title || "" }, ctx.winRate?.text || "—"),
    h("td", {}, when(run.started_at || run.created_at)),
    h("td", {}, duration(runDuration(run))),
    h("td", {}, actions(run, active, ctx.act)));
}

function actions(run, active, act) {
  return h("div", { class: "actions" },
    h("button", { class: "small", disabled: !active || run.stop_requested,
      onclick: () => act(`Stop ${run.name}`, () => api.stop(run.id)) }, "Stop"),
    run.external ? null : h("button", { class: "small", disabled: !run.resumable, title: run.resume_blocked || "continue from the last checkpoint",
      onclick: () => act(`Resume ${run.name}`, () => api.resume(run.id)) }, "Resume"),
    run.external ? null : h("a", { class: "button small", href: `#/new?from=${run.id}` }, "Clone"),
    h("button", { class: "small danger", disabled: run.status === "running",
      onclick: () => {
        if (window.confirm(`Delete run ${run.name} with its metrics and pairs?`)) {
          act(`Delete ${run.name}`, () => api.remove(run.id));
        }
      } }, "Delete"));
}

function progressBar(run) {
  const fraction = run.progress ?? (run.total_steps ? (run.step || 0) / run.total_steps : 0);
  const width = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  return h("span", { title: percent(fraction) },
    h("span", { class: `progress${run.status === "succeeded" ? " done" : ""}` }, h("span", { style: `width:${width}%` })),
    " ", h("span", { class: "small muted" }, percent(fraction)));
}

/** The win rate at the last evaluated step, at the lowest temperature: {text, title}, or null. */
export function latestWinRate(records) {
  if (!records.length) return null;
  const last = Math.max(...records.map((r) => r.step));
  const r = records.filter((x) => x.step === last).sort((a, b) => a.temperature - b.temperature)[0];
  return { text: percent(r.win_rate),
    title: `step ${r.step}, T=${r.temperature}, vs ${r.opponent}, 95 % CI ${percent(r.ci_low)}–${percent(r.ci_high)}` };
}
