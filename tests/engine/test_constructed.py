"""worker.engine.data.constructed: deterministic pairs with a known answer and a controlled quality gap."""

from collections import Counter

import pytest

from contracts.config import ConstructedDataSpec
from worker.engine.data.constructed import constructed_rows, expected_answer, is_correct, task_and_gap


def test_same_spec_same_rows_other_seed_other_rows() -> None:
    spec = ConstructedDataSpec(num_pairs=60, seed=3)
    assert constructed_rows(spec) == constructed_rows(spec)
    other = constructed_rows(ConstructedDataSpec(num_pairs=60, seed=4))
    assert [row.pair_id for row in other] != [row.pair_id for row in constructed_rows(spec)]


def test_rows_are_labelled_constructed_and_mixed_as_asked() -> None:
    rows = constructed_rows(ConstructedDataSpec(num_pairs=30, high_gap_fraction=0.3))
    labels = [task_and_gap(row.source) for row in rows]
    # tasks cycle in the order given; round(30 · 0.3) = 9 high-gap pairs
    assert [task for task, _ in labels[:4]] == ["arithmetic", "copy", "sort", "arithmetic"]
    assert Counter(gap for _, gap in labels) == {"high": 9, "low": 21}
    assert all(row.source.startswith("constructed:") and row.format == "standard" for row in rows)
    assert [row.line for row in rows] == list(range(1, 31))
    assert len({row.pair_id for row in rows}) == 30


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_pure_mixtures(fraction: float) -> None:
    rows = constructed_rows(ConstructedDataSpec(num_pairs=12, high_gap_fraction=fraction))
    assert {task_and_gap(row.source)[1] for row in rows} == {"high" if fraction else "low"}


def test_chosen_is_correct_and_rejected_is_not() -> None:
    rows = constructed_rows(ConstructedDataSpec(num_pairs=600, seed=7))
    for row in rows:
        task, _ = task_and_gap(row.source)
        assert is_correct(task, row.prompt, row.chosen), row
        assert not is_correct(task, row.prompt, row.rejected), row


def test_gap_size_per_task() -> None:
    rows = constructed_rows(ConstructedDataSpec(num_pairs=300, seed=1))
    for row in rows:
        task, gap = task_and_gap(row.source)
        chosen, rejected = row.chosen.split(), row.rejected.split()
        if task == "arithmetic":
            distance = abs(int(row.rejected) - int(row.chosen))
            assert distance == 1 if gap == "low" else 100 <= distance <= 900
        elif task == "sort" and gap == "high":
            assert rejected == chosen[::-1]
        elif task == "copy" and gap == "high":
            assert not set(rejected) & set(chosen) and len(rejected) == len(chosen)
        else:  # low-gap copy and sort: the same items with exactly one adjacent pair swapped
            wrong = [i for i, (a, b) in enumerate(zip(chosen, rejected, strict=True)) if a != b]
            assert len(wrong) == 2 and wrong[1] == wrong[0] + 1


def test_is_correct_by_hand() -> None:
    assert is_correct("arithmetic", "What is 17 + 25?", "42")  # 17 + 25 = 42
    assert is_correct("arithmetic", "What is 17 + 25?", " 42 \n")  # surrounding whitespace is ignored
    assert not is_correct("arithmetic", "What is 17 + 25?", "43")
    assert not is_correct("arithmetic", "What is 17 + 25?", "42 apples")
    assert is_correct("copy", "Repeat: apple river", "apple  river")  # whitespace runs collapse
    assert not is_correct("copy", "Repeat: apple river", "river apple")
    assert expected_answer("sort", "Sort: 7 2 11 4") == "2 4 7 11"  # numeric, not lexicographic order
    assert not is_correct("sort", "Sort: 7 2 11 4", "11 2 4 7")


def test_unknown_task_or_foreign_prompt_raise() -> None:
    with pytest.raises(ValueError, match="unknown constructed task"):
        is_correct("poetry", "Write a poem", "roses")
    with pytest.raises(ValueError, match="not a sort prompt"):
        is_correct("sort", "What is 1 + 1?", "2")
    with pytest.raises(ValueError, match="not a constructed source"):
        task_and_gap("file.jsonl")
