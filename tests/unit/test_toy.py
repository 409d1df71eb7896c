"""The 3D-properties toy model (SCIENCE.md §C.3): targets, pairs, loss, masses and the s1 phenomena."""

import math

import pytest
import torch

from worker.alignment.toy import (
    SCENARIOS,
    ToyPolicy,
    ToyTrajectory,
    dpo_step_loss,
    run_toy,
    sft_targets,
    toy_masses,
    toy_pairs,
    train_sft,
)

# SFT at 2000 steps already matches the targets to < 1e-3 (4000 is the product default); 3000 DPO steps.
SFT_STEPS = 2000
DPO_STEPS = 3000


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matmuls: one intra-op thread is faster on the shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs() -> dict[str, ToyTrajectory]:
    common = {"scenario": "s1", "steps": DPO_STEPS, "sft_steps": SFT_STEPS, "seed": 0}
    return {
        "dpo": run_toy(**common),
        "flex": run_toy(**common, beta_rejected=0.05),
        "sft": run_toy(**common, sft_weight=0.1),
    }


def _s1_policy() -> ToyPolicy:
    """hidden = 4 with identity layers: logits(x) = log sft_targets('s1')[x], so π(·|x) is that row."""
    policy = ToyPolicy(hidden=4)
    with torch.no_grad():
        for layer, weight in zip(
            policy.net[::2], (torch.eye(4), torch.eye(4), sft_targets("s1").log().T), strict=True
        ):
            layer.weight.copy_(weight)
            layer.bias.zero_()
    return policy


def test_s1_targets_by_hand():
    # remainder 1 − 0.40 − 4·0.10 − 3·0.02 = 0.14, split over 8 and 9 → 0.07 each
    expected = torch.tensor([0.40, 0.02, 0.02, 0.02, 0.10, 0.10, 0.10, 0.10, 0.07, 0.07])
    torch.testing.assert_close(sft_targets("s1")[0], expected)
    # row 2: chosen 2 gets p_c, chosen 0, 1, 3 get 0.02
    assert sft_targets("s1")[2, :4].tolist() == pytest.approx([0.02, 0.02, 0.40, 0.02])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_target_rows_sum_to_one(scenario):
    targets = sft_targets(scenario)
    assert targets.shape == (4, 10)
    assert (targets >= 0).all()
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(4))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sft_matches_targets(scenario):
    torch.manual_seed(0)
    policy = ToyPolicy()
    targets = sft_targets(scenario)
    train_sft(policy, targets, steps=1500, lr=3e-3)
    with torch.no_grad():
        probs = policy(torch.arange(4)).exp()
    assert (probs - targets).abs().max().item() < 0.02


def test_toy_pairs():
    prompts, chosen, rejected = toy_pairs()
    assert prompts.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert chosen.tolist() == prompts.tolist()
    assert rejected.tolist() == [4, 5, 6, 7] * 4


def test_loss_at_reference_is_log_two_plus_sft_term():
    reference = sft_targets("s1").log()
    # ρ = 0 everywhere → −log σ(0) = ln 2 = 0.693147 per pair
    assert dpo_step_loss(reference, reference, beta=0.1).item() == pytest.approx(math.log(2), abs=1e-6)
    # + λ·(−log π_w) = 0.1·(−ln 0.4) = 0.091629 → 0.784776
    loss = dpo_step_loss(reference, reference, beta=0.1, sft_weight=0.1).item()
    assert loss == pytest.approx(0.784776, abs=1e-5)


def test_loss_plain_and_flex_by_hand():
    reference = torch.zeros(4, 10)
    logprobs = reference.clone()
    logprobs[torch.arange(4), torch.arange(4)] = 1.0  # ρ_w = +1
    logprobs[:, 4:8] = -1.0  # ρ_l = −1
    # DPO: h = 0.1·1 − 0.1·(−1) = 0.2 → ln(1 + e^−0.2) = ln 1.818731 = 0.598139
    assert dpo_step_loss(logprobs, reference, beta=0.1).item() == pytest.approx(0.598139, abs=1e-5)
    # Flex: h = 0.1·1 − 0.05·(−1) = 0.15 → ln(1 + e^−0.15) = ln 1.860708 = 0.620957
    flex = dpo_step_loss(logprobs, reference, beta=0.1, beta_rejected=0.05).item()
    assert flex == pytest.approx(0.620957, abs=1e-5)


def test_masses_by_hand():
    masses = toy_masses(_s1_policy())
    assert masses.prob_chosen == pytest.approx(0.40, abs=1e-6)
    assert masses.prob_rejected == pytest.approx(0.40, abs=1e-6)  # 4·0.10
    assert masses.mass_unseen == pytest.approx(0.14, abs=1e-6)  # 2·0.07
    assert masses.mass_out_of_pair == pytest.approx(0.20, abs=1e-6)  # 1 − 0.40 − 0.40
    # H = −(0.4 ln 0.4 + 4·0.1 ln 0.1 + 3·0.02 ln 0.02 + 2·0.07 ln 0.07)
    #   = 0.366516 + 0.921034 + 0.234721 + 0.372292 = 1.894563
    assert masses.entropy == pytest.approx(1.894563, abs=1e-5)


def test_s1_drastic_drop_degradation_and_dispersion(runs):
    """At the spec's hyper-parameters (seed 0) π_w peaks ≈ 0.996 at step 800 and ends ≈ 0.935; the
    out-of-pair mass bottoms out ≈ 0.005 at the peak and climbs back to ≈ 0.065 (see the report:
    slower than SCIENCE.md's numpy re-creation, which ends at 0.461 / 0.539)."""
    run = runs["dpo"]
    at = {step: index for index, step in enumerate(run.steps)}
    chosen, out_of_pair = run.prob_chosen, run.mass_out_of_pair
    peak = max(range(len(chosen)), key=chosen.__getitem__)
    assert run.steps[0] == 0 and run.steps[-1] == DPO_STEPS and len(run.steps) == DPO_STEPS // 50 + 1
    assert chosen[0] == pytest.approx(0.40, abs=0.02)
    # D1: π_w rises by far more than 0.2 while Σπ_l collapses by orders of magnitude
    assert chosen[peak] > chosen[0] + 0.2
    assert run.prob_rejected[-1] < 0.1 * run.prob_rejected[0]
    # D2: π_w turns down after an early peak and keeps falling while log π_w − log π_l keeps growing
    assert run.steps[peak] < 1500
    assert chosen[at[2000]] > chosen[at[2500]] > chosen[-1]
    assert chosen[-1] < chosen[peak] - 0.04
    assert run.log_ratio_chosen_rejected[-1] > run.log_ratio_chosen_rejected[peak] + 10
    # D3: the mass leaving the pair goes elsewhere, and keeps going
    assert out_of_pair[at[2000]] < out_of_pair[at[2500]] < out_of_pair[-1]
    assert out_of_pair[-1] > min(out_of_pair) + 0.04


@pytest.mark.parametrize("variant", ["flex", "sft"])
def test_flex_and_sft_term_mitigate(runs, variant):
    plain, mitigated = runs["dpo"], runs[variant]
    assert mitigated.prob_chosen[-1] > plain.prob_chosen[-1]
    assert mitigated.mass_out_of_pair[-1] < plain.mass_out_of_pair[-1]


def test_same_seed_same_trajectory_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    first = run_toy("s2", steps=100, sft_steps=100, seed=3, record_every=10)
    second = run_toy("s2", steps=100, sft_steps=100, seed=3, record_every=10)
    other = run_toy("s2", steps=100, sft_steps=100, seed=4, record_every=10)
    assert first == second
    assert first.prob_chosen != other.prob_chosen
    assert torch.equal(torch.random.get_rng_state(), state)
