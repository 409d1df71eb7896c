"""The 3D-properties toy model (SCIENCE.md §C.3, concrete spec [ours]).

Four prompts are one-hot vectors in R^4; the policy is a categorical distribution over 10 responses
(0-based indices): 0–3 chosen (response i is optimal for prompt i), 4–7 rejected, 8–9 unseen (never
in the preference data). Step 1 fits the policy to soft SFT targets; step 2 runs DPO (optionally
Flex-DPO and/or an SFT term) against the frozen SFT model on all 16 (prompt, chosen, rejected) pairs
and records the masses that show the drastic drop, degradation and dispersion (§C.5 D1–D3).

All probabilities are plain fractions, log-probabilities and entropies are in nats, and a step is one
full-batch optimizer step.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_PROMPTS = 4
NUM_RESPONSES = 10
CHOSEN = (0, 1, 2, 3)
REJECTED = (4, 5, 6, 7)
UNSEEN = (8, 9)
OTHER_CHOSEN_PROB = 0.02

# scenario -> (p_c, p_r): SFT probability of the prompt's chosen response and of each rejected one.
SCENARIOS: dict[str, tuple[float, float]] = {
    "s1": (0.40, 0.10),  # chosen on-policy, rejected on-policy
    "s2": (0.02, 0.15),  # chosen off-policy, rejected on-policy
    "s3": (0.40, 0.01),  # chosen on-policy, rejected off-policy
    "s4": (0.02, 0.01),  # chosen off-policy, rejected off-policy
}


class ToyPolicy(nn.Module):
    """MLP 4 → hidden → hidden → 10 with ReLU, read out as a softmax over the 10 responses."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(NUM_PROMPTS, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, NUM_RESPONSES),
        )

    def forward(self, prompts: Tensor) -> Tensor:
        """prompts: (B,) long prompt indices in 0..3. Returns (B, 10) log-probabilities (nats)."""
        one_hot = F.one_hot(prompts, NUM_PROMPTS).to(self.net[0].weight.dtype)
        return F.log_softmax(self.net(one_hot), dim=-1)


@dataclass(frozen=True)
class ToyMasses:
    """Probability masses averaged over the 4 prompts (fractions in [0, 1]; entropy in nats)."""

    prob_chosen: float  # mean π(i|i)
    prob_rejected: float  # mean Σ_{l∈4..7} π(l|x)
    mass_unseen: float  # mean Σ_{y∈8,9} π(y|x)
    mass_out_of_pair: float  # mean 1 − π(y_w|x) − Σ_{l∈4..7} π(l|x)
    entropy: float  # mean H(π(·|x))


@dataclass
class ToyTrajectory:
    """Masses recorded at `steps` (DPO optimizer steps, 0 = the SFT model) of one toy run."""

    steps: list[int] = field(default_factory=list)
    prob_chosen: list[float] = field(default_factory=list)
    prob_rejected: list[float] = field(default_factory=list)
    mass_unseen: list[float] = field(default_factory=list)
    mass_out_of_pair: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    log_ratio_chosen_rejected: list[float] = field(default_factory=list)  # mean log π_w − log π_l


def sft_targets(scenario: str) -> Tensor:
    """Soft SFT labels (4, 10); each row sums to 1.

    Row i: p_c on response i, p_r on each of 4..7, 0.02 on each other prompt's chosen response and the
    remainder split evenly over the unseen responses 8..9.
    """
    p_chosen, p_rejected = SCENARIOS[scenario]
    targets = torch.full((NUM_PROMPTS, NUM_RESPONSES), 0.0)
    targets[:, list(CHOSEN)] = OTHER_CHOSEN_PROB
    targets[torch.arange(NUM_PROMPTS), torch.tensor(CHOSEN)] = p_chosen
    targets[:, list(REJECTED)] = p_rejected
    remainder = 1.0 - targets[:, : UNSEEN[0]].sum(dim=1, keepdim=True)
    targets[:, list(UNSEEN)] = remainder / len(UNSEEN)
    return targets


def toy_pairs() -> tuple[Tensor, Tensor, Tensor]:
    """All 16 preference pairs: (prompt, chosen, rejected) long tensors of shape (16,).

    Ordered prompt-major: pair 4·x + k is (prompt x, chosen x, rejected 4 + k).
    """
    prompts = torch.arange(NUM_PROMPTS).repeat_interleave(len(REJECTED))
    rejected = torch.tensor(REJECTED).repeat(NUM_PROMPTS)
    return prompts, prompts.clone(), rejected


def train_sft(policy: ToyPolicy, targets: Tensor, steps: int, lr: float) -> None:
    """Fit `policy` to soft labels `targets` (4, 10) by full-batch soft cross-entropy with Adam."""
    prompts = torch.arange(NUM_PROMPTS)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        loss = -(targets * policy(prompts)).sum(dim=-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def dpo_step_loss(
    logprobs: Tensor,
    reference_logprobs: Tensor,
    beta: float,
    beta_rejected: float | None = None,
    sft_weight: float = 0.0,
) -> Tensor:
    """Scalar toy loss, the mean over the 16 pairs of

        −log σ(β ρ_w − β_l ρ_l) − λ log π(y_w|x),   ρ = log π(y|x) − log π_ref(y|x) (nats),

    with β_l = `beta_rejected` (Flex-DPO; plain DPO when None) and λ = `sft_weight`.
    logprobs: (4, 10) policy log-probabilities, one row per prompt (differentiable).
    reference_logprobs: (4, 10) frozen reference log-probabilities.
    """
    prompts, chosen, rejected = toy_pairs()
    logratios = logprobs - reference_logprobs
    margin = (
        beta * logratios[prompts, chosen]
        - (beta if beta_rejected is None else beta_rejected) * logratios[prompts, rejected]
    )
    return (F.softplus(-margin) - sft_weight * logprobs[prompts, chosen]).mean()


@torch.no_grad()
def toy_masses(policy: ToyPolicy) -> ToyMasses:
    """The D2/D3 masses of `policy`, averaged over the 4 prompts."""
    logprobs = policy(torch.arange(NUM_PROMPTS))
    probs = logprobs.exp()
    chosen = probs[torch.arange(NUM_PROMPTS), torch.tensor(CHOSEN)]
    rejected = probs[:, list(REJECTED)].sum(dim=-1)
    return ToyMasses(
        prob_chosen=chosen.mean().item(),
        prob_rejected=rejected.mean().item(),
        mass_unseen=probs[:, list(UNSEEN)].sum(dim=-1).mean().item(),
        mass_out_of_pair=(1.0 - chosen - rejected).mean().item(),
        entropy=-(probs * logprobs).sum(dim=-1).mean().item(),
    )


@torch.no_grad()
def _record(trajectory: ToyTrajectory, step: int, policy: ToyPolicy) -> None:
    masses = toy_masses(policy)
    prompts, chosen, rejected = toy_pairs()
    logprobs = policy(torch.arange(NUM_PROMPTS))
    trajectory.steps.append(step)
    trajectory.prob_chosen.append(masses.prob_chosen)
    trajectory.prob_rejected.append(masses.prob_rejected)
    trajectory.mass_unseen.append(masses.mass_unseen)
    trajectory.mass_out_of_pair.append(masses.mass_out_of_pair)
    trajectory.entropy.append(masses.entropy)
    log_ratio = logprobs[prompts, chosen] - logprobs[prompts, rejected]
    trajectory.log_ratio_chosen_rejected.append(log_ratio.mean().item())


def run_toy(
    scenario: str = "s1",
    steps: int = 3000,
    beta: float = 0.1,
    beta_rejected: float | None = None,
    sft_weight: float = 0.0,
    lr: float = 1e-4,
    seed: int = 0,
    hidden: int = 64,
    sft_steps: int = 4000,
    sft_lr: float = 3e-3,
    record_every: int = 50,
) -> ToyTrajectory:
    """SFT on `scenario`'s targets, then `steps` full-batch DPO steps (Adam, `lr`) against the frozen
    SFT model. Records at step 0, every `record_every` steps and at the last step.

    Deterministic under `seed`; the global torch RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = ToyPolicy(hidden)
    train_sft(policy, sft_targets(scenario), sft_steps, sft_lr)
    prompts = torch.arange(NUM_PROMPTS)
    with torch.no_grad():
        reference_logprobs = policy(prompts)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    trajectory = ToyTrajectory()
    _record(trajectory, 0, policy)
    for step in range(1, steps + 1):
        loss = dpo_step_loss(policy(prompts), reference_logprobs, beta, beta_rejected, sft_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % record_every == 0 or step == steps:
            _record(trajectory, step, policy)
    return trajectory
