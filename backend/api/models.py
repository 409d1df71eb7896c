"""Request and response models of the HTTP API. Floats that may be NaN or ±inf are ``float | None``
and serialize NaN/inf as null (pydantic's ``ser_json_inf_nan="null"``), so a NaN never becomes a 500.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.storage.lineage import Segment
from backend.storage.metrics import StoredPoint
from backend.storage.pairs import PairRow, PairSummary
from backend.storage.runs import RunRow
from contracts.config import RunConfig
from contracts.events import EvalRecord

Number = float | None


class Out(BaseModel):
    """Base of every response model: NaN/inf → null in JSON."""

    model_config = ConfigDict(ser_json_inf_nan="null")


def finite(value: float | None) -> float | None:
    """``value``, or None for NaN/±inf."""
    return value if value is not None and math.isfinite(value) else None


class ErrorOut(Out):
    """Every error body: ``detail`` is a message, or a list of {loc, field, msg, type} for a 422."""

    detail: Any


class HealthOut(Out):
    status: Literal["ok", "error"]
    database: str
    broker: str
    auth: bool


class EndpointOut(Out):
    """A judge endpoint as a run may name it: its name and the models it offers (never its URL or key)."""

    name: str
    models: list[str]


class AllowancesOut(Out):
    """What a submitted run may reach on this deployment (SECURITY.md): judge endpoints by name, rule
    judges, hub datasets, the folders models and datasets are read from, and the caps."""

    judge_endpoints: list[EndpointOut]
    rule_judges: list[str]
    hub_datasets: list[str]
    model_roots: list[str]
    dataset_roots: list[str]
    max_processes: int
    max_model_params: int


class PresetOut(Out):
    name: str
    config: dict[str, Any]


class RunOut(Out):
    """A run row as the dashboard sees it. eta_s: seconds left, only while running. resumable /
    resume_blocked: whether Resume can work and why not; waiting_for: what a queued run waits for
    ("a worker with CUDA") when no live worker can start it (``backend.api.placement``)."""

    id: str
    name: str
    status: str
    preset: str | None
    group: str | None
    attempt: int
    error: str | None
    stop_requested: bool
    progress: Number
    message: str | None
    step: int | None
    total_steps: int | None
    created_at: float
    started_at: Number
    finished_at: Number
    heartbeat_at: Number
    parent_id: str | None
    resume_step: int | None = Field(None, description="a resume: continues parent_id after this step")
    config: dict[str, Any]
    environment: dict[str, Any] | None
    loss_kind: str | None
    beta0: Number
    eta_s: Number
    source: str | None = Field(
        None, description="None for a run of AlignScope's engine; else the external trainer that streamed it."
    )
    external: bool = Field(False, description="Streamed in by an external trainer: no resume, no clone.")
    resumable: bool = False
    resume_blocked: str | None = None
    waiting_for: str | None = None

    @classmethod
    def of(cls, row: RunRow) -> RunOut:
        config = json.loads(row.config)
        loss = config.get("loss") if isinstance(config.get("loss"), dict) else {}
        return cls(
            id=row.id,
            name=row.name,
            status=row.status,
            preset=row.preset,
            group=row.group_name,
            attempt=row.attempt,
            error=row.error,
            stop_requested=row.stop_requested,
            progress=finite(row.progress),
            message=row.message,
            step=row.step,
            total_steps=row.total_steps,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            heartbeat_at=row.heartbeat_at,
            parent_id=row.parent_id,
            resume_step=row.resume_step,
            config=config,
            environment=json.loads(row.environment) if row.environment else None,
            loss_kind=loss.get("kind"),
            beta0=loss.get("beta"),
            eta_s=_eta(row),
            source=row.source,
            external=row.source is not None,
        )


def _eta(row: RunRow) -> float | None:
    """Elapsed × (1 − progress) / progress while running with 0 < progress < 1."""
    progress = row.progress or 0.0
    if row.status != "running" or row.started_at is None or not 0.0 < progress < 1.0:
        return None
    elapsed = (row.heartbeat_at or time.time()) - row.started_at
    return max(0.0, elapsed * (1.0 - progress) / progress)


class GroupIn(BaseModel):
    """Launch the four β-DPO ablations of ``base`` under one group name."""

    model_config = ConfigDict(extra="forbid")

    group: str = Field(min_length=1, max_length=200)
    base: RunConfig
    variants: Literal["beta-dpo-ablations"] = "beta-dpo-ablations"


class CloneIn(BaseModel):
    """Dotted config keys to change, e.g. {"optim.lr": 1e-4, "loss.beta": 0.2}."""

    model_config = ConfigDict(extra="forbid")

    overrides: dict[str, Any] = Field(default_factory=dict, max_length=100)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=4096)


class LoginOut(Out):
    ok: bool
    auth_required: bool
    csrf_token: str | None


class SeriesOut(Out):
    """One metric: ascending steps and their values (null for NaN/inf)."""

    steps: list[int]
    values: list[Number]

    @classmethod
    def of(cls, points: list[tuple[int, float]]) -> SeriesOut:
        return cls(steps=[step for step, _ in points], values=[finite(value) for _, value in points])


class SegmentOut(Out):
    """One run of a lineage and the steps it supplies: after_step < step ≤ until_step (null:
    unbounded). A resumed run's history is its parent's segment, then its own from the resume point."""

    run_id: str
    name: str
    after_step: int | None
    until_step: int | None

    @classmethod
    def of(cls, segment: Segment) -> SegmentOut:
        return cls(
            run_id=segment.run_id,
            name=segment.name,
            after_step=segment.after_step,
            until_step=segment.until_step,
        )


class MetricsOut(Out):
    """last_seq: stream cursor read before the series; pass it as ?after= to the run's stream.
    lineage: the runs whose steps make up the series, oldest first (one for a run never resumed)."""

    run_id: str
    series: dict[str, SeriesOut]
    last_seq: int
    lineage: list[SegmentOut] = Field(default_factory=list)


class CompareOut(Out):
    """Each run's series over its whole lineage, and that lineage (run id → segments)."""

    runs: list[RunOut]
    series: dict[str, dict[str, SeriesOut]]
    lineage: dict[str, list[SegmentOut]] = Field(default_factory=dict)


class PairOut(Out):
    """A pair record (contracts.events.PairRecord fields) with its z-score and texts. keep_probability:
    how likely β-guided filtering was to keep it, given its micro-batch's weights (1 when nothing of
    that micro-batch was filtered; see backend.keep_probability)."""

    seq: int
    attempt: int
    step: int
    micro_batch: int
    pair_id: str
    policy_chosen_logp: Number
    policy_rejected_logp: Number
    reference_chosen_logp: Number
    reference_rejected_logp: Number
    chosen_tokens: int
    rejected_tokens: int
    discrepancy: Number
    filter_weight: Number
    kept: bool
    beta: Number
    m0: Number
    sigma: Number
    z: Number
    keep_probability: Number = None
    prompt: str | None
    chosen: str | None
    rejected: str | None

    @classmethod
    def of(cls, row: PairRow, keep_probability: float | None = None) -> PairOut:
        record = asdict(row.record)
        floats = {k: finite(v) for k, v in record.items() if isinstance(v, float)}
        texts = {"prompt": row.prompt, "chosen": row.chosen, "rejected": row.rejected}
        return cls(
            seq=row.seq,
            attempt=row.attempt,
            z=finite(row.z),
            keep_probability=keep_probability,
            **{**record, **floats},
            **texts,
        )


class PairSummaryOut(Out):
    """A pair over a run; mean_filtered_z > 0: filtered on the high side of the M0 of the steps it was
    filtered in, < 0: on the low side. noise_score: mean of max(0, −z) over its records (how far below
    M0, in σ; null without β-DPO); times_filtered_below: filtered while below M0; planted: true/false
    when the run planted label noise (data.label_noise), else null."""

    pair_id: str
    times_seen: int
    times_filtered: int
    times_filtered_below: int
    first_step: int
    last_step: int
    mean_discrepancy: Number
    mean_filtered_z: Number = None
    noise_score: Number = None
    times_filtered_below: int = 0
    planted: bool | None = None
    prompt: str | None
    chosen: str | None
    rejected: str | None

    @classmethod
    def of(cls, row: PairSummary) -> PairSummaryOut:
        values = asdict(row)
        floats = {
            "mean_discrepancy": finite(row.mean_discrepancy),
            "mean_filtered_z": finite(row.mean_filtered_z),
            "noise_score": finite(row.noise_score),
        }
        return cls(**{**values, **floats})


class EvalOut(Out):
    """contracts.events.EvalRecord; win_rate counts a tie as half a win, 95 % Wilson interval."""

    step: int
    temperature: float
    judge: str
    opponent: str
    wins: int
    ties: int
    losses: int
    win_rate: Number
    ci_low: Number
    ci_high: Number

    @classmethod
    def of(cls, record: EvalRecord) -> EvalOut:
        values = asdict(record)
        return cls(**{**values, **{k: finite(values[k]) for k in ("win_rate", "ci_low", "ci_high")}})


class PointOut(Out):
    key: str
    step: int
    value: Number


class PointsEvent(Out):
    """Data of an SSE ``points`` event: one run's new points, in seq order."""

    run_id: str
    points: list[PointOut]

    @classmethod
    def of(cls, run_id: str, points: list[StoredPoint]) -> PointsEvent:
        return cls(
            run_id=run_id, points=[PointOut(key=p.key, step=p.step, value=finite(p.value)) for p in points]
        )


class ProblemOut(Out):
    line: int
    field: str
    message: str


class ReportOut(Out):
    """contracts.pairs.ValidationReport; ``problems`` holds at most the first 100 of problems_total."""

    detected_format: str
    rows: int
    valid: int
    invalid: int
    problems: list[ProblemOut]
    problems_total: int


class DatasetOut(Out):
    """An uploaded dataset: ``name`` is its generated file name, ``path`` what to put in data.path."""

    name: str
    original_name: str
    path: str
    size_bytes: int
    uploaded_at: float
    report: ReportOut | None
    sha256: str | None = Field(None, description="hash of the file as uploaded (same file, same dataset)")
    reused: bool = Field(False, description="true when this upload was a file already stored: no new dataset")


class PreviewOut(Out):
    """The first valid rows and the report over the first ``report.rows`` records."""

    name: str
    rows: list[dict[str, Any]]
    report: ReportOut
