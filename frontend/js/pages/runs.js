// Runs: a live table (status and progress follow GET /api/stream), filters, multi-select → Compare,
// and stop / resume / clone / delete.

import { api, message } from "../api.js";
import { h, replace, stateBox } from "../dom.js";
import { COLUMNS, latestWinRate, NUMERIC, runRow } from "../runs/row.js";
import { subscribe } from "../sse.js";

const STATUSES = ["", "queued", "running", "succeeded", "failed", "stopped"];
const WIN_RATE_LOOKUPS = 30; // finished runs whose evaluations are fetched for the win-rate column

export async function mount(root, { params }) {
  const page = new RunsPage(root, { status: params.get("status") || "", name: "", preset: "", group: params.get("group") || "" });
  await page.load();
  return page.subscribe();
}

class RunsPage {
  constructor(root, filters) {
    this.filters = filters;
    this.selected = new Set();
    this.byId = new Map();
    this.winRates = new Map();
    this.rows = new Map(); // run id → {tr, actions}: the rendered row and the state its buttons are for
    this.body = h("tbody");
    this.note = h("div", { class: "muted small", role: "status" });
    this.compare = h("button", { class: "primary", id: "compare-selected", disabled: true,
      onclick: () => { location.hash = `#/compare?runs=${[...this.selected].join(",")}`; } }, "Compare selected");
    this.table = h("table", { class: "grid", id: "runs-table" }, h("thead", {}, h("tr", {},
      COLUMNS.map((c) => h("th", { class: NUMERIC.has(c) ? "num" : "" }, c)))), this.body);
    this.content = h("div", {}, stateBox("loading", "Loading runs…"));
    replace(root, this.head(), this.note, this.content);
  }

  head() {
    const set = (name) => (e) => { this.filters[name] = e.target.value; this.load(); };
    const presets = h("select", { name: "preset", onchange: set("preset") }, h("option", { value: "" }, "any preset"));
    api.presets().then((list) => presets.append(...list.map((p) => h("option", { value: p.name }, p.name)))).catch(() => {});
    return h("div", { class: "page-head" },
      h("h1", {}, "Runs"),
      h("div", { class: "filters" },
        h("label", {}, "status", h("select", { name: "status", onchange: set("status") },
          STATUSES.map((s) => h("option", { value: s, selected: s === this.filters.status }, s || "any")))),
        h("label", {}, "name", h("input", { name: "name", type: "search", placeholder: "contains…", oninput: debounce(set("name")) })),
        h("label", {}, "preset", presets),
        h("label", {}, "group", h("input", { name: "group", type: "search", placeholder: "exact", value: this.filters.group,
          oninput: debounce(set("group")) }))),
      h("span", { class: "spacer" }), this.compare, h("a", { class: "button primary", href: "#/new" }, "New run"));
  }

  async load() {
    try {
      const runs = await api.runs({ ...this.filters, limit: 500 });
      this.byId = new Map(runs.map((run) => [run.id, run]));
      this.render();
      this.loadWinRates(runs);
    } catch (error) {
      if (error.status !== 401) replace(this.content, stateBox("error", `Could not load runs: ${message(error)}`));
    }
  }

  async loadWinRates(runs) {
    const finished = runs.filter((r) => r.status === "succeeded" && !this.winRates.has(r.id)).slice(0, WIN_RATE_LOOKUPS);
    for (const run of finished) {
      this.winRates.set(run.id, latestWinRate(await api.evaluations(run.id).catch(() => [])));
    }
    if (finished.length) this.render();
  }

  /** Live updates: status changes re-render their row, deletions drop it. Returns the cleanup. */
  subscribe() {
    const close = subscribe("/stream", null, {
      status: (run) => {
        this.byId.set(run.id, run);
        this.render();
      },
      deleted: ({ run_id: id }) => {
        this.byId.delete(id);
        this.rows.delete(id);
        this.selected.delete(id);
        this.refreshCompare();
        this.render();
      },
    });
    const tick = setInterval(() => { if ([...this.byId.values()].some((r) => r.status === "running")) this.render(); }, 5000);
    return () => {
      close();
      clearInterval(tick);
    };
  }

  matches(run) {
    const f = this.filters;
    return (!f.status || run.status === f.status) && (!f.name || run.name.includes(f.name))
      && (!f.preset || run.preset === f.preset) && (!f.group || run.group === f.group);
  }

  render() {
    const runs = [...this.byId.values()].filter((r) => this.matches(r)).sort((a, b) => b.created_at - a.created_at);
    if (!runs.length) {
      replace(this.content, stateBox("empty", this.byId.size ? "No run matches these filters."
        : "No runs yet. Start one from “New run”."));
      return;
    }
    replace(this.body, runs.map((run) => this.steadyRow(run)));
    if (this.content.firstChild !== this.table) replace(this.content, this.table);
  }

  /** A fresh row that keeps the previous row's checkbox and (while the run's state allows the same
   * actions) its buttons, so clicks are never lost to a re-render as steps stream in. */
  steadyRow(run) {
    const fresh = runRow(run, { selected: this.selected, onSelect: () => this.refreshCompare(),
      act: (label, action) => this.act(label, action), winRate: this.winRates.get(run.id) });
    const old = this.rows.get(run.id);
    const actions = `${run.status}/${run.stop_requested}`;
    if (old) {
      fresh.replaceChild(old.tr.firstChild, fresh.firstChild);
      if (old.actions === actions) fresh.replaceChild(old.tr.lastChild, fresh.lastChild);
    }
    this.rows.set(run.id, { tr: fresh, actions });
    return fresh;
  }

  refreshCompare() {
    this.compare.disabled = this.selected.size < 2;
    this.compare.textContent = this.selected.size ? `Compare selected (${this.selected.size})` : "Compare selected";
  }

  async act(label, action) {
    this.note.textContent = `${label}…`;
    try {
      await action();
      this.note.textContent = `${label}: done.`;
      await this.load();
    } catch (error) {
      this.note.textContent = `${label} failed: ${message(error)}`;
    }
  }
}

function debounce(fn, ms = 300) {
  let timer = null;
  return (event) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(event), ms);
  };
}
