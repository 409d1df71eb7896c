// Experiments (#/groups): the groups launched so far with their status, and the experiment presets,
// each with a Launch button (and "quick" and seeds); launching opens the new group's page. The groups
// table polls GET /api/groups every 3 s while a group is queued or running.

import { message, request } from "../api.js";
import { h, replace, stateBox } from "../dom.js";
import { ACTIVE, when } from "../format.js";
import { stepsText } from "../group/caveat.js";
import { runsDone } from "../group/runs.js";

const POLL_MS = 3000;

export async function mount(root) {
  const presets = h("div", { class: "presets", id: "experiment-presets" }, stateBox("loading", "Loading presets…"));
  const groups = h("div", { id: "experiment-groups" }, stateBox("loading", "Loading groups…"));
  replace(root,
    h("div", { class: "page-head" }, h("h1", {}, "Experiments"),
      h("span", { class: "muted small" }, "the papers' findings, re-run on your machine as groups of runs")),
    h("h2", {}, "Groups"), groups, h("h2", { class: "spaced" }, "Presets"), presets);
  let timer = null;
  let stopped = false;
  const refresh = async () => {
    const active = await drawGroups(groups);
    if (active && !stopped) timer = setTimeout(refresh, POLL_MS);
  };
  await Promise.all([drawPresets(presets), refresh()]);
  root.dataset.ready = "1";
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function drawPresets(node) {
  let presets;
  try {
    presets = await request("GET", "/experiments");
  } catch (error) {
    if (error.status !== 401) replace(node, stateBox("error", `Could not load the presets: ${message(error)}`));
    return;
  }
  replace(node, presets.length ? presets.map(presetCard) : stateBox("empty", "No experiment presets found."));
}

function presetCard(preset) {
  const quick = h("input", { type: "checkbox", name: "quick", checked: true });
  const seeds = h("input", { type: "text", name: "seeds", placeholder: "preset's", size: 8,
    title: `comma-separated seeds, e.g. 0,1,2; empty: the preset's own (${preset.seeds.join(",")}; quick may use fewer)` });
  const note = h("span", { class: "small", role: "status" });
  const launch = h("button", { class: "primary", dataset: { launch: preset.name }, onclick: async () => {
    launch.disabled = true;
    note.textContent = "Launching…";
    try {
      const body = { quick: quick.checked };
      const text = seeds.value.trim();
      if (text) body.seeds = text.split(",").map((s) => Number(s.trim()));
      const group = await request("POST", `/experiments/${encodeURIComponent(preset.name)}`, { body });
      location.hash = `#/group/${encodeURIComponent(group.id)}`;
    } catch (error) {
      note.textContent = `Could not launch: ${message(error)}`;
      launch.disabled = false;
    }
  } }, "Launch");
  return h("article", { class: "card preset", dataset: { preset: preset.name } },
    h("h3", {}, preset.title),
    h("p", { class: "small muted", dataset: { steps: preset.steps.join(",") } }, h("code", {}, preset.name),
      ` · ${preset.runs} runs of ${stepsText(preset.steps)} (quick: ${preset.quick_runs} of ${stepsText(preset.quick_steps)})`),
    h("p", { class: "small description", title: preset.description }, preset.description),
    preset.runtime_note ? h("p", { class: "small muted" }, `Runtime: ${preset.runtime_note}`) : null,
    preset.citation ? h("p", { class: "small muted" }, `Compared with: ${preset.citation}`) : null,
    h("div", { class: "launch" }, launch, h("label", { class: "small" }, quick, " quick"),
      h("label", { class: "small" }, "seeds ", seeds), note));
}

/** Draw the groups table; returns whether a group is still queued or running. */
async function drawGroups(node) {
  let groups;
  try {
    groups = await request("GET", "/groups", { params: { limit: 200 } });
  } catch (error) {
    if (error.status !== 401) replace(node, stateBox("error", `Could not load the groups: ${message(error)}`));
    return false;
  }
  if (!groups.length) {
    replace(node, stateBox("empty", "No experiment group yet. Launch a preset below, or run "
      + "`alignscope experiment NAME` on a worker machine."));
    return false;
  }
  replace(node, h("table", { class: "grid", id: "groups-table" },
    h("thead", {}, h("tr", {}, ["group", "experiment", "status", "runs", "now", "created"].map((c) => h("th", {}, c)))),
    h("tbody", {}, groups.map((g) => h("tr", { dataset: { group: g.id, status: g.status } },
      h("td", {}, h("a", { href: `#/group/${encodeURIComponent(g.id)}` }, g.id), g.quick ? [" ", h("span", { class: "badge" }, "quick")] : null),
      h("td", {}, g.title),
      h("td", {}, h("span", { class: `badge ${g.status}`, title: g.error || "" }, g.status)),
      h("td", {}, runsDone(g)),
      h("td", { class: "small" }, g.has_summary ? "summary ready" : (g.message || "—")),
      h("td", {}, when(g.created_at)))))));
  return groups.some((g) => ACTIVE.has(g.status));
}
