"""Several processes under torchrun (real gloo process groups) train like one process on the same
global batch: torch DDP, FSDP2, FSDP2 stopped and resumed from its sharded checkpoint, LoRA under
FSDP2 and under DDP stopped and resumed, and a small Llama (tied embeddings) under FSDP2 with its
reference precomputed by both ranks (against one process's on-the-fly reference); the old
hand-written gradient all-reduce is gone.

One torchrun launch (2 processes) runs every multi-process job (``torchrun_entry.py``); the
one-process runs are made here. Tolerance: rel 1e-5 / abs 1e-6 between 1 and 2 processes. The two
sides compute the same float32 sums in a different order (each rank sums its half of a micro-batch,
then gloo adds the halves; the objective's global normalisation is exact), so a gradient differs
by a few ulps (≈1e-7 relative); AdamW's update divides by √v, which carries such differences into
the weights at about the same relative size; over 10 steps they stay within ~3e-6 relative (when
written, the largest deviation used 8–23 % of this tolerance; the test prints the share), while a
real error — a missed rank, a wrong scale, a gradient averaged twice — moves these values by 1e-3 or
more. Stop-and-resume at one world size must be exact: the checkpoint restores every bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.config_files import ConfigError
from contracts import metric_keys as mk
from tests.engine.model_dirs import save_small_model
from tests.engine.test_loop import small, values
from worker.engine import distributed
from worker.engine.loop import train
from worker.engine.sinks import ListSink

REPO = Path(__file__).resolve().parents[2]
COMPARED = (
    mk.TRAIN_LOSS, mk.TRAIN_BETA, mk.BDPO_M0, mk.BDPO_SIGMA, mk.TRAIN_GRAD_NORM, mk.REWARDS_MARGIN,
    mk.BDPO_KEPT_FRACTION, mk.LOGPS_CHOSEN,
)  # fmt: skip
STEPS = 10
SHAPE = (  # 2 micro-batches a step; no end-of-run win rates (generated on rank 0 alone: not with fsdp)
    f"optim.max_steps={STEPS}",
    "optim.batch_size=16",
    "optim.micro_batch_size=8",
    "evaluation.at_end=false",
)
LORA = ("model.lora.r=4", "model.lora.alpha=8", "optim.lr=0.01")
REL, ABS = 1e-5, 1e-6


def torchrun(jobs: list[dict], out: Path, processes: int = 2, timeout: int = 900) -> list[dict]:
    """Runs ``jobs`` in ``processes`` processes under torchrun; returns each rank's results."""
    spec = out / "spec.json"
    spec.write_text(json.dumps({"jobs": jobs}))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
        str(REPO / "tests" / "engine" / "torchrun_entry.py"), str(spec), str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ALIGNSCOPE_CACHE_DIR": str(out)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(processes)]


def series(points: dict[str, float], key: str) -> list[float]:
    return [points[f"{key}@{step}"] for step in range(1, STEPS + 1)]


def one_process(*overrides: str) -> dict[str, float]:
    sink = ListSink()
    summary = train(small("tiny-beta-dpo", *SHAPE, *overrides), sink)
    assert summary.status == "succeeded"
    return {f"{p.key}@{p.step}": p.value for p in sink.point_list}


def tolerance_used(a: dict[str, float], b: dict[str, float]) -> float:
    """The largest |a − b| / (abs + rel·|b|) over the compared values: below 1 passes."""
    keys = [k for k in a if k.split("@")[0] in COMPARED]
    return max(abs(a[k] - b[k]) / (ABS + REL * abs(b[k])) for k in keys)


@pytest.mark.slow
def test_ddp_and_fsdp2_in_two_processes_equal_one_process(tmp_path: Path) -> None:
    base = ["distributed.strategy=ddp"]
    fsdp = ["distributed.strategy=fsdp"]
    jobs = [
        {"name": "ddp", "preset": "tiny-beta-dpo", "overrides": [*SHAPE, *base]},
        {"name": "fsdp", "preset": "tiny-beta-dpo", "overrides": [*SHAPE, *fsdp]},
        {"name": "fsdp_resumed", "preset": "tiny-beta-dpo", "overrides": [*SHAPE, *fsdp],
         "checkpoint": str(tmp_path / "fsdp-ckpt"), "stop_after": 4},
        {"name": "lora_fsdp_resumed", "preset": "tiny-beta-dpo", "overrides": [*SHAPE, *fsdp, *LORA],
         "checkpoint": str(tmp_path / "lora-ckpt"), "stop_after": 4},
        {"name": "lora_ddp_resumed", "preset": "tiny-beta-dpo", "overrides": [*SHAPE, *base, *LORA],
         "checkpoint": str(tmp_path / "lora-ddp-ckpt"), "stop_after": 6},
    ]  # fmt: skip
    llama = ["model.source=pretrained", f"model.path={save_small_model('llama', tmp_path / 'llama')}"]
    precomputed = "reference.mode=precomputed"  # scored once through the sharded policy, ranks splitting
    jobs.append(
        {"name": "llama_fsdp", "preset": "tiny-beta-dpo", "overrides": [*SHAPE, *fsdp, *llama, precomputed]}
    )
    rank0, rank1 = torchrun(jobs, tmp_path)
    single, single_lora, single_llama = one_process(), one_process(*LORA), one_process(*llama)

    wrappers = (rank0["ddp"]["wrapper"], rank0["fsdp"]["wrapper"])
    assert wrappers == ("DistributedDataParallel", "FSDPPairScorer")
    for name, job in rank0.items():
        assert job["statuses"][-1] == "succeeded" and job["steps"] == STEPS, name
        assert job["pairs"] == STEPS * 16 and rank1[name]["pairs"] == 0  # rank 0 alone records
    for name in ("fsdp_resumed", "lora_fsdp_resumed", "lora_ddp_resumed"):
        assert rank0[name]["statuses"] == rank1[name]["statuses"] == ["stopped", "succeeded"], name
    assert (tmp_path / "lora-ckpt" / "adapter" / "adapter_model.safetensors").is_file()  # the export
    compared = {"ddp": single, "fsdp": single, "lora_fsdp_resumed": single_lora,
                "lora_ddp_resumed": single_lora, "llama_fsdp": single_llama}  # fmt: skip
    for name, expected in compared.items():
        got = rank0[name]["points"]
        for key in COMPARED:
            assert series(got, key) == pytest.approx(series(expected, key), rel=REL, abs=ABS), (name, key)
        print(f"{name}: share of the tolerance used {tolerance_used(got, expected):.3f}")
    # a sharded checkpoint resumes exactly: every metric at every step is the uninterrupted run's
    assert rank0["fsdp_resumed"]["points"] == rank0["fsdp"]["points"]
    # the policies move (so the comparison is not between two flat lines)
    for expected in (single, single_lora, single_llama):
        print("margins", series(expected, mk.REWARDS_MARGIN))
        assert series(expected, mk.REWARDS_MARGIN)[-1] > 1e-3


def test_no_hand_written_gradient_all_reduce_is_left() -> None:
    """Gradients are averaged by torch's wrappers only: no module of the worker all-reduces them."""
    assert not hasattr(distributed, "average_gradients")
    for path in (REPO / "worker").rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            assert not ("all_reduce" in line and "grad" in line), f"{path}: {line.strip()}"
        assert "param.grad" not in text or path.name == "head_logps.py", path


def test_fsdp2_in_one_process_equals_the_plain_path_and_resumes_exactly(tmp_path: Path) -> None:
    """``distributed.strategy: fsdp`` with one process: a private process group of one, the same
    trajectory as the unwrapped path; its sharded checkpoint resumes exactly (twice in one process,
    so the group is created and left each time)."""
    shape = ("optim.max_steps=4", *SHAPE[1:])
    plain, whole = ListSink(), ListSink()
    train(small("tiny-beta-dpo", *shape), plain)
    config = small("tiny-beta-dpo", *shape, "distributed.strategy=fsdp")
    train(config, whole)
    for key in COMPARED:
        assert values(whole, key) == pytest.approx(values(plain, key), rel=1e-5, abs=1e-6), key
    first, second = ListSink(), ListSink()
    calls: list[int] = []
    stopped = train(config, first, lambda: len(calls.append(1) or calls) >= 2, tmp_path / "c")
    assert stopped.status == "stopped" and (tmp_path / "c" / "sharded" / ".metadata").is_file()
    assert train(config, second, checkpoint_dir=tmp_path / "c").status == "succeeded"
    for key in COMPARED:
        assert values(first, key) + values(second, key) == values(whole, key), key


def test_fsdp_with_rank_zero_generation_is_refused_naming_the_fields() -> None:
    with pytest.raises(ConfigError, match=r"distributed\.strategy 'fsdp'.*use strategy 'ddp'"):
        small("tiny-beta-dpo", "distributed.strategy=fsdp", "evaluation.at_end=true")  # rank-0 win rates
    small("tiny-beta-dpo", "distributed.strategy=fsdp", "evaluation.at_end=false")  # accepted
