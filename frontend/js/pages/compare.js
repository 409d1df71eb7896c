// Compare runs: each metric overlaid across runs (small multiples, legend by run and what differs in
// its config), the config diff table, and the pair-level views. #/compare?runs=a,b[&keys=k1,k2].
// The page root gets data-ready="1" once every metric chart is drawn (the browser bench waits on it).

import { api, message } from "../api.js";
import { PALETTE, purge } from "../charts.js";
import { diffTable, differingKeys, legendLabel } from "../compare/diff.js";
import { Multiples, requestSeries } from "../compare/multiples.js";
import { pairViews } from "../compare/pairs.js";
import { viewControls } from "../controls.js";
import { h, replace, stateBox } from "../dom.js";
import { when } from "../format.js";
import { COMPARE_DEFAULT } from "../keys.js";

export async function mount(root, { params }) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  if (ids.length < 1) return picker(root);
  const keys = params.get("keys") ? params.get("keys").split(",") : COMPARE_DEFAULT;
  const replies = requestSeries(ids, keys); // started before anything else: the slow part
  const view = { smoothing: 0, logY: false, x: "step" };
  let multiples = null;
  const charts = h("div", { class: "multiples", id: "compare-charts" }, stateBox("loading", "Loading series…"));
  const diffNode = h("div", { class: "card" });
  const pairsNode = h("div", { id: "compare-pairs" }, stateBox("loading", "Loading pair records…"));
  const keyPicker = h("div", { class: "keypicker", id: "key-picker" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Compare runs"), h("a", { href: "#/compare" }, "choose other runs")),
    viewControls(view, () => multiples?.redraw(), "", false), h("div", { class: "card" }, h("h3", {}, "Metrics"), keyPicker),
    charts, h("h2", { style: "margin-top:14px" }, "Config differences"), diffNode,
    h("h2", { style: "margin-top:14px" }, "Pairs across runs"), pairsNode);
  let runs;
  try {
    ({ runs } = await Promise.race(replies));
  } catch (error) {
    replace(charts, stateBox("error", `Could not load the runs: ${message(error)}`));
    return undefined;
  }
  const differing = differingKeys(runs.map((r) => r.config));
  const labels = new Map(runs.map((r) => [r.id, legendLabel(r, differing)]));
  const colors = new Map(runs.map((r, i) => [r.id, PALETTE[i % PALETTE.length]]));
  multiples = new Multiples(charts, runs, keys, labels, colors, view);
  keyChoices(keyPicker, ids, keys, runs);
  diffCard(diffNode, runs);
  await multiples.receive(replies);
  performance.mark("charts-drawn");
  root.dataset.ready = "1";
  pairViews(pairsNode, runs, labels, colors).catch((error) => replace(pairsNode, stateBox("error", `Pairs: ${message(error)}`)));
  return () => {
    for (const node of root.querySelectorAll(".js-plotly-plot")) purge(node);
  };
}

/** The config diff table with its "show every key" switch. */
function diffCard(node, runs) {
  let all = false;
  const render = () => replace(node, h("label", { class: "small" }, h("input", { type: "checkbox", checked: all,
    onchange: (e) => { all = e.target.checked; render(); } }), " show every key"), diffTable(runs, all));
  render();
}

/** Checkboxes for every key any of the runs has; changing them re-opens the page with ?keys=. */
async function keyChoices(node, ids, keys, runs) {
  const lists = await Promise.all(runs.map((r) => api.keys(r.id).catch(() => [])));
  const every = [...new Set(lists.flat())].sort();
  if (!every.length) {
    replace(node, h("span", { class: "muted small" }, "No metric recorded yet."));
    return;
  }
  const chosen = new Set(keys);
  replace(node, every.map((k) => h("label", {}, h("input", { type: "checkbox", value: k, checked: chosen.has(k),
    onchange: (e) => {
      if (e.target.checked) chosen.add(k);
      else chosen.delete(k);
      location.hash = `#/compare?runs=${ids.join(",")}&keys=${[...chosen].join(",")}`;
    } }), ` ${k}`)));
}

/** No runs chosen yet: a list to pick from. */
async function picker(root) {
  const runs = await api.runs({ limit: 200 });
  const chosen = new Set();
  const go = h("button", { class: "primary", disabled: true,
    onclick: () => { location.hash = `#/compare?runs=${[...chosen].join(",")}`; } }, "Compare");
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Compare runs"), h("span", { class: "spacer" }), go),
    runs.length ? h("table", { class: "grid" }, h("tbody", {}, runs.map((r) => h("tr", {},
      h("td", {}, h("input", { type: "checkbox", "aria-label": `select ${r.name}`, onchange: (e) => {
        if (e.target.checked) chosen.add(r.id);
        else chosen.delete(r.id);
        go.disabled = chosen.size < 1;
      } })),
      h("td", {}, r.name), h("td", {}, h("span", { class: `badge ${r.status}` }, r.status)), h("td", {}, when(r.created_at))))))
      : stateBox("empty", "No runs to compare yet."));
  return undefined;
}
