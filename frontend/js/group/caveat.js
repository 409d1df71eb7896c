// What a quick group's verdicts cannot tell: its runs trained fewer steps than the experiment's, so a
// "disagrees" (or "weaker", "too noisy") may only mean the runs were too short. No DOM here (tested
// with node).

/** "3000 steps" / "1500 or 3000 steps" from a list of step counts; "" when unknown. */
export function stepsText(steps) {
  if (!steps || !steps.length) return "";
  return `${steps.join(" or ")} steps`;
}

/**
 * The caveat under a quick group's verdicts, or null. group: {quick}; summary: {verdicts: [{category}]};
 * experiment: the preset from GET /api/experiments ({steps, quick_steps}) or null.
 */
export function quickCaveat(group, summary, experiment) {
  if (!group?.quick) return null;
  const doubtful = (summary?.verdicts || []).filter((v) => ["disagrees", "weaker", "noisy"].includes(v.category));
  if (!doubtful.length) return null;
  const short = stepsText(experiment?.quick_steps);
  const full = stepsText(experiment?.steps);
  const length = short && full ? ` (${short} per run instead of ${full})` : "";
  return `This is a quick run${length}: ${doubtful.length} of ${summary.verdicts.length} verdicts do not agree with `
    + "the paper, which may only mean the runs were too short. Run the full experiment before drawing a conclusion.";
}
