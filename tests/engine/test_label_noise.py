"""Planted label noise (data.label_noise): the flags are recorded with the pair texts and never reach
the trainer — a run with label_noise trains exactly like a run on a file whose rows were swapped by
hand, with no flag anywhere in its data."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from contracts import metric_keys as mk
from contracts.config import ConstructedDataSpec
from worker.engine.data.constructed import constructed_rows
from worker.engine.data.label_noise import plant_label_noise
from worker.engine.data.pairs import TokenizedPair
from worker.engine.loop import train
from worker.engine.sinks import ListSink

from .test_loop import small

PAIRS, NOISE, SEED = 128, 0.25, 7


def _points(sink: ListSink) -> list[tuple[str, int, float]]:
    return [(p.key, p.step, p.value) for p in sink.point_list if p.key != mk.TRAIN_EXAMPLES_PER_SECOND]


def test_planted_flags_never_reach_the_trainer(tmp_path: Path) -> None:
    rows = constructed_rows(ConstructedDataSpec(num_pairs=PAIRS, seed=0))
    # the same draw the loader makes, on indices of the training list (no pair dropped at this size)
    marked = [TokenizedPair(str(i), (), (), (), "", str(i), "") for i in range(PAIRS)]
    noisy_marked, planted_ids = plant_label_noise(marked, NOISE, SEED)
    flipped = {int(p.rejected_text) for p in noisy_marked if p.pair_id in planted_ids}
    assert len(flipped) == round(NOISE * PAIRS) == 32
    path = tmp_path / "swapped.jsonl"
    with path.open("w") as out:
        for index, row in enumerate(rows):
            chosen, rejected = (row.rejected, row.chosen) if index in flipped else (row.chosen, row.rejected)
            out.write(json.dumps({"prompt": row.prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    common = ("optim.max_steps=6", "data.constructed.num_pairs=128", "beta_dpo.scope=micro_batch")
    noisy, by_hand = ListSink(), ListSink()
    train(
        small("tiny-beta-dpo", *common, f"data.label_noise={NOISE}", f"data.label_noise_seed={SEED}"), noisy
    )
    train(small("tiny-beta-dpo", *common, "data.source=file", f"data.path={path}"), by_hand)

    assert _points(noisy) == _points(by_hand)  # every metric of every step, bit for bit
    assert noisy.pair_records == by_hand.pair_records  # same pairs (same ids), same values
    planted = {t.pair_id for t in noisy.pair_texts if t.planted}
    assert len(planted) == 32 and all(t.planted is None for t in by_hand.pair_texts)
    swapped_texts = {(t.prompt, t.chosen, t.rejected) for t in by_hand.pair_texts}
    assert {(t.prompt, t.chosen, t.rejected) for t in noisy.pair_texts} == swapped_texts
    flipped_texts = {(rows[i].prompt, rows[i].rejected, rows[i].chosen) for i in flipped}
    assert {(t.prompt, t.chosen, t.rejected) for t in noisy.pair_texts if t.planted} == flipped_texts
    # and the structure the trainer gets has no place for a flag
    assert "planted" not in {f.name for f in fields(TokenizedPair)}


def test_eval_pairs_are_never_flipped_and_the_count_is_exact() -> None:
    items = [TokenizedPair(str(i), (1,), (2,), (3,), "p", f"c{i}", f"r{i}") for i in range(10)]
    noisy, planted = plant_label_noise(items, 0.3, 0)
    assert len(planted) == 3 and [p.pair_id for p in noisy if p.pair_id in planted] == sorted(
        planted, key=[p.pair_id for p in noisy].index
    )
    for before, after in zip(items, noisy, strict=True):
        if after.pair_id in planted:
            assert (after.chosen_ids, after.rejected_ids, after.chosen_text) == (
                (3,),
                (2,),
                before.rejected_text,
            )
        else:
            assert after == before
    assert plant_label_noise(items, 0.0, 0) == (items, frozenset())
