// A group's summary (GET /api/groups/ID → summary): our table next to the paper's numbers with the
// citation, and the verdicts in plain words. Win rates and differences arrive in % (display units).

import { h } from "../dom.js";

const VERDICT_WORDS = { // category → badge ("none": the verdict itself, e.g. "not run")
  agrees: "agrees", disagrees: "disagrees", weaker: "weaker than the paper", noisy: "too noisy to tell",
};

/** One number in a column's format: percent (45.0), probability (0.996), step (820); "–" for null. */
function shown(value, format) {
  if (value === null || value === undefined) return "–";
  if (format === "step") return String(Math.round(value));
  return format === "probability" ? value.toFixed(3) : value.toFixed(1);
}

/** A table cell: the value, and its 95 % interval underneath when there is one. */
function ourCell(cell, format) {
  if (!cell || cell.value === null) return h("td", { class: "num muted" }, "–");
  const interval = cell.low !== null && cell.low !== undefined
    ? h("span", { class: "ci" }, `[${shown(cell.low, format)}, ${shown(cell.high, format)}]`) : null;
  return h("td", { class: "num ours" }, h("strong", {}, shown(cell.value, format)), interval);
}

/**
 * The summary table: rows = methods (ours first, then any the paper has and we did not run);
 * a column group "ours" (our columns) and, when the paper gives numbers, a column group "paper".
 */
export function summaryTable(summary) {
  const { table, paper } = summary;
  const paperRows = new Map(paper.rows.map((row) => [row.label, row.values]));
  const ourRows = new Map(table.rows.map((row) => [row.label, row.cells]));
  const labels = [...new Set([...ourRows.keys(), ...paperRows.keys()])];
  const paperCols = paper.rows.length ? paper.columns : [];
  const unit = table.columns.some((c) => c.format === "percent") ? "win rate vs chosen, % [95 % CI]" : "";
  const head = h("thead", {},
    h("tr", {},
      h("th", { rowspan: 2 }, summary.kind === "toy" ? "run" : "method"),
      h("th", { colspan: table.columns.length, class: "group-ours" }, `ours${unit ? ` — ${unit}` : ""}`),
      paperCols.length ? h("th", { colspan: paperCols.length, class: "group-paper" }, "paper") : null),
    h("tr", {},
      table.columns.map((c) => h("th", { class: "num group-ours" }, c.name)),
      paperCols.map((c) => h("th", { class: "num group-paper" }, c))));
  const body = h("tbody", {}, labels.map((label) => h("tr", { dataset: { label } },
    h("th", { scope: "row" }, label, label === summary.baseline && summary.kind !== "toy"
      ? h("span", { class: "small muted" }, " (baseline)") : null),
    table.columns.map((c, i) => ourCell(ourRows.get(label)?.[i], c.format)),
    paperCols.map((_, i) => {
      const value = paperRows.get(label)?.[i];
      return h("td", { class: "num paper" }, value === null || value === undefined ? "–" : String(value));
    }))));
  const ours = table.rows.length ? null
    : h("p", { class: "muted small" }, "None of our runs recorded results yet (see the runs below).");
  return h("div", { class: "summary-table" },
    h("table", { class: "grid", id: "summary-table" }, head, body), ours,
    table.note ? h("p", { class: "small muted" }, table.note) : null,
    h("p", { class: "small citation", id: "paper-citation" },
      h("strong", {}, "Paper: "), paper.citation || "no paper numbers for this experiment"));
}

/**
 * The label-noise audit (summary.audit): per method and noise level, how well the inspector's noise
 * score ranks the planted (flipped) pairs — ROC AUC and precision@k with 95 % intervals, and the base rate.
 */
export function auditTable(summary) {
  if (!summary.audit || !summary.audit.rows.length) return null;
  const est = (e) => h("td", { class: "num ours" }, h("strong", {}, e.value === null ? "–" : e.value.toFixed(3)),
    e.low === null ? null : h("span", { class: "ci" }, `[${e.low.toFixed(3)}, ${e.high.toFixed(3)}]`));
  return h("div", { class: "summary-table", id: "audit" },
    h("h3", {}, "Does the noise score find the planted pairs?"),
    h("table", { class: "grid", id: "audit-table" },
      h("thead", {}, h("tr", {}, ["method", "noise", "pairs n", "planted k", "ROC AUC (chance 0.5)",
        "precision@k", "base rate k/n"].map((c) => h("th", {}, c)))),
      h("tbody", {}, summary.audit.rows.map((r) => h("tr", { dataset: { label: r.method, column: r.column } },
        h("th", { scope: "row" }, r.method), h("td", {}, r.column), h("td", { class: "num" }, String(r.n)),
        h("td", { class: "num" }, String(r.k)), est(r.auc), est(r.precision),
        h("td", { class: "num" }, r.base_rate.toFixed(3)))))),
    h("p", { class: "small muted" }, summary.audit.note));
}

/** The headline and one line per comparison (or claim), each with its verdict as a badge. */
export function verdictList(summary) {
  const items = summary.verdicts.map((v) => h("li", { class: `verdict ${v.category}` },
    h("span", { class: `badge verdict-${v.category}`, title: v.verdict },
      v.category === "none" ? v.verdict : VERDICT_WORDS[v.category]),
    " ", v.claim ? v.claim : comparison(v, summary.baseline)));
  return h("div", { id: "verdicts" },
    h("p", { class: "headline" }, summary.headline),
    items.length ? h("ul", { class: "verdicts" }, items) : null,
    summary.kind === "toy" ? null : h("p", { class: "small muted" },
      "Agrees / disagrees: our 95 % interval of the difference excludes 0 on the paper's side / on the other "
      + "side. Weaker than the paper: it holds 0 but not the paper's difference. Too noisy to tell: it holds "
      + "both. The paper's numbers come from another task, model and judge: compare directions, not levels."));
}

function comparison(v, baseline) {
  const [d, low, high] = (v.difference || []).map((x) => (x === null ? null : signed(x, 1)));
  const ours = d === null || d === undefined ? "ours –" : `ours ${d} points [${low}, ${high}]`;
  const basis = v.paper_basis ? ` (${v.paper_basis})` : "";
  const paper = v.paper_direction === null ? "" : `; paper ${signed(v.paper_direction, 2)}${basis}`;
  return h("span", {}, h("strong", {}, `${v.method} − ${baseline}`), ` at ${v.column}: ${ours}${paper}`);
}

function signed(x, digits) {
  return `${x > 0 ? "+" : x < 0 ? "−" : ""}${Math.abs(x).toFixed(digits)}`;
}
