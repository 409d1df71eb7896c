"""Per-pair diagnostics and the 3D-properties detectors (SCIENCE.md §C.1, §C.5).

Per pair, from the four sequence log-probs DPO already has: log-ratios, rewards, margin, the DPO gradient
weight σ(−h), the Corollary-1 log gradient ratio G, and the pair mass D3. Per step, ``ThreeDMonitor``
fits windowed slopes to the batch means and raises the three alerts: drastic drop (D1), degradation (D2)
and dispersion (D3). ``gradient_norm_ratio`` is the exact, expensive ‖g_l‖/‖g_w‖ on a probe batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

_TINY = 1e-12


@dataclass(frozen=True)
class PairDiagnostics:
    """B host floats per field; rewards, margin and weight use the β passed in (β0 by Product decision 4)."""

    chosen_logratio: list[float]  # ρ_w = s_θ(y_w) − s_ref(y_w), nats
    rejected_logratio: list[float]  # ρ_l
    chosen_reward: list[float]  # β·ρ_w
    rejected_reward: list[float]  # β·ρ_l
    margin: list[float]  # h = β(ρ_w − ρ_l)
    dpo_weight: list[float]  # σ(−h), the DPO gradient weight
    grad_log_ratio: list[float]  # G = s_θ(y_w) − s_θ(y_l) = log(|∂L/∂π_l| / |∂L/∂π_w|)
    pair_mass: list[float]  # D3 = logsumexp(s_w, s_l) − logsumexp(q_w, q_l) = log((π_w+π_l)/(π_w^r+π_l^r))
    chosen_logratio_per_token: list[float]  # ρ_w / n_w
    rejected_logratio_per_token: list[float]  # ρ_l / n_l


def pair_diagnostics(
    policy_chosen: Sequence[float],
    policy_rejected: Sequence[float],
    reference_chosen: Sequence[float],
    reference_rejected: Sequence[float],
    chosen_tokens: Sequence[float],
    rejected_tokens: Sequence[float],
    beta: float | Sequence[float],
) -> PairDiagnostics:
    """All B-long inputs: summed log-probs s_θ, s_ref in nats and response lengths n (a length of 0
    counts as 1). ``beta``: one float or B of them.

    Host floats in float64: a log step's N pairs are a micro-batch or two, where a few hundred float
    operations cost less than the tensor kernels would. Non-finite inputs give NaN or ±inf, as
    torch's logsumexp and sigmoid would, never an exception.
    """
    betas = [float(beta)] * len(policy_chosen) if isinstance(beta, int | float) else list(beta)
    rho_w = [s - q for s, q in zip(policy_chosen, reference_chosen, strict=True)]
    rho_l = [s - q for s, q in zip(policy_rejected, reference_rejected, strict=True)]
    margin = [b * (w - lo) for b, w, lo in zip(betas, rho_w, rho_l, strict=True)]
    return PairDiagnostics(
        chosen_logratio=rho_w,
        rejected_logratio=rho_l,
        chosen_reward=[b * w for b, w in zip(betas, rho_w, strict=True)],
        rejected_reward=[b * lo for b, lo in zip(betas, rho_l, strict=True)],
        margin=margin,
        dpo_weight=[_sigmoid(-h) for h in margin],
        grad_log_ratio=[w - lo for w, lo in zip(policy_chosen, policy_rejected, strict=True)],
        pair_mass=[
            _logaddexp(sw, sl) - _logaddexp(qw, ql)
            for sw, sl, qw, ql in zip(
                policy_chosen, policy_rejected, reference_chosen, reference_rejected, strict=True
            )
        ],
        chosen_logratio_per_token=[r / max(n, 1) for r, n in zip(rho_w, chosen_tokens, strict=True)],
        rejected_logratio_per_token=[r / max(n, 1) for r, n in zip(rho_l, rejected_tokens, strict=True)],
    )


def _sigmoid(x: float) -> float:
    """1 / (1 + e^−x) without overflow; NaN stays NaN."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) without overflow; NaN if either is NaN, ±inf when the larger one is."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    high, low = (a, b) if a >= b else (b, a)
    if math.isinf(high):
        return high
    return high + math.log1p(math.exp(low - high))


def least_squares_slope(values: Sequence[float], steps: Sequence[float] | None = None) -> float:
    """Least-squares slope of ``values`` per step; points are equally spaced one step apart unless
    ``steps`` gives their x positions. NaN for fewer than 2 points (or all x equal)."""
    n = len(values)
    xs = [float(i) for i in range(n)] if steps is None else [float(x) for x in steps]
    if n < 2 or len(xs) != n:
        return math.nan
    x_mean = sum(xs) / n
    y_mean = sum(values) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx == 0.0:
        return math.nan
    return sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, values, strict=True)) / sxx


ALERT_MESSAGES = {
    "drastic_drop": (
        "Drastic drop: rejected responses are losing log-probability {ratio:.1f}× faster than chosen "
        "responses change ({slope_l:.3g} vs {slope_w:.3g} nats/token per step). DPO is mostly pushing "
        "rejected responses down."
    ),
    "degradation": (
        "Degradation: chosen responses are now losing probability too ({slope_w:.3g} nats/token per step, "
        "{drawdown:.3g} below their peak) while rejected ones keep falling."
    ),
    "dispersion": (
        "Dispersion: both chosen and rejected responses are losing probability, so probability mass is "
        "moving to responses outside the preference pairs."
    ),
}


@dataclass(frozen=True)
class Alert:
    """A 3D-property alert: name in {"drastic_drop", "degradation", "dispersion"}."""

    name: str
    step: int
    message: str


@dataclass(frozen=True)
class StepSignals:
    """The detectors' view after one update; slopes and shares are NaN until the window is full."""

    slope_chosen: float  # ṡ_w, per-token log-ratio per step
    slope_rejected: float  # ṡ_l
    drastic_drop_rate: float  # D1 = ṡ_l / max(|ṡ_w|, ε)
    rejected_share: float  # S_l = −Δρ_l / (Δρ_w − Δρ_l) over the window
    chosen_drawdown: float  # running max of ρ̄_w minus current ρ̄_w
    alerts: tuple[Alert, ...] = field(default=())  # alerts that fired at this step


class ThreeDMonitor:
    """Windowed detectors of the 3D properties over the per-step batch means (SCIENCE.md §C.5).

    window K: points in the least-squares window (x = the steps given); kappa κ: D1 fires when
    D1 < −κ and ṡ_l < 0; consecutive J: D2 fires after J consecutive updates with ṡ_w < −ε, ṡ_l < −ε
    and drawdown > δ (ρ̄_w has passed its running maximum); slope_eps ε: the slope dead band, also the
    floor of |ṡ_w| in D1; drawdown δ. D3 fires when the pair mass fell over the window while
    ṡ_w < −ε and ṡ_l < −ε. Each alert fires once, at the first step its condition holds.
    """

    def __init__(
        self, window: int, kappa: float, consecutive: int, slope_eps: float, drawdown: float
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2, got {window}")
        self.window = window
        self.kappa = kappa
        self.consecutive = consecutive
        self.slope_eps = slope_eps
        self.drawdown = drawdown
        self._steps: list[int] = []
        self._chosen: list[float] = []
        self._rejected: list[float] = []
        self._pair_mass: list[float] = []
        self._chosen_max: float | None = None
        self._degraded_run = 0
        self._fired: list[Alert] = []

    @property
    def fired(self) -> tuple[Alert, ...]:
        """Every alert fired so far, in firing order."""
        return tuple(self._fired)

    def update(
        self, step: int, chosen_per_token: float, rejected_per_token: float, pair_mass: float
    ) -> StepSignals:
        """Add one step's batch means: ρ̄_w, ρ̄_l (per-token log-ratios) and the pair mass D3."""
        for history, value in (
            (self._steps, step),
            (self._chosen, chosen_per_token),
            (self._rejected, rejected_per_token),
            (self._pair_mass, pair_mass),
        ):
            history.append(value)
            del history[: -self.window]
        self._chosen_max = (
            chosen_per_token if self._chosen_max is None else max(self._chosen_max, chosen_per_token)
        )
        drawdown = self._chosen_max - chosen_per_token
        if len(self._steps) < self.window:
            return StepSignals(math.nan, math.nan, math.nan, math.nan, drawdown)
        slope_w = least_squares_slope(self._chosen, self._steps)
        slope_l = least_squares_slope(self._rejected, self._steps)
        d1_rate = slope_l / max(abs(slope_w), self.slope_eps, _TINY)
        delta_w = self._chosen[-1] - self._chosen[0]
        delta_l = self._rejected[-1] - self._rejected[0]
        denominator = delta_w - delta_l
        share = -delta_l / denominator if abs(denominator) > _TINY else math.nan
        both_down = slope_w < -self.slope_eps and slope_l < -self.slope_eps
        self._degraded_run = self._degraded_run + 1 if both_down and drawdown > self.drawdown else 0
        conditions = {
            "drastic_drop": d1_rate < -self.kappa and slope_l < 0.0,
            "degradation": self._degraded_run >= self.consecutive,
            "dispersion": both_down and self._pair_mass[-1] < self._pair_mass[0],
        }
        values = {"d1": d1_rate, "slope_w": slope_w, "slope_l": slope_l, "drawdown": drawdown}
        alerts = tuple(
            self._fire(name, step, values)
            for name, holds in conditions.items()
            if holds and not self._has_fired(name)
        )
        return StepSignals(slope_w, slope_l, d1_rate, share, drawdown, alerts)

    def _has_fired(self, name: str) -> bool:
        return any(alert.name == name for alert in self._fired)

    def _fire(self, name: str, step: int, values: dict[str, float]) -> Alert:
        message = ALERT_MESSAGES[name].format(ratio=abs(values["d1"]), **values)
        alert = Alert(name=name, step=step, message=message)
        self._fired.append(alert)
        return alert

    def state_dict(self) -> dict[str, object]:
        """The window history, running maximum, degradation run and fired alerts, as plain lists."""
        return {
            "steps": list(self._steps),
            "chosen": list(self._chosen),
            "rejected": list(self._rejected),
            "pair_mass": list(self._pair_mass),
            "chosen_max": self._chosen_max,
            "degraded_run": self._degraded_run,
            "fired": [[alert.name, alert.step, alert.message] for alert in self._fired],
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what ``state_dict`` returned."""
        self._steps = [int(x) for x in state["steps"]]
        self._chosen = [float(x) for x in state["chosen"]]
        self._rejected = [float(x) for x in state["rejected"]]
        self._pair_mass = [float(x) for x in state["pair_mass"]]
        chosen_max = state["chosen_max"]
        self._chosen_max = None if chosen_max is None else float(chosen_max)
        self._degraded_run = int(state["degraded_run"])
        self._fired = [Alert(name=str(n), step=int(s), message=str(m)) for n, s, m in state["fired"]]


def _global_norm(grads: Sequence[Tensor | None]) -> float:
    return math.sqrt(sum(float(g.detach().double().pow(2).sum()) for g in grads if g is not None))


def gradient_norm_ratio(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    weight: Tensor,
    beta: float,
    params: Sequence[Tensor],
) -> float:
    """Exact ‖g_l‖ / ‖g_w‖ (Corollary 1 in parameter space) with two backward passes.

    g_w = ∇ Σ_i β w_i s_θ(y_w^i), g_l = ∇ Σ_i β w_i s_θ(y_l^i); w (B,) is detached (typically σ(−h)),
    norms are global L2 norms over ``params``. The graph is retained for the caller. When g_w = 0 the
    ratio is inf (NaN if g_l = 0 too).
    """
    w = weight.detach()
    params = list(params)
    grads_w = torch.autograd.grad(
        (beta * w * policy_chosen_logps).sum(), params, retain_graph=True, allow_unused=True
    )
    grads_l = torch.autograd.grad(
        (beta * w * policy_rejected_logps).sum(), params, retain_graph=True, allow_unused=True
    )
    norm_w, norm_l = _global_norm(grads_w), _global_norm(grads_l)
    if norm_w == 0.0:
        return math.inf if norm_l > 0.0 else math.nan
    return norm_l / norm_w
