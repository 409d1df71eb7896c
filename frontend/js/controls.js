// The view controls shared by the run and compare pages.

import { h } from "./dom.js";

/** Smoothing, log-y and step/time x for `view` (mutated in place); `onChange` redraws. */
export function viewControls(view, onChange, tip = "", withTime = true) {
  const value = h("span", { class: "small mono" }, "off");
  return h("div", { class: "card controls", id: "view-controls" },
    h("label", {}, "Smoothing", h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: 0, id: "smoothing",
      oninput: (e) => { view.smoothing = Number(e.target.value); value.textContent = view.smoothing ? view.smoothing.toFixed(2) : "off"; },
      onchange: onChange }), value),
    h("label", {}, h("input", { type: "checkbox", id: "log-y", onchange: (e) => { view.logY = e.target.checked; onChange(); } }), "log y"),
    !withTime ? null : h("label", {}, "x axis", h("select", { id: "x-mode", onchange: (e) => { view.x = e.target.value; onChange(); } },
      h("option", { value: "step" }, "step"), h("option", { value: "time" }, "time (estimated)"))),
    h("span", { class: "small muted" }, `Hover shows exact values; drag to zoom, double-click to reset${tip ? `; ${tip}` : "."}`));
}
