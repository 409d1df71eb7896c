// "Clone with edits": the changes between the parent's config and the form's, as the dotted-key
// overrides POST /runs/ID/clone takes. A section the form sends whole (the loss union, an optional
// section such as model.lora) is sent as one value, since the server cannot set "model.lora.r" on a
// parent whose lora is null, nor mix the fields of two loss kinds.

import { flatten } from "../run/evals.js";

/** {dotted key: value} for each leaf of `after` that differs from `before`; a changed leaf under one of
 * `wholes` (dotted paths) sends that whole section instead. */
export function overrides(before, after, wholes) {
  const old = new Map(flatten(before));
  const out = {};
  for (const [key, value] of flatten(after)) {
    if (JSON.stringify(old.get(key)) === JSON.stringify(value)) continue;
    const whole = [...wholes].find((w) => key === w || key.startsWith(`${w}.`));
    if (whole) out[whole] = at(after, whole);
    else out[key] = value;
  }
  return out;
}

function at(config, dotted) {
  return dotted.split(".").reduce((node, key) => (node === null || node === undefined ? undefined : node[key]), config);
}
