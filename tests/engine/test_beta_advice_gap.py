"""β advice on gap-controlled constructed data (contracts.beta_advice, docs/decisions/0063): the same
tiny model trained a few steps on all-low-gap pairs (one adjacent swap, one digit off) and on
all-high-gap pairs (obviously wrong) — the first steps separate high-gap pairs faster, so the advice
gives the high-gap data the larger β0, as the β-DPO paper's batch rule and its Fig. 1 do."""

from __future__ import annotations

from contracts.beta_advice import advise
from worker.engine.loop import train
from worker.engine.sinks import ListSink

from .test_loop import small

STEPS = 6


def advice_for(high_gap_fraction: float):
    sink = ListSink()
    config = small(
        "tiny-dpo", f"optim.max_steps={STEPS}", "optim.lr=0.002", "optim.batch_size=16",
        "optim.micro_batch_size=16", f"data.constructed.high_gap_fraction={high_gap_fraction}",
    )  # fmt: skip
    assert train(config, sink).status == "succeeded"
    early = [r.discrepancy for r in sink.pair_records if 2 <= r.step <= STEPS]
    return advise(early, (2, STEPS), batch_size=16)


def test_advice_gives_high_gap_data_a_larger_beta_than_low_gap_data() -> None:
    low, high = advice_for(0.0), advice_for(1.0)
    assert high.centre > low.centre
    assert high.beta0 > low.beta0
    assert low.pairs == high.pairs == 16 * (STEPS - 1)
