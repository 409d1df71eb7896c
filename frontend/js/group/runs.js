// The group page's header (status, what it is doing, run counts, timing, error) and its run list
// (each run linking to its run page, with status and progress).

import { h, stat } from "../dom.js";
import { ACTIVE, duration, percent, runDuration, stepOf, when } from "../format.js";

/** "3 of 6 runs finished" from a group's run counts. */
export function runsDone(group) {
  const counts = group.run_counts || {};
  const finished = ["succeeded", "failed", "stopped"].reduce((n, s) => n + (counts[s] || 0), 0);
  return `${finished} of ${group.planned_runs} runs finished`;
}

/** The header card's content for `group` (GET /api/groups/ID). */
export function groupHeader(group) {
  const active = ACTIVE.has(group.status);
  const counts = Object.entries(group.run_counts || {}).map(([s, n]) => `${n} ${s}`).join(" · ") || "no runs yet";
  return [
    h("div", { class: "title-line" },
      h("h1", { id: "group-title" }, group.title),
      h("span", { class: `badge ${group.status}`, id: "group-status", dataset: { status: group.status } }, group.status),
      group.quick ? h("span", { class: "badge" }, "quick") : null),
    h("div", { class: "small muted" }, "group ", h("code", {}, group.id), " · experiment ", h("code", {}, group.experiment),
      group.seeds ? ` · seeds ${group.seeds.join(", ")}` : ""),
    h("div", { class: "stats" },
      stat("runs", runsDone(group), { id: "group-progress" }),
      stat("by status", counts),
      stat("now", group.message || (active ? "waiting for a worker…" : "—"), { id: "group-message" }),
      stat("created", when(group.created_at)),
      stat("updated", when(group.updated_at))),
    group.error ? h("div", { class: "alert", role: "alert" }, h("strong", {}, "The group failed"),
      h("pre", { class: "mono" }, group.error)) : null,
  ];
}

/** The runs of the group in launch order; an empty state while none has been created. */
export function runList(group) {
  if (!group.runs.length) {
    return h("p", { class: "muted small" }, group.status === "queued"
      ? "Queued: a worker will start the experiment's stages, then its runs, one after another."
      : "No run has started yet (the experiment's stages, e.g. an SFT warm-up, come first).");
  }
  return h("table", { class: "grid", id: "group-runs" },
    h("thead", {}, h("tr", {}, ["run", "status", "progress", "step", "duration"].map((c) => h("th", {}, c)))),
    h("tbody", {}, group.runs.map((run) => h("tr", { dataset: { runId: run.id, status: run.status } },
      h("td", {}, h("a", { href: `#/run/${run.id}` }, run.name)),
      h("td", {}, h("span", { class: `badge ${run.status}`, title: run.error || run.message || "" }, run.status)),
      h("td", {}, h("span", { class: `progress${run.status === "succeeded" ? " done" : ""}` },
        h("span", { style: `width:${Math.round(Math.min(1, Math.max(0, run.progress || 0)) * 100)}%` })),
      " ", h("span", { class: "small muted" }, percent(run.progress))),
      h("td", { class: "num" }, stepOf(run)),
      h("td", {}, duration(runDuration(run)))))));
}
