// What applies to a run: config keys and panels that mean something for its kind of run. A DPO run
// has no β-DPO calibration (β is β0, nothing is filtered); a tiny/pretrained run has no toy spec; a toy
// run has no tokenizer, text data or LoRA; only the chosen model source's fields are used.

/** Config key prefixes (dotted) that do not apply to `config`. */
function unused(config) {
  const source = config.model?.source;
  const drop = [];
  if (source !== "toy") drop.push("model.toy.");
  if (source !== "tiny") drop.push("model.tiny.");
  if (source !== "pretrained" && source !== "gguf") drop.push("model.path", "model.gguf_file");
  if (source === "toy") {
    drop.push("data.path", "data.eval_path", "data.format", "data.constructed.", "data.max_length", "data.max_prompt_length",
      "model.gradient_checkpointing", "model.checkpoint_every_n_layers", "model.share_prompt", "evaluation.", "probes.");
  } else if (config.data?.source !== "constructed") {
    drop.push("data.constructed.");
  }
  if (!config.beta_dpo?.enabled) drop.push("beta_dpo.");
  if (!config.sft?.weight) drop.push("sft.form");
  if (!config.evaluation?.every && !config.evaluation?.at_end) drop.push("evaluation.");
  return drop;
}

/** [[key, value]] pairs of a flattened config without the keys that do not apply (beta_dpo.enabled stays). */
export function applicableConfig(config, pairs) {
  const drop = unused(config || {});
  return pairs.filter(([key]) => key === "beta_dpo.enabled" || key === "evaluation.every"
    || !drop.some((prefix) => key === prefix || key.startsWith(prefix)));
}

/** Whether a run-page panel applies to the run ("beta": β-DPO only; "toy": toy runs only). */
export function panelApplies(panel, config) {
  if (panel === "beta") return Boolean(config?.beta_dpo?.enabled);
  if (panel === "toy") return config?.model?.source === "toy";
  return true;
}
