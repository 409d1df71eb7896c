// The input drawn for one leaf of the RunConfig schema (a select, a checkbox, a number, a comma-separated
// list, a list-or-word such as lora.target_modules, free text) with how it reads and writes its value,
// and the label and hint text of a field. SchemaForm (schema.js) lays these out.

import { h } from "../dom.js";

/** {input, get, set, hint?} for one schema leaf; `nullable`: an empty input means null. */
export function makeControl(s, id, path, nullable) {
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
  if (listOrWord(s)) return listOrWordControl(s, id, path);
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

export function fieldId(path) {
  return `f-${path.replaceAll(".", "-")}`;
}

export function titleOf(s, name) {
  return name ? name.replaceAll("_", " ") : s.title || "";
}

export function cleanDoc(text) {
  return text.replaceAll("``", "").split("\n\n")[0];
}

/** The field's description, then its bounds: "… ≥ 1, ≤ 1024", "> 0, ≤ 1", "optional". */
export function hintOf(s, nullable, description) {
  const bits = [];
  const bounds = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bounds.push(`≤ ${s.maximum}`);
  if (s.exclusiveMaximum !== undefined) bounds.push(`< ${s.exclusiveMaximum}`);
  if (nullable) bounds.push("optional");
  if (description) bits.push(cleanDoc(description));
  if (bounds.length) bits.push(bounds.join(", "));
  return bits.join(" · ");
}

/** `list[str] | Literal["word", …]` (lora.target_modules): the words a field takes besides a list. */
function listOrWord(s) {
  if (!Array.isArray(s.anyOf)) return null;
  const lists = s.anyOf.filter((x) => x.type === "array");
  const words = s.anyOf.filter((x) => x.const !== undefined).map((x) => String(x.const));
  return lists.length === 1 && words.length && lists.length + words.length === s.anyOf.length ? words : null;
}

/** A comma-separated input: one of the words alone is sent as that word, anything else as a list. */
function listOrWordControl(s, id, path) {
  const words = listOrWord(s);
  const input = h("input", { id, name: path, type: "text", placeholder: `comma-separated, or ${words.join(" / ")}` });
  return {
    input, hint: `comma-separated names, or ${words.join(" / ")}`,
    get: () => parseListOrWord(input.value, words),
    set: (v) => { input.value = Array.isArray(v) ? v.join(", ") : v ?? ""; },
  };
}

/** "q_proj, v_proj" → ["q_proj", "v_proj"]; "all-linear" (one of `words`) → "all-linear". */
export function parseListOrWord(text, words) {
  const trimmed = text.trim();
  if (words.includes(trimmed)) return trimmed;
  return trimmed.split(",").map((x) => x.trim()).filter(Boolean);
}
