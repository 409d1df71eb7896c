// The run header's β-DPO facts: which calibration scope the run used, and the β advice computed from
// its first steps' discrepancies (GET /api/runs/ID/beta_advice, contracts/beta_advice.py), opened on demand.

import { api, message } from "../api.js";
import { h, replace } from "../dom.js";
import { num } from "../format.js";

const SCOPE_TEXT = {
  batch: "one calibration per optimizer step over the whole batch (independent of micro_batch_size)",
  micro_batch: "one calibration per micro-batch, as the β-DPO authors' code (depends on micro_batch_size)",
};

/** The run's β-DPO calibration scope; runs recorded before the option existed calibrated per micro-batch. */
export function calibrationScope(config) {
  return config?.beta_dpo?.scope || "micro_batch";
}

/** " · scope batch" with its meaning as a tooltip; null when β-DPO is off. */
export function scopeNote(config) {
  const b = config?.beta_dpo;
  if (!b?.enabled) return null;
  const scope = calibrationScope(config);
  return h("span", { class: "small", id: "beta-scope", title: SCOPE_TEXT[scope] || scope }, ` · β-DPO scope ${scope}`);
}

/** A collapsed "β advice" box; the advice is fetched the first time it is opened. */
export function adviceBox(runId) {
  const body = h("div", { class: "small" }, "Opens to compute the advice from this run's first 10 steps.");
  let loaded = false;
  const box = h("details", { id: "beta-advice", class: "advice" }, h("summary", {}, "β advice"), body);
  box.addEventListener("toggle", async () => {
    if (!box.open || loaded) return;
    loaded = true;
    replace(body, "Computing…");
    try {
      const a = await api.betaAdvice(runId);
      replace(body,
        h("p", {}, h("strong", {}, `β0 ${num(a.beta0, 3)} · α ${num(a.alpha, 3)} · ρ ${num(a.keep_ratio, 2)}`),
          ` from ${a.pairs} pairs of steps ${a.steps[0]}–${a.steps[1]}`),
        h("ul", {}, a.reasons.map((r) => h("li", {}, r))));
    } catch (error) {
      replace(body, h("span", { class: "muted" }, message(error)));
    }
  });
  return box;
}
