// One experiment group (#/group/ID): its status and live run list, and once its runs have finished,
// the summary — our table next to the paper's numbers (cited), the verdicts in plain words, and the
// figure. While the group is queued or running the page polls GET /api/groups/ID every 2 s.
// The page root gets data-ready="1" once drawn (summary figure included when there is one).

import { message, request } from "../api.js";
import { purge } from "../charts.js";
import { h, replace, stateBox } from "../dom.js";
import { ACTIVE } from "../format.js";
import { drawFigure } from "../group/figure.js";
import { groupHeader, runList, runsDone } from "../group/runs.js";
import { quickCaveat } from "../group/caveat.js";
import { summaryTable, verdictList } from "../group/summary.js";

const POLL_MS = 2000;

export async function mount(root, { id }) {
  const groupId = decodeURIComponent(id);
  const page = new GroupPage(root, groupId);
  await page.load();
  return () => page.stop();
}

/** A drawn summary is stale when the summary or the group's status changed (a summary stored while the
 * group still ran says "Partial summary"; the same summary of a finished group must not). */
function summaryState(group) {
  return `${group.summary.created_at}|${group.status}`;
}

class GroupPage {
  constructor(root, groupId) {
    this.root = root;
    this.groupId = groupId;
    this.timer = null;
    this.stopped = false;
    this.shownSummary = null; // what the drawn summary showed (see summaryState), so polling redraws only on change
    this.header = h("div", { class: "card group-head", id: "group-header" });
    this.summary = h("section", { id: "group-summary" });
    this.runs = h("div", { id: "group-runs-body" });
    this.about = h("p", { class: "small muted about" });
    this.aboutCard = h("section", { class: "card", hidden: true }, h("h2", {}, "About this experiment"), this.about);
    replace(root, stateBox("loading", "Loading the group…"));
  }

  async load() {
    let group;
    try {
      group = await request("GET", `/groups/${encodeURIComponent(this.groupId)}`);
    } catch (error) {
      if (error.status === 401 || this.stopped) return;
      replace(this.root, stateBox(error.status === 404 ? "empty" : "error", error.status === 404
        ? `There is no experiment group ${this.groupId}.` : `Could not load the group: ${message(error)}`));
      this.root.dataset.ready = "1";
      return;
    }
    if (this.stopped) return; // the reply came after leaving the page
    if (!this.header.isConnected) {
      replace(this.root, h("div", { class: "page-head" }, h("a", { href: "#/groups" }, "← experiments")),
        this.header, this.summary,
        h("section", { class: "card" }, h("h2", {}, "Runs"), this.runs), this.aboutCard);
    }
    await this.render(group);
    this.root.dataset.ready = "1";
    if (ACTIVE.has(group.status) && !this.stopped) this.timer = setTimeout(() => this.load(), POLL_MS);
  }

  async render(group) {
    replace(this.header, groupHeader(group));
    replace(this.runs, runList(group));
    this.about.textContent = group.summary?.description || "";
    this.aboutCard.hidden = !this.about.textContent;
    if (group.summary) {
      if (this.shownSummary !== summaryState(group)) await this.drawSummary(group.summary, group);
      return;
    }
    this.shownSummary = null;
    if (ACTIVE.has(group.status)) {
      replace(this.summary, stateBox("loading", `The summary appears when the runs finish (${runsDone(group)}).`));
    } else {
      replace(this.summary, stateBox(group.status === "failed" ? "error" : "empty",
        `No summary was stored for this group (${group.status}). To make one from its finished runs: `
        + `alignscope experiment ${group.experiment} --summarize ${group.id}`));
    }
  }

  async drawSummary(summary, group) {
    this.shownSummary = summaryState(group);
    const figure = h("div", { class: "chart group-figure", id: "group-figure" });
    const partial = ACTIVE.has(group.status) || summary.not_succeeded.length
      ? h("p", { class: "alert" }, h("strong", {}, "Partial summary"),
        summary.not_succeeded.length ? `Runs not succeeded: ${summary.not_succeeded.join(", ")}.` : "Runs are still going.")
      : null;
    const experiment = group.quick ? await this.experiment(group.experiment) : null;
    const caveat = quickCaveat(group, summary, experiment);
    replace(this.summary,
      h("div", { class: "card" }, h("h2", {}, "Ours next to the paper"), partial,
        summaryTable(summary), h("h3", {}, "Verdicts"), verdictList(summary),
        caveat ? h("p", { class: "alert", id: "quick-caveat" }, h("strong", {}, "Quick run"), caveat) : null),
      h("div", { class: "card" }, figure));
    try {
      await drawFigure(figure, summary.figure);
    } catch (error) {
      replace(figure, stateBox("error", `Could not draw the figure: ${message(error)}`));
    }
  }

  /** The experiment preset (its step counts), or null when it is not a preset any more. */
  async experiment(name) {
    const presets = await request("GET", "/experiments").catch(() => []);
    return presets.find((p) => p.name === name) ?? null;
  }

  stop() {
    clearTimeout(this.timer);
    this.stopped = true;
    for (const node of this.root.querySelectorAll(".js-plotly-plot")) purge(node);
  }
}
