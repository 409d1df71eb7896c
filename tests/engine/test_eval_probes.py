"""Probe sets (SCIENCE.md §C.5 D3): groups, cached reference values, the loop's probe metrics."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from backend.config_files import apply_overrides, load_preset, validate
from contracts import metric_keys as mk
from contracts.config import ProbeConfig
from tests.engine.neox import one_layer_neox
from worker.engine.data.pairs import TokenizedPair
from worker.engine.evaluation.probes import ProbeSet, probe_batch
from worker.engine.loop import train
from worker.engine.model.scoring import response_logps
from worker.engine.sinks import ListSink

PROBE_KEYS = {
    mk.PROBE_LOGRATIO_CHOSEN,
    mk.PROBE_LOGRATIO_REJECTED,
    mk.PROBE_LOGRATIO_UNSEEN,
    mk.PROBE_LOGRATIO_MISMATCH,
}


def items(tokenizer) -> list[TokenizedPair]:
    rows = [("Sort: 3 1 2", "1 2 3", "3 2 1"), ("Repeat: apple river", "apple river", "river apple")]
    out = []
    for i, (prompt, chosen, rejected) in enumerate(rows):
        ids = [(*tokenizer(t, add_special_tokens=False)["input_ids"], 0) for t in (chosen, rejected)]
        out.append(
            TokenizedPair(f"p{i}", tuple(tokenizer(prompt)["input_ids"]), *ids, prompt, chosen, rejected)
        )
    return out


@pytest.fixture
def model(tiny_tokenizer) -> GPTNeoXForCausalLM:
    return one_layer_neox(tiny_tokenizer)


def test_groups_and_zero_log_ratios_before_any_update(model, tiny_tokenizer) -> None:
    pairs = items(tiny_tokenizer)
    probes = ProbeSet(
        ProbeConfig(every=1, num_prompts=2, unseen_samples=3, max_new_tokens=6),
        model,
        tiny_tokenizer,
        pairs,
        0,
    )
    probes.prepare()
    groups = [g for g, _, _ in probes.sequences]
    assert groups.count("chosen") == groups.count("rejected") == groups.count("mismatch") == 2
    assert 1 <= groups.count("unseen") <= 2 * 3  # draws equal to chosen/rejected are left out
    mismatch = [r for g, _, r in probes.sequences if g == "mismatch"]
    assert mismatch == [pairs[1].chosen_ids, pairs[0].chosen_ids]  # the next prompt's chosen
    values = probes.measure()
    assert set(values) == PROBE_KEYS
    assert all(abs(v) < 1e-6 for v in values.values())  # policy = reference: (s_θ − s_ref)/n = 0


def test_measure_is_the_mean_per_token_log_ratio(model, tiny_tokenizer) -> None:
    pairs = items(tiny_tokenizer)
    probes = ProbeSet(
        ProbeConfig(every=1, num_prompts=2, unseen_samples=1, max_new_tokens=4),
        model,
        tiny_tokenizer,
        pairs,
        0,
    )
    probes.prepare()
    reference = probes.reference.clone()
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(1.5)  # any change of the policy
    chosen = [s for s in probes.sequences if s[0] == "chosen"]
    with torch.no_grad():
        sums, counts = response_logps(model, probe_batch(chosen, 1))
    rows = [i for i, s in enumerate(probes.sequences) if s[0] == "chosen"]
    expected = ((sums.double() - reference[rows]) / counts).mean()  # mean over the group of (s_θ − s_ref)/n
    assert probes.measure()[mk.PROBE_LOGRATIO_CHOSEN] == pytest.approx(float(expected), abs=1e-5)
    restored = ProbeSet(probes.config, model, tiny_tokenizer, pairs, 0)
    restored.load_state_dict(probes.state_dict())
    assert restored.measure() == pytest.approx(probes.measure())


def test_probe_metrics_in_the_loop() -> None:
    shrink = [
        "model.tiny.hidden_size=32",
        "model.tiny.intermediate_size=64",
        "data.constructed.num_pairs=96",
        "data.max_length=48",
        "data.max_prompt_length=24",
        "data.eval_fraction=0.1",
        "optim.max_steps=6",
        "optim.warmup_steps=0",
        "optim.lr=0.003",
        "checkpoint_every=0",
        "probes.every=3",
        "probes.num_prompts=4",
        "probes.max_new_tokens=6",
    ]
    sink = ListSink()
    train(validate(apply_overrides(load_preset("tiny-dpo"), shrink)), sink)
    assert {k for k in sink.keys_at(3) if k.startswith("probe/")} == PROBE_KEYS
    assert [s for s, _ in sink.series(mk.PROBE_LOGRATIO_CHOSEN)] == [3, 6]
    chosen = sink.series(mk.PROBE_LOGRATIO_CHOSEN)[-1][1]
    rejected = sink.series(mk.PROBE_LOGRATIO_REJECTED)[-1][1]
    assert chosen > rejected  # DPO separates held-out chosen from rejected
