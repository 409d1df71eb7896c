// The run page's line-chart panels: which keys each one draws, on which axis, and what it means.

import { hLine, labelGap, robustRange, stepLines, xMapper } from "../charts.js";
import { K, label } from "../keys.js";

const BLUE = "#1f77b4";
const RED = "#d62728";
const GREEN = "#2ca02c";
const PURPLE = "#9467bd";
const ORANGE = "#ff7f0e";
const GREY = "#7f7f7f";

const t = (key, color, extra = {}) => ({ key, name: label(key), color, ...extra });

/**
 * Panel specs: {id, title, note, keys (any present → the panel shows), traces, …LineChart spec}.
 * `alerts` (steps of fired 3D alerts) are drawn as vertical lines on the diagnostics panels.
 */
export function panelSpecs(alertMarks) {
  const alertShapes = (view, store) => stepLines(alertMarks(), xMapper(view, store?.timeOf), labelGap(store));
  return [
    {
      id: "loss", title: "Loss and reward accuracy", yTitle: "loss", y2Title: "accuracy", y2Range: [0, 1.02],
      note: "Training loss (left) and the fraction of pairs with a positive margin (right).",
      traces: [t(K.loss, BLUE), t(K.accuracy, GREEN, { axis: "y2" }), t(K.evalLoss, BLUE, { dash: "dot", name: "eval loss" }),
        t(K.evalAccuracy, GREEN, { axis: "y2", dash: "dot", name: "eval accuracy" })],
    },
    {
      id: "rewards", title: "Implicit rewards (β0·log-ratio)", yTitle: "reward",
      note: "r = β0·(log πθ − log πref) of chosen and rejected, and their margin.",
      traces: [t(K.rewardsChosen, GREEN), t(K.rewardsRejected, RED), t(K.rewardsMargin, BLUE, { dash: "dash" })],
      shapes: () => [hLine(0)],
    },
    {
      id: "beta", title: "β-DPO: β used, M0, σ and kept fraction", yTitle: "β", y2Title: "M0, σ (u-units)",
      note: "β = max(β0·(1 + α·(M̄_kept − M0)), β_min); M0 and σ are EMAs of the discrepancy M = u.",
      traces: [t(K.beta, BLUE), t(K.m0, ORANGE, { axis: "y2" }), t(K.sigma, PURPLE, { axis: "y2", dash: "dot" }),
        t(K.keptFraction, GREY, { dash: "dash" })],
      linearOnly: false,
    },
    {
      id: "grad", title: "Gradient log-ratio G and DPO weight", yTitle: "G (nats)", y2Title: "w̄",
      note: "G = mean log(π_w/π_l): how much larger the gradient on the rejected side is (log). "
        + "w̄ = mean σ(−h) → 0 when pairs are solved and DPO has little signal left.",
      traces: [t(K.gradLogRatio, BLUE), t(K.gradWeight, RED, { axis: "y2" }), t(K.gradNormRatio, PURPLE, { name: "‖g_l‖/‖g_w‖ (probe)" })],
    },
    {
      id: "logratios", title: "3D: per-token log-ratios of chosen and rejected", yTitle: "nats per token",
      note: "ρ̄ = (log πθ − log πref)/n. Chosen falling while rejected falls faster is degradation.",
      traces: [t(K.logratioChosen, GREEN), t(K.logratioRejected, RED), t(K.pairMassPerToken, PURPLE, { dash: "dot" })],
      shapes: (view, store) => [hLine(0), ...alertShapes(view, store)],
    },
    {
      id: "share", title: "3D: rejected share S_l and chosen below reference", yTitle: "S_l", y2Title: "fraction",
      note: "S_l = −Δρ_l/(Δρ_w − Δρ_l) over the window; S_l > 1 sustained means the chosen side is going down. "
        + "The axis shows the 10th–90th percentile of S_l (a ratio spikes when Δρ_w ≈ Δρ_l; hover shows every value).",
      traces: [t(K.rejectedShare, RED), t(K.chosenBelowReference, GREY, { axis: "y2", dash: "dot" })],
      shapes: (view, store) => [hLine(1, RED), ...alertShapes(view, store)],
      // S_l = 1 (the reference line) always in view, spikes cut at the 10th–90th percentile; a fraction is 0…1
      yRangeOf: (store) => robustRange(store.get(K.rejectedShare).values, [0, 1]),
      y2Range: [0, 1.02],
      linearOnly: true,
    },
    {
      id: "toy", title: "Toy: probability mass (stacked)", yTitle: "probability", yRange: [0, 1.001],
      note: "π(chosen) + Σπ(rejected) + mass out of the pair = 1; the unseen responses (dashed) are part of "
        + "the out-of-pair mass. Both pair sides falling while out-of-pair mass rises is dispersion.",
      traces: [t(K.toyChosen, GREEN, { stack: "mass", name: "π(chosen)" }),
        t(K.toyRejected, RED, { stack: "mass", name: "Σπ(rejected)" }),
        t(K.toyOutOfPair, GREY, { stack: "mass", name: "out of pair" }),
        t(K.toyUnseen, PURPLE, { dash: "dash", name: "unseen responses" })],
      linearOnly: true,
    },
    {
      id: "probe", title: "3D: probe-set groups (per-token log-ratio)", yTitle: "nats per token",
      note: "Held-out prompts: chosen and rejected ↓ while unseen ↑ means mass moved off the data.",
      traces: [t(K.probeChosen, GREEN, { name: "probe chosen" }), t(K.probeRejected, RED, { name: "probe rejected" }),
        t(K.probeUnseen, PURPLE, { name: "probe unseen" }), t(K.probeMismatch, GREY, { name: "probe mismatched" })],
      linearOnly: true,
    },
    {
      id: "optim", title: "Optimizer: learning rate and gradient norm", yTitle: "lr", y2Title: "grad norm",
      note: "Learning rate schedule and the gradient norm before clipping.",
      traces: [t(K.lr, BLUE), t(K.gradNorm, ORANGE, { axis: "y2" }), t(K.sftLoss, GREEN, { name: "SFT term" })],
    },
  ];
}
