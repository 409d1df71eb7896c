"""The outlier inspector explains random filtering (issue 19 item 8): each pair record comes with its
keep probability over its micro-batch's weights, and a pair's filtered side is judged against the M0
of the step it was filtered in (mean z of its filtered occurrences), not against today's M0."""

from __future__ import annotations

import pytest

from contracts.events import PairRecord
from tests.integration.api_support import claim, new_run, write_pairs

pytest_plugins = ("tests.integration.api_fixtures",)


def record(
    step: int, micro_batch: int, pair_id: str, m: float, weight: float, kept: bool, m0: float
) -> PairRecord:
    return PairRecord(step, micro_batch, pair_id, -1, -2, -1, -2, 3, 4, m, weight, kept, 0.1, m0, 0.5)


def test_records_carry_keep_probabilities_of_their_micro_batch(client):
    run_id = new_run(client, beta_dpo={"enabled": True, "scope": "micro_batch"})["id"]
    claim(client, run_id)
    # step 1, micro-batch 0: k = 2 kept of 4; the weight-0.267 pair was filtered, the 0.167 one kept
    step_1 = [
        record(1, 0, "a", 0.1, 1.0, True, 0.0),
        record(1, 0, "b", 0.9, 0.267, False, 0.0),
        record(1, 0, "c", 1.1, 0.167, True, 0.0),
        record(1, 0, "d", 5.0, 0.0, False, 0.0),
    ]
    step_1_other = [record(1, 1, "e", 0.0, 1.0, True, 0.0), record(1, 1, "f", 0.0, 1.0, True, 0.0)]
    write_pairs(client, run_id, step_1 + step_1_other)
    rows = client.get(f"/api/runs/{run_id}/pairs", params={"step": 1}).json()
    chance = {r["pair_id"]: r["keep_probability"] for r in rows}
    assert chance["d"] == 0.0  # weight 0 (underflowed): kept only if nothing else could be
    assert chance["a"] + chance["b"] + chance["c"] + chance["d"] == pytest.approx(2.0)
    assert chance["a"] > chance["b"] > chance["c"] > 0.3  # filtering is random: both had a fair chance
    assert chance["e"] == chance["f"] == 1.0  # nothing of micro-batch 1 was filtered
    filtered = client.get(f"/api/runs/{run_id}/pairs", params={"kept": False, "limit": 1}).json()
    assert filtered[0]["keep_probability"] is not None


def test_with_scope_batch_the_draw_is_over_the_whole_step(client):
    """One calibration per optimizer step (beta_dpo.scope: batch, the default): the filter drew k of
    the step's pairs, whatever micro-batch each was scored in."""
    run_id = new_run(client, beta_dpo={"enabled": True, "scope": "batch"})["id"]
    claim(client, run_id)
    # step 1: 4 equal weights in two micro-batches, 2 kept — both in micro-batch 0
    step_1 = [record(1, mb, p, 0.0, 1.0, mb == 0, 0.0) for mb, p in ((0, "a"), (0, "b"), (1, "c"), (1, "d"))]
    write_pairs(client, run_id, step_1)
    rows = client.get(f"/api/runs/{run_id}/pairs", params={"step": 1}).json()
    chance = {r["pair_id"]: r["keep_probability"] for r in rows}
    assert chance == pytest.approx(dict.fromkeys("abcd", 0.5), abs=0.03)
    # (4,000 draws); per micro-batch it would read 1.0 for a, b and 0.0 for c, d: a certainty it never had


def test_the_filtered_side_is_judged_at_the_step_it_was_filtered_in(client):
    run_id = new_run(client)["id"]
    claim(client, run_id)
    # pair "x" was filtered at step 1 below that step's M0 (0.5 < 1.0: low side), and later kept with a
    # high M: its mean M (5.25) is above a late M0 (0.2), which used to make it a "high" outlier
    write_pairs(
        client, run_id, [record(1, 0, "x", 0.5, 0.6, False, 1.0), record(2, 0, "x", 10.0, 0.1, True, 0.2)]
    )
    summary = client.get(f"/api/runs/{run_id}/pairs/summary").json()
    assert [(s["pair_id"], s["times_filtered"]) for s in summary] == [("x", 1)]
    assert summary[0]["mean_discrepancy"] == pytest.approx(5.25)
    assert summary[0]["mean_filtered_z"] == pytest.approx((0.5 - 1.0) / 0.5)  # (M − M0) / σ at step 1
