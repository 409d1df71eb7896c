"""Bradley–Terry reward model: training metrics, the saved directory, the judge, ``alignscope train-rm``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backend.config_files import apply_overrides, load_preset, validate
from backend.storage import metrics, runs
from backend.storage.db import init_db
from contracts import metric_keys as mk
from contracts.config import RunConfig
from worker.engine.data.pairs import collate, load_pairs
from worker.engine.evaluation.judges import RewardModelJudge
from worker.engine.evaluation.reward_model import (
    load_reward_model,
    pair_rewards,
    score_texts,
    train_reward_model,
)
from worker.engine.model.loading import ModelLoadError
from worker.engine.sinks import ListSink

REPO = Path(__file__).resolve().parents[2]
SHRINK = [
    "model.tiny.hidden_size=32",
    "model.tiny.intermediate_size=64",
    "data.constructed.num_pairs=128",
    "data.constructed.high_gap_fraction=1.0",
    "data.max_length=48",
    "data.max_prompt_length=24",
    "data.eval_fraction=0.1",
    "optim.max_steps=20",
    "optim.lr=0.003",
    "optim.warmup_steps=0",
    "optim.batch_size=16",
    "optim.micro_batch_size=8",
    "log_every=5",
]


def small() -> RunConfig:
    return validate(apply_overrides(load_preset("tiny-dpo"), SHRINK))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ListSink, Path]:
    sink = ListSink()
    out = tmp_path_factory.mktemp("rm") / "model"
    summary = train_reward_model(small(), sink, out)
    assert summary.status == "succeeded" and summary.steps == 20 and summary.path == str(out)
    return sink, out


def test_metrics_and_learning(trained: tuple[ListSink, Path]) -> None:
    sink, _ = trained
    assert [s for s, _ in sink.series(mk.RM_LOSS)] == [5, 10, 15, 20]
    assert sink.keys_at(20) == {
        mk.RM_LOSS,
        mk.RM_ACCURACY,
        mk.RM_MARGIN,
        mk.TRAIN_LR,
        mk.PROGRESS,
        mk.RM_EVAL_LOSS,
        mk.RM_EVAL_ACCURACY,
    }
    losses = [v for _, v in sink.series(mk.RM_LOSS)]
    assert losses[-1] < losses[0]  # high-gap pairs: the reward separates chosen from rejected
    assert sink.series(mk.RM_MARGIN)[-1][1] > 0


def test_saved_directory_scores_texts_as_training_scored_pairs(trained: tuple[ListSink, Path]) -> None:
    _, out = trained
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    model, tokenizer = load_reward_model(out, "cpu")
    pairs = load_pairs(small().data, tokenizer).train[:6]
    with torch.no_grad():
        chosen, rejected = pair_rewards(model, collate(pairs, int(tokenizer.pad_token_id)))
    texts = score_texts(model, tokenizer, [p.prompt_text for p in pairs], [p.chosen_text for p in pairs])
    assert texts == pytest.approx(chosen.tolist(), abs=1e-4)  # same tokenization as training
    judge = RewardModelJudge(out, device="cpu")
    verdicts = judge.compare(
        [p.prompt_text for p in pairs], [p.chosen_text for p in pairs], [p.rejected_text for p in pairs]
    )
    expected = [
        "a" if c > r else "b" if r > c else "tie"
        for c, r in zip(chosen.tolist(), rejected.tolist(), strict=True)
    ]
    assert [v.winner for v in verdicts] == expected
    assert judge.name == "reward_model:model" and verdicts[0].output.startswith("reward a=")


def test_refuses_a_directory_without_safetensors(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_reward_model(tmp_path)


def test_train_rm_command_records_a_run(tmp_path: Path) -> None:
    env = {**os.environ, "ALIGNSCOPE_DATA_DIR": str(tmp_path / "store")}
    env.pop("ALIGNSCOPE_DATABASE_URL", None)
    sets = [arg for item in [*SHRINK, "optim.max_steps=3", "log_every=1"] for arg in ("--set", item)]
    command = [
        sys.executable,
        "-m",
        "worker.cli.main",
        "train-rm",
        "tiny-dpo",
        *sets,
        "--out",
        str(tmp_path / "rm"),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = done.stdout.strip().splitlines()[-1]
    assert (tmp_path / "rm" / "model.safetensors").is_file()
    engine = init_db(f"sqlite:///{tmp_path / 'store' / 'alignscope.db'}")
    with engine.connect() as conn:
        row = runs.get_run(conn, run_id)
        assert row is not None and (row.status, row.name) == ("succeeded", "rm-tiny-dpo")
        assert [s for s, _ in metrics.series(conn, run_id, mk.RM_ACCURACY)] == [1, 2, 3]
