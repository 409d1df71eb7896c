// New run: the RunConfig form (generated from GET /api/schema), presets to start from, the dataset
// picker, inline 422 errors, "launch group" for the β-DPO ablations, and "clone with edits"
// (#/new?from=RUN_ID posts only the changed keys to /runs/ID/clone).

import { api, message } from "../api.js";
import { h, replace } from "../dom.js";
import { allowanceWidgets } from "../form/allowances.js";
import { datasetPicker } from "../form/datasets.js";
import { overrides } from "../form/overrides.js";
import { SchemaForm } from "../form/schema.js";

export async function mount(root, { params }) {
  const [schema, presets] = await Promise.all([api.schema(), api.presets()]);
  const from = params.get("from");
  const parent = from ? await api.run(from) : null;
  const page = new NewRunPage(root, schema, presets, parent);
  if (parent) page.form.set(parent.config);
  else if (params.get("preset")) page.usePreset(params.get("preset"));
  page.groupName.value = `${page.form.value().name}-ablations`;
  return undefined;
}

class NewRunPage {
  constructor(root, schema, presets, parent) {
    this.schema = schema;
    this.presets = presets;
    this.parent = parent;
    this.form = new SchemaForm(schema, { ...allowanceWidgets(), "data.path": (input) => datasetPicker(input, () => {
      this.form.fields.get("data.source").input.value = "file";
      this.form.clearErrors(); // a refusal of the previous dataset no longer applies
      this.summary.hidden = true;
    }) });
    this.summary = h("div", { class: "errors-summary", role: "alert", id: "form-errors", hidden: true });
    this.note = h("div", { class: "small muted", role: "status", id: "launch-note" });
    this.groupName = h("input", { id: "group-name", placeholder: "group name" });
    this.launch = h("button", { class: "primary", id: "launch", type: "submit" }, parent ? "Launch clone" : "Launch run");
    const formNode = h("form", { id: "run-form", novalidate: true, onsubmit: (e) => this.submit(e) },
      this.summary, this.form.node, h("div", { class: "card" }, this.launch));
    replace(root,
      h("div", { class: "page-head" }, h("h1", {}, parent ? `Clone “${parent.name}” with edits` : "New run"),
        parent ? h("a", { href: `#/run/${parent.id}` }, "← back to the run") : null),
      h("div", { class: "form-layout" }, formNode, h("aside", { class: "form-side" }, this.startCard(), this.groupCard())));
  }

  startCard() {
    const select = h("select", { id: "preset-select", "aria-label": "preset", onchange: (e) => this.usePreset(e.target.value) },
      h("option", { value: "" }, "defaults"), this.presets.map((p) => h("option", { value: p.name }, p.name)));
    this.presetSelect = select;
    return h("div", { class: "card" }, h("h2", {}, "Start from"),
      this.parent ? h("p", { class: "small muted" }, "The parent's config; only the fields you change are sent.")
        : h("label", { class: "field" }, h("span", { class: "small muted" }, "preset"), select),
      h("p", {}, h("button", { type: "submit", form: "run-form", class: "primary", id: "launch-side" },
        this.parent ? "Launch clone" : "Launch run")),
      this.note);
  }

  groupCard() {
    if (this.parent) return null;
    return h("div", { class: "card" }, h("h2", {}, "β-DPO ablations"),
      h("p", { class: "small muted" }, "Four runs of this config in one group: DPO, + dynamic β, + filtering, β-DPO."),
      h("div", { class: "field" }, this.groupName),
      h("p", {}, h("button", { id: "launch-group", type: "button", onclick: () => this.submitGroup() }, "Launch ablation group")));
  }

  /** Fill the form from preset `name` ("" = the schema's defaults). */
  usePreset(name) {
    const preset = this.presets.find((p) => p.name === name);
    this.presetSelect.value = preset ? name : "";
    this.form.set(preset ? preset.config : new SchemaForm(this.schema).value());
    this.groupName.value = `${this.form.value().name}-ablations`;
    this.clear();
  }

  clear() {
    this.form.clearErrors();
    this.summary.hidden = true;
  }

  /** A refused launch: each 422 message next to its field, all of them in the summary on top. */
  showErrors(error, strip) {
    const items = error.errors.length ? error.errors : [{ loc: [], msg: message(error) }];
    const unplaced = this.form.showErrors(items, strip);
    this.summary.hidden = false;
    replace(this.summary, h("strong", {}, `The server refused this config (${error.status ?? "error"}):`),
      h("ul", {}, items.map((e) => h("li", {}, this.form.label(e.loc, strip) || "config", ": ", e.msg))),
      unplaced.length ? null : h("span", { class: "small" }, "Each message is also shown next to its field."));
    (this.form.firstInvalid() || this.summary).scrollIntoView({ block: "center" });
  }

  async submit(event) {
    event.preventDefault();
    this.clear();
    this.launch.disabled = true;
    this.note.textContent = "Launching…";
    try {
      const config = this.form.value();
      const run = this.parent
        ? await api.clone(this.parent.id, overrides(this.parent.config, config, this.form.wholes))
        : await api.createRun(config);
      location.hash = `#/run/${run.id}`;
    } catch (error) {
      this.note.textContent = "";
      if (error.status !== 401) this.showErrors(error, ["body"]);
    } finally {
      this.launch.disabled = false;
    }
  }

  async submitGroup() {
    this.clear();
    this.note.textContent = "Launching the four ablations…";
    try {
      const runs = await api.createGroup(this.groupName.value.trim() || "ablations", this.form.value());
      location.hash = `#/compare?runs=${runs.map((r) => r.id).join(",")}`;
    } catch (error) {
      this.note.textContent = "";
      if (error.status !== 401) this.showErrors(error, ["body", "base"]);
    }
  }
}
