"""The base of every config model and the caps that bound them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

MAX_STEPS_CAP = 1_000_000
MAX_LENGTH_CAP = 8192
MAX_BATCH_CAP = 4096
MAX_ROWS_CAP = 10_000_000


class Frozen(BaseModel):
    """Base: immutable, unknown keys rejected, NaN/inf rejected in float fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
