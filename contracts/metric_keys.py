"""Every metric key, defined once. The dashboard, exports and users rely on these names."""

from __future__ import annotations

# train/loss is the optimised loss: the masked mean over the pairs β-DPO's filter kept (plus the SFT
# term); train/loss_all_pairs is the mean over ALL pairs at the β used — what the β-DPO authors log
# (SCIENCE.md product decision 7). They differ only when filtering drops pairs.
TRAIN_LOSS = "train/loss"
TRAIN_LOSS_ALL_PAIRS = "train/loss_all_pairs"
TRAIN_BETA = "train/beta"
TRAIN_LR = "train/lr"
TRAIN_GRAD_NORM = "train/grad_norm"
TRAIN_SFT_LOSS = "train/sft_loss"
TRAIN_EXAMPLES_PER_SECOND = "train/examples_per_second"

# M0 and σ after the step's last calibration (the EMA state the next step starts from). With scope
# micro_batch and accumulation the authors log the mean over the step's micro-batches instead: the
# *_step_mean keys, emitted only when a step has more than one calibration.
BDPO_M0 = "train/beta_dpo/m0"
BDPO_SIGMA = "train/beta_dpo/sigma"
BDPO_M0_STEP_MEAN = "train/beta_dpo/m0_step_mean"
BDPO_SIGMA_STEP_MEAN = "train/beta_dpo/sigma_step_mean"
BDPO_KEPT_FRACTION = "train/beta_dpo/kept_fraction"
BDPO_M_BAR_KEPT = "train/beta_dpo/m_bar_kept"
BDPO_M_BAR_ALL = "train/beta_dpo/m_bar_all"
BDPO_FILTERED_HIGH = "train/beta_dpo/filtered_high"
BDPO_FILTERED_LOW = "train/beta_dpo/filtered_low"

REWARDS_CHOSEN = "train/rewards/chosen"
REWARDS_REJECTED = "train/rewards/rejected"
REWARDS_MARGIN = "train/rewards/margin"
REWARDS_ACCURACY = "train/rewards/accuracy"

LOGPS_CHOSEN = "train/logps/chosen"
LOGPS_REJECTED = "train/logps/rejected"
LOGRATIO_CHOSEN_PER_TOKEN = "train/logratio_per_token/chosen"
LOGRATIO_REJECTED_PER_TOKEN = "train/logratio_per_token/rejected"
CHOSEN_BELOW_REFERENCE = "train/chosen_below_reference"

GRAD_LOG_RATIO = "train/grad/log_ratio"
GRAD_WEIGHT = "train/grad/weight"
GRAD_NORM_RATIO = "train/grad/norm_ratio"

D1_RATE = "train/3d/drastic_drop_rate"
SLOPE_CHOSEN = "train/3d/slope_chosen"
SLOPE_REJECTED = "train/3d/slope_rejected"
REJECTED_SHARE = "train/3d/rejected_share"
CHOSEN_DRAWDOWN = "train/3d/chosen_drawdown"
PAIR_MASS = "train/3d/pair_mass"
PAIR_MASS_PER_TOKEN = "train/3d/pair_mass_per_token"
ALERT_D1 = "train/3d/alert/drastic_drop"
ALERT_D2 = "train/3d/alert/degradation"
ALERT_D3 = "train/3d/alert/dispersion"

TOY_PROB_CHOSEN = "toy/prob/chosen"
TOY_PROB_REJECTED = "toy/prob/rejected"
TOY_MASS_UNSEEN = "toy/mass/unseen"
TOY_MASS_OUT_OF_PAIR = "toy/mass/out_of_pair"
TOY_ENTROPY = "toy/entropy"

PROGRESS = "run/progress"

EVAL_LOSS = "eval/loss"
EVAL_ACCURACY = "eval/rewards/accuracy"
EVAL_MARGIN = "eval/rewards/margin"

PAIR_COLUMNS: tuple[str, ...] = (
    "step",
    "micro_batch",
    "pair_id",
    "policy_chosen_logp",
    "policy_rejected_logp",
    "reference_chosen_logp",
    "reference_rejected_logp",
    "chosen_tokens",
    "rejected_tokens",
    "discrepancy",
    "filter_weight",
    "kept",
    "beta",
    "m0",
    "sigma",
)

# Win rates (evaluation.py): one key per opponent and sampling temperature, e.g. eval/win_rate/chosen/T=0.5;
# the interval and the judgments are stored as EvalRecord/Judgment rows.
EVAL_WIN_RATE_PREFIX = "eval/win_rate"


def eval_win_rate(opponent: str, temperature: float) -> str:
    """The win-rate key of ``opponent`` at sampling temperature ``temperature`` (shortest float form)."""
    return f"{EVAL_WIN_RATE_PREFIX}/{opponent}/T={temperature:g}"


# Probe sets (docs/SCIENCE.md §C.5 D3): mean per-token log-ratio (s_θ − s_ref)/n of each response group.
PROBE_LOGRATIO_CHOSEN = "probe/logratio/chosen"
PROBE_LOGRATIO_REJECTED = "probe/logratio/rejected"
PROBE_LOGRATIO_UNSEEN = "probe/logratio/unseen"
PROBE_LOGRATIO_MISMATCH = "probe/logratio/mismatch"

# Bradley–Terry reward-model training (`alignscope train-rm`): r_w, r_l are the model's rewards.
RM_LOSS = "rm/loss"  # mean −log σ(r_w − r_l) over the step's pairs
RM_ACCURACY = "rm/accuracy"  # mean [r_w > r_l]
RM_MARGIN = "rm/margin"  # mean r_w − r_l
RM_EVAL_LOSS = "rm/eval/loss"
RM_EVAL_ACCURACY = "rm/eval/accuracy"

# Judge usage (evaluation.py), running totals over the run, emitted at each evaluation by judges that
# count it (the OpenAI-compatible judge): requests sent (retries included), tokens from the endpoint's
# ``usage``, and cost in US dollars at evaluation.judge.usd_per_million_{input,output}_tokens.
EVAL_JUDGE_REQUESTS = "eval/judge/requests"
EVAL_JUDGE_PROMPT_TOKENS = "eval/judge/prompt_tokens"
EVAL_JUDGE_COMPLETION_TOKENS = "eval/judge/completion_tokens"
EVAL_JUDGE_COST_USD = "eval/judge/cost_usd"
