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
  return h("div", {},
    h("div", {}, h("strong", {}, dataset.original_name), ` · ${r.detected_format} · ${r.rows} rows read, `,
      h("span", { class: r.invalid ? "field-error" : "" }, `${r.valid} valid, ${r.invalid} invalid`)),
    r.problems.length ? h("table", {}, h("tbody", {}, r.problems.slice(0, 8).map((p) =>
      h("tr", {}, h("td", {}, `line ${p.line}`), h("td", {}, p.field), h("td", {}, p.message)))),
    r.problems_total > 8 ? h("tr", {}, h("td", { colspan: 3, class: "muted" }, `… ${r.problems_total - 8} more`)) : null) : null,
    preview.rows.length ? h("table", {}, h("tbody", {}, preview.rows.slice(0, 3).map((row) =>
      h("tr", {}, h("td", {}, `line ${row.line}`), h("td", {}, clip(row.prompt)), h("td", {}, clip(row.chosen)), h("td", {}, clip(row.rejected)))))) : null);
}

function clip(text) {
  const s = String(text ?? "");
  return s.length > 80 ? `${s.slice(0, 79)}…` : s;
}
