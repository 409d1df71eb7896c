// The 3D-properties alerts (docs/SCIENCE.md §C.5) in plain language, and the current slopes read out.

import { h } from "../dom.js";
import { num } from "../format.js";
import { K } from "../keys.js";

const PAPER = "https://arxiv.org/abs/2406.07327";

export const ALERTS = [
  {
    key: K.alertD2, short: "degradation", code: "D2",
    title: (step) => `Degradation into unlearning since step ${step}`,
    text: "The chosen responses' log-probability has passed its peak and is now going down, while the "
      + "rejected ones keep falling. The margin still grows, but mostly by pushing everything down: the "
      + "model is unlearning the data instead of learning which response to prefer. Usual remedies: an SFT "
      + "term on the chosen responses, a smaller learning rate or β, or stopping at the chosen peak.",
    science: "docs/SCIENCE.md §C.5 D2: ṡ_w < −ε and ṡ_l < −ε for J consecutive windows after ρ̄_w passed its "
      + "running maximum; S_l > 1 sustained.",
  },
  {
    key: K.alertD1, short: "drastic drop", code: "D1",
    title: (step) => `Drastic drop of the rejected side since step ${step}`,
    text: "The rejected responses' per-token log-ratio is falling many times faster than the chosen side "
      + "moves. DPO's gradient on the rejected response grows with π_w/π_l (G), so once the rejected side "
      + "is unlikely it absorbs most of the update.",
    science: "docs/SCIENCE.md §C.5 D1: D1_rate = ṡ_l / max(|ṡ_w|, ε) < −κ over the slope window.",
  },
  {
    key: K.alertD3, short: "dispersion", code: "D3",
    title: (step) => `Dispersion onto unseen responses since step ${step}`,
    text: "Both the chosen and the rejected probabilities are falling while the mass outside the pair "
      + "grows: probability is leaking to responses that never appear in the preference data.",
    science: "docs/SCIENCE.md §C.5 D3: π_w and Σπ_l decrease while M_outpair (or D3_pair < 0) grows.",
  },
];

/** Fired alerts as [{...ALERTS item, step}] from the alert series (first step with value > 0). */
export function firedAlerts(store) {
  const fired = [];
  for (const alert of ALERTS) {
    const s = store.get(alert.key);
    const i = s.values.findIndex((v) => v !== null && v > 0);
    if (i >= 0) fired.push({ ...alert, step: s.steps[i] });
  }
  return fired.sort((a, b) => a.step - b.step);
}

/** The alert list with explanations, or a calm "no alert" line. */
export function alertList(store) {
  const fired = firedAlerts(store);
  if (!fired.length) {
    return h("div", { class: "alerts" }, h("div", { class: "alert ok", dataset: { alert: "none" } },
      h("strong", {}, "No 3D alert so far"),
      "Chosen and rejected log-ratios are not showing drastic drop, degradation or dispersion."));
  }
  return h("div", { class: "alerts" }, fired.map((a) => h("div", { class: "alert", dataset: { alert: a.short } },
    h("strong", {}, `${a.code} · ${a.title(a.step)}`),
    a.text,
    h("details", {}, h("summary", { class: "small" }, "the science"),
      h("div", { class: "small" }, a.science, " ", h("a", { href: PAPER, target: "_blank", rel: "noopener" },
        "Yan et al., 3D-properties (arXiv 2406.07327)"))))));
}

/** The latest slopes, D1 rate, S_l, drawdown and pair mass, each with a plain reading. */
export function slopeReadout(store) {
  const sw = store.last(K.slopeChosen);
  const sl = store.last(K.slopeRejected);
  const direction = (v) => (v === null ? "" : v > 0 ? "rising" : v < 0 ? "falling" : "flat");
  const steps = store.get(K.slopeChosen).steps;
  const step = steps.length ? steps[steps.length - 1] : null;
  const rows = [
    ["at step", step === null ? "—" : String(step), ""],
    ["ṡ_w chosen slope", sw, direction(sw)],
    ["ṡ_l rejected slope", sl, direction(sl)],
    ["D1 rate ṡ_l/|ṡ_w|", store.last(K.d1Rate), ""],
    ["S_l rejected share", store.last(K.rejectedShare), ""],
    ["chosen drawdown", store.last(K.chosenDrawdown), ""],
    ["pair mass (log)", store.last(K.pairMass), ""],
  ];
  return h("dl", { class: "kv", id: "slopes", dataset: { step: step ?? "" } }, rows.flatMap(([name, value, reading]) => [
    h("dt", {}, name), h("dd", {}, `${typeof value === "string" ? value : num(value, 3)}${reading ? ` (${reading})` : ""}`)]));
}
