"""Planted label noise: swap chosen ↔ rejected in a chosen fraction of the TRAINING pairs (issue 20).

``plant_label_noise`` returns the pairs the trainer gets and, separately, the ids of the flipped
ones — the ground truth for the outlier inspector's audit. Only the run's pair texts record the flags
(``PairText.planted``); nothing the loop, the objective or the calibrator reads carries them: a
flipped pair is an ordinary TokenizedPair whose chosen and rejected sides are exchanged, and its
pair_id is the content hash of the swapped texts (so a run with ``data.label_noise`` trains exactly
like a run on a file whose rows were swapped by hand — tests/engine/test_label_noise.py).

Exactly round(fraction · n) pairs are flipped, drawn without replacement by a ``random.Random`` seeded
with ``label_noise_seed``; the held-out (eval) pairs are never touched.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from contracts.pairs import pair_id

if TYPE_CHECKING:
    from worker.engine.data.pairs import TokenizedPair


def flipped(pair: TokenizedPair) -> TokenizedPair:
    """The pair with chosen and rejected exchanged, under the content hash of the swapped texts."""
    return replace(
        pair,
        pair_id=pair_id(pair.prompt_text, pair.rejected_text, pair.chosen_text),
        chosen_ids=pair.rejected_ids,
        rejected_ids=pair.chosen_ids,
        chosen_text=pair.rejected_text,
        rejected_text=pair.chosen_text,
    )


def plant_label_noise(
    train: Sequence[TokenizedPair], fraction: float, seed: int
) -> tuple[list[TokenizedPair], frozenset[str]]:
    """(the training pairs with round(fraction·n) of them flipped, in the same order; the flipped
    pairs' ids as the trainer sees them)."""
    count = round(fraction * len(train))
    if count == 0:
        return list(train), frozenset()
    rng = random.Random(f"alignscope-label-noise:{seed}")
    chosen = set(rng.sample(range(len(train)), count))
    pairs = [flipped(pair) if index in chosen else pair for index, pair in enumerate(train)]
    return pairs, frozenset(pairs[index].pair_id for index in chosen)
