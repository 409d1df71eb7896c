// The dataset picker placed under data.path: choose an uploaded dataset or upload one (POST
// /api/datasets), and see its validation report (problems with line numbers) and first rows.

import { api, message } from "../api.js";
import { h, replace } from "../dom.js";

/** The picker for `input` (the data.path text field). `onPick(path)` also sets data.source. */
export function datasetPicker(input, onPick) {
  const choose = h("select", { "aria-label": "uploaded dataset", id: "dataset-select" }, h("option", { value: "" }, "uploaded datasets…"));
  const file = h("input", { type: "file", id: "dataset-upload", accept: ".jsonl,.json,.gz,.parquet" });
  const report = h("div", { class: "report", id: "dataset-report" });
  const known = new Map();

  const refresh = async (selected) => {
    const list = await api.datasets().catch(() => []);
    known.clear();
    replace(choose, h("option", { value: "" }, list.length ? "uploaded datasets…" : "no uploads yet"),
      list.map((d) => {
        known.set(d.name, d);
        return h("option", { value: d.name, selected: d.name === selected }, `${d.original_name} (${d.report?.valid ?? "?"} rows)`);
      }));
  };

  const pick = async (dataset) => {
    input.value = dataset.path;
    onPick(dataset.path);
    replace(report, h("span", { class: "muted" }, "Loading preview…"));
    try {
      const preview = await api.preview(dataset.name);
      replace(report, reportView(dataset, preview));
    } catch (error) {
      replace(report, h("span", { class: "field-error" }, `Preview failed: ${message(error)}`));
    }
  };

  choose.addEventListener("change", () => {
    const dataset = known.get(choose.value);
    if (dataset) pick(dataset);
  });
  file.addEventListener("change", async () => {
    const chosen = file.files?.[0];
    if (!chosen) return;
    replace(report, h("span", { class: "muted" }, `Uploading ${chosen.name}…`));
    try {
      const dataset = await api.upload(chosen);
      await refresh(dataset.name);
      await pick(dataset);
      if (dataset.reused) {
        report.prepend(h("div", { class: "muted", id: "dataset-reused" },
          `This file was already uploaded (as ${dataset.original_name}); that dataset is selected, no copy was added.`));
      }
    } catch (error) {
      replace(report, h("div", { class: "field-error", role: "alert" }, `Upload refused: ${message(error)}`));
    }
    file.value = "";
  });
  refresh();
  return h("div", { class: "dataset-picker" },
    h("div", { class: "filters" }, choose, h("label", {}, "or upload", file)), report);
}

function reportView(dataset, preview) {
  const r = preview.report;
  const whole = dataset.report ?? r; // the upload's report covers every row; the preview's the first ones
  return h("div", {},
    h("div", {}, h("strong", {}, dataset.original_name), ` · ${whole.detected_format} · ${whole.rows} rows read, `,
      h("span", { class: whole.invalid ? "field-error" : "" }, `${whole.valid} valid, ${whole.invalid} invalid`)),
    h("div", { class: "muted", id: "dataset-valid-rows" },
      `${whole.valid} valid rows will train (less the held-out share); a launch needs at least optim.micro_batch_size of them.`),
    r.problems.length ? h("table", { class: "problems" },
      head("Line", "Field", "Problem"),
      h("tbody", {}, r.problems.slice(0, 8).map((p) =>
        h("tr", {}, h("td", {}, `line ${p.line}`), h("td", {}, p.field), h("td", {}, p.message))),
      r.problems_total > 8 ? h("tr", {}, h("td", { colspan: 3, class: "muted" }, `… ${r.problems_total - 8} more`)) : null)) : null,
    preview.rows.length ? h("table", { class: "preview" },
      head("Line", "Prompt", "Chosen", "Rejected"),
      h("tbody", {}, preview.rows.slice(0, 3).map((row) =>
        h("tr", {}, h("td", {}, `line ${row.line}`), h("td", {}, clip(row.prompt)), h("td", {}, clip(row.chosen)), h("td", {}, clip(row.rejected)))))) : null);
}

function head(...names) {
  return h("thead", {}, h("tr", {}, names.map((name) => h("th", { scope: "col" }, name))));
}

function clip(text) {
  const s = typeof text === "string" ? text : JSON.stringify(text ?? "");
  return s.length > 80 ? `${s.slice(0, 79)}…` : s;
}
