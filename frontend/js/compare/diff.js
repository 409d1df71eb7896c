// What differs between runs' configs: the diff table and the short legend labels.

import { h } from "../dom.js";
import { flatten, show } from "../run/evals.js";

const NOT_IN_LABEL = new Set(["name", "preset", "group"]);

/** Dotted keys whose values are not the same in every config. */
export function differingKeys(configs) {
  const maps = configs.map((c) => new Map(flatten(c)));
  const keys = new Set(maps.flatMap((m) => [...m.keys()]));
  return [...keys].filter((k) => new Set(maps.map((m) => JSON.stringify(m.get(k) ?? null))).size > 1).sort();
}

/** "tiny-beta-dpo · beta_dpo.enabled=true, loss.beta=0.2" — the run's name and what sets it apart. */
export function legendLabel(run, keys) {
  const flat = new Map(flatten(run.config));
  const bits = keys.filter((k) => !NOT_IN_LABEL.has(k)).slice(0, 3).map((k) => `${k.split(".").slice(-2).join(".")}=${show(flat.get(k))}`);
  return bits.length ? `${run.name} · ${bits.join(", ")}` : run.name;
}

/** A table of config keys (only the differing ones unless `all`), one column per run. */
export function diffTable(runs, all) {
  const configs = runs.map((r) => r.config);
  const differing = new Set(differingKeys(configs));
  const keys = all ? [...new Set(configs.flatMap((c) => flatten(c).map(([k]) => k)))] : [...differing];
  if (!keys.length) return h("p", { class: "muted" }, "The configs are identical.");
  const maps = configs.map((c) => new Map(flatten(c)));
  return h("table", { class: "grid diff", id: "config-diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "config key"), runs.map((r) => h("th", {}, r.name)))),
    h("tbody", {}, keys.map((k) => h("tr", {}, h("td", { class: "mono" }, k),
      maps.map((m) => h("td", { class: differing.has(k) ? "differs mono" : "mono" }, show(m.get(k))))))));
}
