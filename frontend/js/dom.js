// Building DOM nodes without innerHTML (so run names and pair texts are never parsed as HTML).

/**
 * h("div", {class: "x", onclick: fn, dataset: {k: "v"}}, child, [children], "text") → HTMLElement.
 * Attributes: "class", "style" (string), "dataset" (object), on* (listeners), boolean true/false,
 * null/undefined skipped; everything else goes through setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in node) node.value = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

/** Append children (nodes, strings, numbers, nested arrays; null/false skipped). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node` with `children`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A drawn state: kind is "loading", "empty" or "error". */
export function stateBox(kind, message) {
  return h("div", { class: `state state-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
}

/** A small labelled value, e.g. "step 12 / 60". */
export function stat(label, value, attrs = {}) {
  return h("div", { class: "stat", ...attrs }, h("span", { class: "stat-label" }, label),
    h("span", { class: "stat-value" }, value));
}
