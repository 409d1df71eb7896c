// A form generated from a pydantic JSON schema (RunConfig's, from GET /api/schema): nested objects
// become fieldsets, enums selects, booleans checkboxes, `X | None` optional inputs, `Section | None`
// (model.lora) an "enable" checkbox over the section's fieldset, tuples of enums checkbox groups, and
// a discriminated union (the loss) a "kind" select that swaps its fields. The inputs themselves are
// drawn in controls.js. value() returns the config object; showErrors() puts a 422's messages next to
// their fields.

import { h, replace } from "../dom.js";
import { cleanDoc, fieldId, hintOf, makeControl, titleOf } from "./controls.js";

const NULLABLE = (s) => Array.isArray(s.anyOf) && s.anyOf.some((x) => x.type === "null");

export class SchemaForm {
  /** widgets: {"data.path": (input, form) → Node} extra controls placed after a field. */
  constructor(schema, widgets = {}) {
    this.schema = schema;
    this.widgets = widgets;
    this.fields = new Map(); // dotted path → {node, error}
    this.sections = new Map(); // dotted path → {node, error}
    this.wholes = new Set(); // dotted paths a clone sends whole when anything in them changes
    this.root = this.object(schema, "", true);
    this.node = this.root.node;
  }

  resolve(s) {
    if (s.$ref) return this.schema.$defs[s.$ref.split("/").pop()];
    if (s.allOf?.length === 1) return this.resolve(s.allOf[0]);
    return s;
  }

  build(raw, path, name) {
    const s = this.resolve(raw);
    if (raw.oneOf && raw.discriminator) return this.union(raw, path, name);
    if (NULLABLE(raw)) {
      const inner = this.resolve(raw.anyOf.find((x) => x.type !== "null"));
      if (inner.type === "object" && inner.properties) return this.optional(raw, inner, path, name);
    }
    if (s.type === "object" && s.properties) return this.object(s, path, false, name);
    return this.scalar(raw, path, name);
  }

  /** bare: never folded into a <details> (an optional section has its own checkbox). */
  object(s, path, top, name, bare = false) {
    const parts = Object.entries(s.properties).map(([key, sub]) => [key, this.build(sub, path ? `${path}.${key}` : key, key)]);
    const plain = parts.filter(([, p]) => !p.section);
    const nested = parts.filter(([, p]) => p.section);
    const error = h("div", { class: "section-error", role: "alert" });
    let node;
    if (top) {
      node = h("div", { class: "schema-form" }, error,
        h("fieldset", { dataset: { path: "run" } }, h("legend", {}, "Run"), h("div", { class: "fields" }, plain.map(([, p]) => p.node))),
        nested.map(([, p]) => p.node));
    } else {
      node = h("fieldset", { dataset: { path } }, h("legend", {}, titleOf(s, name)),
        s.description ? h("p", { class: "section-note" }, cleanDoc(s.description)) : null, error,
        plain.length ? h("div", { class: "fields" }, plain.map(([, p]) => p.node)) : null, nested.map(([, p]) => p.node));
    }
    this.sections.set(path, { node, error });
    const outer = path.includes(".") && !bare ? h("details", { class: "subsection" }, h("summary", {}, titleOf(s, name)), node) : node;
    return {
      node: outer, section: true,
      get: () => Object.fromEntries(parts.map(([key, p]) => [key, p.get()]).filter(([, v]) => v !== undefined)),
      set: (value) => { for (const [key, p] of parts) if (value && key in value) p.set(value[key]); },
    };
  }

  /** `Section | None`: an "enable" checkbox (the field's name and description); ticked, the section's
   * own fields (their defaults, hints and errors) below it; unticked, the value is null. */
  optional(raw, s, path, name) {
    const inner = this.object(s, path, false, name, true);
    const defaults = inner.get();
    const box = h("input", { id: fieldId(path), name: path, type: "checkbox" });
    const error = h("span", { class: "field-error", role: "alert" });
    const toggle = h("div", { class: "field optional-toggle", dataset: { path } },
      h("label", {}, box, ` ${titleOf(raw, name)}`),
      raw.description ? h("span", { class: "hint" }, cleanDoc(raw.description)) : null, error);
    const show = () => { inner.node.hidden = !box.checked; };
    box.addEventListener("change", show);
    this.fields.set(path, { node: toggle, error, input: box });
    this.wholes.add(path);
    const set = (value) => {
      box.checked = value !== null && value !== undefined;
      inner.set({ ...defaults, ...(value || {}) });
      show();
    };
    set(raw.default);
    return {
      node: h("div", { class: "optional-section", dataset: { path } }, toggle, inner.node), section: true,
      get: () => (box.checked ? inner.get() : null),
      set,
    };
  }

  union(raw, path, name) {
    this.wholes.add(path);
    const mapping = raw.discriminator.mapping;
    const prop = raw.discriminator.propertyName;
    const kinds = Object.keys(mapping);
    const select = h("select", { name: `${path}.${prop}`, id: fieldId(`${path}.${prop}`) },
      kinds.map((k) => h("option", { value: k }, k)));
    const holder = h("div");
    const error = h("div", { class: "section-error", role: "alert" });
    const kindField = h("div", { class: "field" }, h("label", { for: select.id }, prop), select,
      h("span", { class: "field-error", role: "alert" }));
    this.fields.set(`${path}.${prop}`, { node: kindField, error: kindField.lastChild });
    let current = null;
    const show = (kind, value) => {
      const s = this.schema.$defs[mapping[kind].split("/").pop()];
      for (const key of [...this.fields.keys()]) if (key.startsWith(`${path}.`) && key !== `${path}.${prop}`) this.fields.delete(key);
      const props = Object.fromEntries(Object.entries(s.properties).filter(([k]) => k !== prop));
      current = this.object({ ...s, properties: props }, path, false, name);
      if (value) current.set(value);
      replace(holder, current.node.querySelector(".fields") || "", current.node.querySelector(".section-note") || "");
      this.sections.set(path, { node, error });
    };
    select.addEventListener("change", () => show(select.value, current?.get()));
    const node = h("fieldset", { dataset: { path } }, h("legend", {}, titleOf(raw, name)), error,
      h("div", { class: "fields" }, kindField), holder);
    show(kinds[0]);
    return {
      node, section: true,
      get: () => ({ [prop]: select.value, ...current.get() }),
      set: (value) => {
        if (!value) return;
        select.value = value[prop] ?? kinds[0];
        show(select.value, value);
      },
    };
  }

  scalar(raw, path, name) {
    const nullable = NULLABLE(raw);
    const s = nullable ? this.resolve(raw.anyOf.find((x) => x.type !== "null")) : this.resolve(raw);
    const id = fieldId(path);
    const control = makeControl(s, id, path, nullable);
    const error = h("span", { class: "field-error", role: "alert" });
    const hint = [control.hint, hintOf(s, nullable, raw.description)].filter(Boolean).join(" · ");
    const node = h("div", { class: "field", dataset: { path } },
      s.type === "boolean" ? h("label", {}, control.input, ` ${titleOf(raw, name)}`)
        : [h("label", { for: id }, titleOf(raw, name)), control.input],
      hint ? h("span", { class: "hint" }, hint) : null, error);
    if (this.widgets[path]) {
      node.classList.add("wide");
      node.append(this.widgets[path](control.input, this));
    }
    this.fields.set(path, { node, error, input: control.input });
    if (raw.default !== undefined) control.set(raw.default);
    return { node, get: control.get, set: control.set };
  }

  value() {
    return this.root.get();
  }

  set(config) {
    this.root.set(config);
  }

  clearErrors() {
    for (const f of [...this.fields.values(), ...this.sections.values()]) {
      f.error.textContent = "";
      f.node.classList.remove("invalid");
    }
  }

  /** Place 422 items ({loc, msg}) next to their fields; `strip` leading loc parts (e.g. ["body"]).
   * Returns the items that could only be placed at the top. */
  showErrors(items, strip = ["body"]) {
    this.clearErrors();
    const unplaced = [];
    for (const item of items) {
      const label = this.label(item.loc, strip);
      const target = this.nearest(label ? label.split(".") : []);
      if (!target) {
        unplaced.push(item);
        continue;
      }
      target.error.textContent = target.error.textContent ? `${target.error.textContent}; ${item.msg}` : item.msg;
      target.node.classList.add("invalid");
      target.node.closest("details")?.setAttribute("open", "");
    }
    return unplaced;
  }

  /** The dotted field of a 422 loc as the form names it: the API reports the path as written
   * ("loss.beta", never pydantic's "loss.dpo.beta"), so only the "body" prefix goes. */
  label(loc, strip = ["body"]) {
    let parts = (loc || []).map(String);
    for (const s of strip) if (parts[0] === s) parts = parts.slice(1);
    return parts.join(".");
  }

  nearest(parts) {
    for (let n = parts.length; n > 0; n -= 1) {
      const path = parts.slice(0, n).join(".");
      const found = this.fields.get(path) || this.sections.get(path);
      if (found) return found;
    }
    return null;
  }

  /** The first field marked invalid (to scroll to). */
  firstInvalid() {
    return this.node.querySelector(".invalid");
  }
}
