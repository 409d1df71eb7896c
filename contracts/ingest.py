"""The ingest wire format: what an external trainer (``import alignscope``) sends to the server.

Three messages per run, each idempotent so that a retried or re-synced one adds nothing:

- ``RunOpen`` (PUT /api/ingest/runs/{run_id}): creates the run as ``running`` with the client's own id
  (32 hex digits), or returns it unchanged when it exists;
- ``IngestBatch`` (POST …/batch): metric points, pair records and pair texts, plus the run's progress.
  Storage skips a (key, step) or (step, micro_batch, pair_id) already stored. Every batch, an empty
  one included, renews the run's heartbeat; the answer carries the dashboard's stop flag;
- ``RunFinish`` (POST …/finish): the run's final status.

Rows travel as arrays in a fixed column order (``POINT_COLUMNS``, ``metric_keys.PAIR_COLUMNS``,
``TEXT_COLUMNS``) rather than objects: a step of a few hundred pairs is one short JSON document.
A float that is NaN travels as ``NaN`` (Python's JSON), as does ±inf; both are kept as stored values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import MetricPoint, PairRecord, PairText
from contracts.metric_keys import PAIR_COLUMNS

POINT_COLUMNS = ("key", "step", "value", "wall_time")
TEXT_COLUMNS = ("pair_id", "prompt", "chosen", "rejected")
MAX_BATCH_ROWS = 200_000  # rows of each kind in one batch
MAX_BODY_BYTES = 32 * 1024 * 1024  # one request body
MAX_CONFIG_DEPTH = 12  # nesting of a run's config and environment
RUN_ID_PATTERN = r"^[0-9a-f]{32}$"
SOURCES = ("trl", "python")

Key = Annotated[str, Field(min_length=1, max_length=200)]
Step = Annotated[int, Field(ge=0, le=2**31 - 1)]
PointRow = tuple[Key, Step, float, float]
PairId = Annotated[str, Field(min_length=1, max_length=128)]
Tokens = Annotated[int, Field(ge=0, le=2**31 - 1)]
MicroBatch = Annotated[int, Field(ge=0, le=2**31 - 1)]
F = float
PairRow = tuple[Step, MicroBatch, PairId, F, F, F, F, Tokens, Tokens, F, F, bool, F, F, F]  # PAIR_COLUMNS
Text = Annotated[str, Field(max_length=1_000_000)]
TextRow = tuple[PairId, Text, Text, Text]


class Wire(BaseModel):
    """Base of the ingest messages: frozen, unknown fields rejected, NaN and ±inf allowed."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=True)


class RunOpen(Wire):
    """Open (or find) an external run. The run id is in the URL."""

    name: str = Field(min_length=1, max_length=200, description="Run name shown in the dashboard.")
    source: Literal["trl", "python"] = Field(
        "python", description="What trained it: 'trl' (alignscope.trl.DPOTrainer) or 'python' (the client)."
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The trainer's config as a JSON object (shown in the config panel; never executed). "
        "``loss.kind``, ``loss.beta`` and ``beta_dpo`` are read the way a native run's are.",
    )
    environment: dict[str, Any] = Field(
        default_factory=dict, description="Versions and devices of the training process (JSON object)."
    )
    total_steps: int | None = Field(None, ge=1, le=2**31 - 1, description="Planned optimizer steps.")


class IngestBatch(Wire):
    """Rows of one run, in the column orders of the module docstring."""

    seq: int = Field(0, ge=0, description="The client's batch counter (its spool replays batches by it).")
    points: list[PointRow] = Field(default_factory=list, max_length=MAX_BATCH_ROWS, description="Points.")
    pairs: list[PairRow] = Field(default_factory=list, max_length=MAX_BATCH_ROWS, description="Pair records.")
    texts: list[TextRow] = Field(default_factory=list, max_length=MAX_BATCH_ROWS, description="Pair texts.")
    step: int | None = Field(None, ge=0, le=2**31 - 1, description="Optimizer steps completed so far.")
    message: str | None = Field(None, max_length=2000, description="Status line shown in the run's header.")
    progress: float | None = Field(None, ge=0.0, le=1.0, description="Fraction of the planned steps done.")

    def metric_points(self) -> list[MetricPoint]:
        return [MetricPoint(key, step, value, wall) for key, step, value, wall in self.points]

    def pair_records(self) -> list[PairRecord]:
        return [PairRecord(*row) for row in self.pairs]

    def pair_texts(self) -> list[PairText]:
        return [PairText(*row) for row in self.texts]


class RunFinish(Wire):
    """End an external run."""

    status: Literal["succeeded", "failed", "stopped"] = Field(description="The run's final status.")
    error: str | None = Field(None, max_length=20_000, description="Why it failed (failed only).")


class IngestAck(Wire):
    """The server's answer to every ingest message."""

    run_id: str
    status: str
    stop_requested: bool = Field(description="The dashboard asked the run to stop.")
    points: int = Field(0, description="Points newly stored by this message (0 for a retried one).")
    pairs: int = Field(0, description="Pair records newly stored.")
    texts: int = Field(0, description="Pair texts newly stored.")


def point_row(point: MetricPoint) -> list[object]:
    """A MetricPoint in POINT_COLUMNS order."""
    return [point.key, point.step, point.value, point.wall_time]


def pair_row(record: PairRecord) -> list[object]:
    """A PairRecord in PAIR_COLUMNS order."""
    return [getattr(record, name) for name in PAIR_COLUMNS]


def text_row(text: PairText) -> list[object]:
    """A PairText in TEXT_COLUMNS order."""
    return [text.pair_id, text.prompt, text.chosen, text.rejected]


def json_depth(value: object, limit: int = MAX_CONFIG_DEPTH) -> int:
    """Nesting depth of a parsed JSON value; raises ValueError past ``limit`` (no deep recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ValueError(f"nested deeper than {limit} levels")
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return deepest
