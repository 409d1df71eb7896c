"""On/off-policy scenario rows (3D-properties Table 4) and the round-robin ranking."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from contracts.config import ConstructedDataSpec, DataConfig
from contracts.pairs import read_rows
from tests.engine.neox import one_layer_neox
from worker.engine.data.pairs import load_pairs
from worker.engine.evaluation.judges import RuleJudge, Verdict, by_score
from worker.experiments.scenarios import SamplingSpec, build_scenarios, copeland_order, write_jsonl


class LongerWins:
    """A judge that prefers the longer response (ties on equal length)."""

    name = "longer"

    def compare(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[Verdict]:
        return [Verdict(by_score(len(x), len(y)), "") for x, y in zip(a, b, strict=True)]


def test_copeland_order_by_hand() -> None:
    # lengths 2, 3, 1, 3: "bbb" and "ddd" beat both others and tie each other → 2.5 points each;
    # "aa" beats "c" → 1; "c" → 0. Equal scores keep sample order.
    order = copeland_order(LongerWins(), ["p"], [["aa", "bbb", "c", "ddd"]])
    assert order == [[1, 3, 0, 2]]


def test_scenario_rows_have_the_right_sources_and_a_real_preference(tiny_tokenizer, tmp_path: Path) -> None:
    policy = one_layer_neox(tiny_tokenizer)
    data = DataConfig(constructed=ConstructedDataSpec(tasks=("sort",), num_pairs=12, high_gap_fraction=1.0))
    items = load_pairs(data, tiny_tokenizer).train
    judge = RuleJudge()
    built = build_scenarios(items, policy, tiny_tokenizer, judge, SamplingSpec(3, 1.0, 8, seed=0))
    assert set(built.rows) == {"s1", "s2", "s3", "s4"}
    by_prompt = {item.prompt_text: item for item in items}
    for name, rows in built.rows.items():
        assert len(rows) + built.dropped[name] == len(items)
        verdicts = judge.compare(
            [r.prompt for r in rows], [r.chosen for r in rows], [r.rejected for r in rows]
        )
        assert all(v.winner == "a" for v in verdicts)  # every kept row carries the judge's preference
    for row in built.rows["s2"] + built.rows["s4"]:
        assert row.chosen == by_prompt[row.prompt].chosen_text  # off-policy chosen: the dataset's
    for row in built.rows["s4"]:
        assert row.rejected == by_prompt[row.prompt].rejected_text  # no other model: dataset rejected
    assert built.rows["s4"][0].source == "scenario:s4:dataset/dataset-rejected"
    assert built.rows["s1"][0].source == "scenario:s1:policy/policy"
    path = write_jsonl(built.rows["s2"], tmp_path / "s2.jsonl")
    back, report = read_rows(str(path), "auto", None)
    assert report.invalid == 0 and [(r.prompt, r.chosen, r.rejected) for r in back] == [
        (r.prompt, r.chosen, r.rejected) for r in built.rows["s2"]
    ]
