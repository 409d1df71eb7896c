// A form generated from a pydantic JSON schema (RunConfig's, from GET /api/schema): nested objects
// become fieldsets, enums selects, booleans checkboxes, `X | None` optional inputs, tuples of enums
// checkbox groups, and a discriminated union (the loss) a "kind" select that swaps its fields.
// value() returns the config object; showErrors() puts a 422's messages next to their fields.

import { h, replace } from "../dom.js";

const NULLABLE = (s) => Array.isArray(s.anyOf) && s.anyOf.some((x) => x.type === "null");

export class SchemaForm {
  /** widgets: {"data.path": (input, form) → Node} extra controls placed after a field. */
  constructor(schema, widgets = {}) {
    this.schema = schema;
    this.widgets = widgets;
    this.fields = new Map(); // dotted path → {node, error}
    this.sections = new Map(); // dotted path → {node, error}
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
    if (s.type === "object" && s.properties) return this.object(s, path, false, name);
    return this.scalar(raw, path, name);
  }

  object(s, path, top, name) {
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
    const outer = path.includes(".") ? h("details", { class: "subsection" }, h("summary", {}, titleOf(s, name)), node) : node;
    return {
      node: outer, section: true,
      get: () => Object.fromEntries(parts.map(([key, p]) => [key, p.get()]).filter(([, v]) => v !== undefined)),
      set: (value) => { for (const [key, p] of parts) if (value && key in value) p.set(value[key]); },
    };
  }

  union(raw, path, name) {
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
    const hint = hintOf(s, nullable);
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

function makeControl(s, id, path, nullable) {
  if (s.enum) {
    const input = h("select", { id, name: path }, nullable ? h("option", { value: "" }, "—") : null,
      s.enum.map((v) => h("option", { value: String(v) }, String(v))));
    return { input, get: () => (input.value === "" && nullable ? null : input.value), set: (v) => { input.value = v ?? ""; } };
  }
  if (s.type === "boolean") {
    const input = h("input", { id, name: path, type: "checkbox" });
    return { input, get: () => input.checked, set: (v) => { input.checked = Boolean(v); } };
  }
  if (s.type === "array") return arrayControl(s, id, path);
  if (s.type === "integer" || s.type === "number") {
    const input = h("input", { id, name: path, type: "number", step: s.type === "integer" ? 1 : "any" });
    const get = () => {
      if (input.value.trim() === "") return nullable ? null : input.validity.badInput ? "invalid" : null;
      return Number(input.value);
    };
    return { input, get, set: (v) => { input.value = v === null || v === undefined ? "" : String(v); } };
  }
  const input = h("input", { id, name: path, type: "text", placeholder: nullable ? "(none)" : "" });
  return { input, get: () => (input.value === "" && nullable ? null : input.value), set: (v) => { input.value = v ?? ""; } };
}

function arrayControl(s, id, path) {
  const items = s.items || {};
  if (items.enum) {
    const boxes = items.enum.map((v) => h("input", { type: "checkbox", value: String(v), name: path }));
    const input = h("div", { class: "choices", id }, boxes.map((b) => h("label", {}, b, ` ${b.value}`)));
    return { input, get: () => boxes.filter((b) => b.checked).map((b) => b.value),
      set: (v) => { for (const b of boxes) b.checked = (v || []).map(String).includes(b.value); } };
  }
  const numeric = items.type === "number" || items.type === "integer";
  const input = h("input", { id, name: path, type: "text", placeholder: "comma-separated" });
  const get = () => input.value.split(",").map((x) => x.trim()).filter(Boolean).map((x) => (numeric && x !== "" && !Number.isNaN(Number(x)) ? Number(x) : x));
  return { input, get, set: (v) => { input.value = (v || []).join(", "); } };
}

function fieldId(path) {
  return `f-${path.replaceAll(".", "-")}`;
}

function titleOf(s, name) {
  return name ? name.replaceAll("_", " ") : s.title || "";
}

function cleanDoc(text) {
  return text.replaceAll("``", "").split("\n\n")[0];
}

/** "1 … 1000000", "> 0, ≤ 1", "optional". */
function hintOf(s, nullable) {
  const bits = [];
  if (s.minimum !== undefined) bits.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bits.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bits.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bits.push(`< ${s.exclusiveMaximum}`);
  if (nullable) bits.push("optional");
  return bits.join(", ");
}
