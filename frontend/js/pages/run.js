// One run: header, view controls and the live panels (history first, then SSE; see run/live.js).

import { api, message } from "../api.js";
import { DEFAULT_VIEW } from "../charts.js";
import { viewControls } from "../controls.js";
import { h, replace, stateBox } from "../dom.js";
import { WIN_RATE_PREFIX } from "../keys.js";
import { firedAlerts } from "../run/alerts.js";
import { panelApplies } from "../run/applies.js";
import { configPanel } from "../run/evals.js";
import { RunHeader } from "../run/header.js";
import { LiveRun } from "../run/live.js";
import { panelSpecs } from "../run/panels.js";
import {
  anyMetricSection, chartPanel, discrepancySection, panel, threeDSection, waiting, winRateSection,
} from "../run/sections.js";
import { timing } from "../store.js";

const LAYOUT = ["loss", "rewards", "beta", "discrepancy", "grad", "optim", "threed", "toy", "probe", "evals", "other",
  "config"];
const IN_THREED = new Set(["logratios", "share"]);
const ALWAYS = new Set(["loss"]);
const RECONCILE_MS = 1000; // after a run ends: lets the stream's last points arrive first // drawn even before the first point (with an empty state)

export async function mount(root, { id }) {
  const headNode = h("div", { class: "card", id: "run-header" });
  replace(root, headNode, stateBox("loading", "Loading run…"));
  let run;
  try {
    run = await api.run(id);
  } catch (error) {
    const missing = error.status === 404;
    replace(root, stateBox(missing ? "empty" : "error", missing
      ? `Run ${id} does not exist (it may have been deleted).` : `Could not load the run: ${message(error)}`));
    return undefined;
  }
  const page = new RunPage(root, headNode, run);
  await page.start();
  return () => page.stop();
}

/** The run page's state: the live data, its charts and sections, and how events update them. */
class RunPage {
  constructor(root, headNode, run) {
    this.root = root;
    this.run = run;
    this.view = { ...DEFAULT_VIEW };
    this.panels = new Map();
    this.fired = [];
    this.header = new RunHeader(headNode, run.id);
    this.header.render(run);
    this.live = new LiveRun(run.id, {
      points: (fresh) => this.onPoints(fresh),
      rebased: () => this.renderAll(),
      status: (next) => this.onStatus(next),
      pairs: ({ step }) => this.discrepancy.announce(step),
      state: (state) => this.header.streamState(state),
      deleted: () => replace(root, stateBox("empty", "This run was deleted.")),
    });
    this.store = this.live.store;
    this.store.timeOf = timing(run);
    this.build(headNode);
  }

  build(headNode) {
    const onStep = (step) => { location.hash = `#/run/${this.run.id}/pairs?step=${step}`; };
    const specs = new Map(panelSpecs(() => this.fired.map((a) => ({ step: a.step, label: a.code })))
      .map((s) => [s.id, s]));
    this.charts = [...specs.values()].filter((s) => !IN_THREED.has(s.id))
      .map((spec) => chartPanel(this.panels, spec, this.run, onStep));
    this.threed = threeDSection(this.panels, specs, this.charts, onStep);
    this.discrepancy = discrepancySection(this.panels, this.run.id, onStep);
    this.loadEvaluations = winRateSection(this.panels, this.run.id, api);
    this.other = anyMetricSection(this.panels, this.store, this.view, onStep);
    this.configBody = h("div", { id: "config-body" }, configPanel(this.run));
    panel(this.panels, "config", true, h("h2", {}, "Config and environment"), this.configBody).hidden = false;
    const controls = viewControls(this.view, () => this.renderAll(), "click a step to open its pairs.");
    replace(this.root, headNode, controls, h("div", { class: "panels" }, LAYOUT.map((key) => this.panels.get(key))));
  }

  async start() {
    try {
      await this.live.start();
    } catch (error) {
      replace(this.root, stateBox("error", `Could not load the run's metrics: ${message(error)}`));
      return;
    }
    await this.renderAll();
    Object.assign(this.discrepancy, { view: this.view, timeOf: this.store.timeOf });
    this.discrepancy.load().then((n) => {
      this.panels.get("discrepancy").hidden = n === 0;
      return n ? this.discrepancy.render(this.view, this.store.timeOf) : undefined;
    }).catch((error) => console.warn("pairs", error));
    this.loadEvaluations();
    this.root.dataset.ready = "1";
  }

  stop() {
    clearTimeout(this.reconcileTimer);
    this.live.stop();
    this.discrepancy.stop();
    for (const entry of this.charts) entry.chart.destroy();
  }

  /** Draw a chart entry from the store, or show its panel's empty state. */
  async renderChart(entry) {
    const present = entry.chart.present(this.store).length > 0;
    if (entry.panelKey) {
      const shown = (present && panelApplies(entry.panelKey, this.run.config)) || ALWAYS.has(entry.panelKey);
      this.panels.get(entry.panelKey).hidden = !shown;
    }
    entry.chart.node.hidden = !present;
    if (entry.empty) {
      entry.empty.hidden = present;
      entry.title.hidden = present;
    }
    if (present) await entry.chart.render(this.store, this.view);
  }

  updateThreeD() {
    this.fired = firedAlerts(this.store);
    this.panels.get("threed").hidden = !this.threed.present(this.store);
    this.threed.update(this.store);
  }

  async renderAll() {
    this.updateThreeD();
    await Promise.all(this.charts.map((entry) => this.renderChart(entry)));
    if (this.discrepancy.records.size) await this.discrepancy.render(this.view, this.store.timeOf);
    await this.other.render();
  }

  async onPoints(fresh) {
    const alerts = this.fired.length;
    this.updateThreeD();
    await Promise.all(this.charts.map((entry) => {
      if (!entry.chart.drawn || this.fired.length !== alerts) return this.renderChart(entry);
      return entry.chart.extend(this.store, fresh, this.view);
    }));
    await this.other.extend(fresh);
    if ([...fresh.keys()].some((k) => k.startsWith(WIN_RATE_PREFIX))) this.loadEvaluations();
  }

  onStatus(next) {
    const finished = this.run.status !== next.status && !["queued", "running"].includes(next.status);
    this.run = next;
    this.store.timeOf = timing(next);
    this.header.render(next);
    replace(this.configBody, configPanel(next));
    if (finished) this.loadEvaluations();
    for (const entry of this.charts) if (entry.empty) entry.empty.textContent = waiting(next);
    if (finished || (next.step && !this.store.keys().length)) this.reconcile();
  }

  /** Once the stream's last points had time to arrive, redraw from the stored history: a finished run's
   * page (charts, "Now", alerts) then equals the stored values even if a live point was missed. */
  reconcile() {
    clearTimeout(this.reconcileTimer);
    this.reconcileTimer = setTimeout(() => {
      this.live.reload().then(() => { this.root.dataset.reconciled = String(this.run.step ?? ""); })
        .catch((error) => console.warn("reload", error));
    }, RECONCILE_MS);
  }
}
