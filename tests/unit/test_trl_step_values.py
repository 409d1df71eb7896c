"""alignscope.trl's step values are the engine's: the same batch means, β-DPO summaries, 3D keys and
pair records from the same per-pair values (the client may not import the engine, so this test is
what keeps the two from drifting apart)."""

from __future__ import annotations

import random
from dataclasses import fields

import pytest
import torch

from alignscope.trl.rows import StepRows, pair_id
from alignscope.trl.step_values import COLUMNS, MicroBatch, step_values
from contracts.events import PairRecord, PairText
from contracts.ingest import pair_row, text_row
from contracts.pairs import PreferenceRow
from worker.alignment.beta_dpo import BetaCalibrator, CalibratorSettings
from worker.alignment.diagnostics import PairDiagnostics, pair_diagnostics
from worker.engine import step_metrics


def micro_batch(rng: random.Random, calibrator: BetaCalibrator, n: int = 6) -> MicroBatch:
    pc, pr, rc, rr = ([rng.uniform(-40, -5) for _ in range(n)] for _ in range(4))
    logits = torch.tensor([(a - c) - (b - d) for a, b, c, d in zip(pc, pr, rc, rr, strict=True)])
    cal = calibrator.calibrate(logits)
    columns = {"policy_chosen_logp": pc, "policy_rejected_logp": pr, "reference_chosen_logp": rc,
               "reference_rejected_logp": rr, "chosen_tokens": [float(rng.randint(1, 9)) for _ in range(n)],
               "rejected_tokens": [float(rng.randint(1, 9)) for _ in range(n)],
               "discrepancy": cal.discrepancy.tolist(), "filter_weight": cal.weight.tolist(),
               "kept": [float(k) for k in cal.keep.tolist()], "beta": [float(cal.beta)] * n}  # fmt: skip
    return MicroBatch([(f"q{rng.random()}", "c", "r") for _ in range(n)], columns, cal)


def test_step_values_equal_the_engines() -> None:
    rng = random.Random(7)
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator().manual_seed(0))
    batches = [micro_batch(rng, calibrator) for _ in range(2)]
    assert tuple(COLUMNS) == step_metrics.PAIR_FIELDS
    columns = {name: [v for b in batches for v in b.columns[name]] for name in COLUMNS}
    diagnostics = pair_diagnostics(*(columns[name] for name in COLUMNS[:6]), 0.1)
    columns.update({f.name: getattr(diagnostics, f.name) for f in fields(PairDiagnostics)})
    table = step_metrics.StepTable(columns, loss=0.5, grad_norm=1.0, sft=0.0, loss_all_pairs=0.5)
    engine = step_metrics.step_values(table, [b.calibration for b in batches])
    ours = step_values(batches, 0.1)
    # TRL logs its own loss, SFT term and gradient norm
    engine_only = {"train/loss", "train/sft_loss", "train/grad_norm", "train/loss_all_pairs"}
    assert set(engine) - set(ours) == engine_only and set(ours) <= set(engine)
    for key, value in ours.items():
        assert value == pytest.approx(engine[key], rel=1e-12, abs=1e-12), key
    rows = StepRows(3, batches, set())
    records = [PairRecord(*row) for row in rows.pairs()]
    assert [(r.step, r.micro_batch) for r in records] == [(3, 0)] * 6 + [(3, 1)] * 6
    assert [r.m0 for r in records[6:]] == [batches[1].calibration.m0] * 6
    assert [pair_row(r) for r in records] == rows.pairs()  # the wire rows a PairRecord would give
    first = batches[0]
    assert records[0].pair_id == PreferenceRow(*first.pairs[0], line=0, source="trl", format="").pair_id
    assert (records[0].chosen_tokens, records[0].kept) == (int(first.columns["chosen_tokens"][0]),
                                                           bool(first.columns["kept"][0]))  # fmt: skip
    texts = rows.texts()
    assert texts == [text_row(PairText(pair_id(p), *p)) for b in batches for p in b.pairs]
    assert StepRows(4, batches, rows.sent).texts() == []  # each pair's texts once per run


def test_one_calibration_per_step_counts_once() -> None:
    """Scope batch: every micro-batch of the step carries the step's one calibration; its M0, σ and
    filtered counts are logged once (no step means), by the engine's and the client's code alike."""
    rng = random.Random(3)
    calibrator = BetaCalibrator(CalibratorSettings(beta0=0.1), torch.Generator().manual_seed(0))
    first = micro_batch(rng, calibrator)
    second = micro_batch(rng, calibrator)
    second.calibration = first.calibration
    values = step_values([first, second], 0.1)
    cal = first.calibration
    assert (values["train/beta_dpo/m0"], values["train/beta_dpo/sigma"]) == (cal.m0, cal.sigma)
    assert "train/beta_dpo/m0_step_mean" not in values and "train/beta_dpo/sigma_step_mean" not in values
    assert values["train/beta_dpo/filtered_high"] + values["train/beta_dpo/filtered_low"] == 6 - cal.kept
