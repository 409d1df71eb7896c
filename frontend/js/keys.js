// Metric keys: the same names as contracts/metric_keys.py (the single source; keep in step).

export const K = Object.freeze({
  loss: "train/loss",
  beta: "train/beta",
  lr: "train/lr",
  gradNorm: "train/grad_norm",
  sftLoss: "train/sft_loss",
  examplesPerSecond: "train/examples_per_second",
  m0: "train/beta_dpo/m0",
  sigma: "train/beta_dpo/sigma",
  keptFraction: "train/beta_dpo/kept_fraction",
  mBarKept: "train/beta_dpo/m_bar_kept",
  mBarAll: "train/beta_dpo/m_bar_all",
  filteredHigh: "train/beta_dpo/filtered_high",
  filteredLow: "train/beta_dpo/filtered_low",
  rewardsChosen: "train/rewards/chosen",
  rewardsRejected: "train/rewards/rejected",
  rewardsMargin: "train/rewards/margin",
  accuracy: "train/rewards/accuracy",
  logpsChosen: "train/logps/chosen",
  logpsRejected: "train/logps/rejected",
  logratioChosen: "train/logratio_per_token/chosen",
  logratioRejected: "train/logratio_per_token/rejected",
  chosenBelowReference: "train/chosen_below_reference",
  gradLogRatio: "train/grad/log_ratio",
  gradWeight: "train/grad/weight",
  gradNormRatio: "train/grad/norm_ratio",
  d1Rate: "train/3d/drastic_drop_rate",
  slopeChosen: "train/3d/slope_chosen",
  slopeRejected: "train/3d/slope_rejected",
  rejectedShare: "train/3d/rejected_share",
  chosenDrawdown: "train/3d/chosen_drawdown",
  pairMass: "train/3d/pair_mass",
  pairMassPerToken: "train/3d/pair_mass_per_token",
  alertD1: "train/3d/alert/drastic_drop",
  alertD2: "train/3d/alert/degradation",
  alertD3: "train/3d/alert/dispersion",
  toyChosen: "toy/prob/chosen",
  toyRejected: "toy/prob/rejected",
  toyUnseen: "toy/mass/unseen",
  toyOutOfPair: "toy/mass/out_of_pair",
  toyEntropy: "toy/entropy",
  progress: "run/progress",
  evalLoss: "eval/loss",
  evalAccuracy: "eval/rewards/accuracy",
  evalMargin: "eval/rewards/margin",
  probeChosen: "probe/logratio/chosen",
  probeRejected: "probe/logratio/rejected",
  probeUnseen: "probe/logratio/unseen",
  probeMismatch: "probe/logratio/mismatch",
  judgeRequests: "eval/judge/requests",
  judgePromptTokens: "eval/judge/prompt_tokens",
  judgeCompletionTokens: "eval/judge/completion_tokens",
  judgeCostUsd: "eval/judge/cost_usd",
  rmLoss: "rm/loss",
  rmAccuracy: "rm/accuracy",
  rmMargin: "rm/margin",
  rmEvalLoss: "rm/eval/loss",
  rmEvalAccuracy: "rm/eval/accuracy",
});

export const WIN_RATE_PREFIX = "eval/win_rate/";

/** A short human label for any key ("train/rewards/margin" → "rewards margin"). */
export function label(key) {
  const named = LABELS[key];
  if (named) return named;
  return key.replace(/^train\//, "").replaceAll("/", " ").replaceAll("_", " ");
}

const LABELS = {
  [K.loss]: "loss",
  [K.accuracy]: "reward accuracy",
  [K.beta]: "β used",
  [K.m0]: "M0 (EMA of M)",
  [K.sigma]: "σ (EMA std of M)",
  [K.keptFraction]: "kept fraction",
  [K.rewardsChosen]: "reward chosen",
  [K.rewardsRejected]: "reward rejected",
  [K.rewardsMargin]: "reward margin",
  [K.gradLogRatio]: "G = log π_w/π_l",
  [K.gradWeight]: "DPO weight w̄",
  [K.logratioChosen]: "ρ̄_w (chosen, per token)",
  [K.logratioRejected]: "ρ̄_l (rejected, per token)",
  [K.rejectedShare]: "S_l (rejected share)",
  [K.pairMassPerToken]: "pair mass (per token)",
  [K.pairMass]: "pair mass",
  [K.chosenBelowReference]: "chosen below reference",
};

/** The keys the compare page overlays by default, in order. */
export const COMPARE_DEFAULT = [
  K.loss, K.accuracy, K.rewardsMargin, K.beta, K.logratioChosen, K.logratioRejected,
  K.gradLogRatio, K.keptFraction,
];
