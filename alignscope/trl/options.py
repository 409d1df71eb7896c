"""The knobs of ``alignscope.trl.DPOTrainer``: where to log, and β-DPO."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.alignment.beta_dpo import CalibratorSettings


class BetaDPO(BaseModel):
    """β-DPO (SCIENCE.md Product decisions 1–3 and 6) with the engine's calibrator: dynamic β and
    β-guided filtering, each switchable (the paper's ablations), calibrated once per optimizer step
    (``scope`` batch, default) or per micro-batch. β0 is TRL's ``args.beta``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    alpha: float = Field(0.6, ge=0.0, le=100.0, description="α of β = β0·(1 + α·(M̄_kept − M0)), in u-units.")
    keep_ratio: float = Field(0.8, gt=0.0, le=1.0, description="ρ: the filter keeps floor(N·ρ) pairs.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="EMA momentum of M0 and σ.")
    beta_min: float = Field(1e-3, gt=0.0, description="Lower bound of β.")
    sigma_floor: float = Field(1e-3, gt=0.0, description="Lower bound of σ in the filter's weights.")
    dynamic_beta: bool = Field(True, description="Adapt β per calibration (off: β = β0).")
    filtering: bool = Field(True, description="Drop pairs by their discrepancy (off: keep all).")
    level: Literal["batch", "instance"] = Field("batch", description="One β per calibration or one per pair.")
    discrepancy_units: Literal["code", "paper"] = Field("code", description="M = u (code) or β0·u (paper).")
    scope: Literal["batch", "micro_batch"] = Field(
        "batch",
        description="batch (default, as the engine's, docs/decisions/0060 and 0041): one calibration per "
        "optimizer step over every pair of the step (all micro-batches, all ranks), from a no-grad scoring "
        "pass when gradient_accumulation_steps > 1, so β, M0, σ and the loss do not depend on the "
        "micro-batch size, a memory knob; micro_batch: one calibration per global micro-batch, as the "
        "authors' code. Without accumulation both are the same.",
    )
    seed: int = Field(0, ge=0, description="Seed of the filter sampling (the same on every rank).")

    def settings(self, beta0: float) -> CalibratorSettings:
        """The engine's CalibratorSettings for β0."""
        return CalibratorSettings(
            beta0=beta0,
            alpha=self.alpha,
            keep_ratio=self.keep_ratio,
            momentum=self.momentum,
            beta_min=self.beta_min,
            sigma_floor=self.sigma_floor,
            dynamic_beta=self.dynamic_beta,
            filtering=self.filtering,
            level=self.level,
            paper_units=self.discrepancy_units == "paper",
        )


class Logging(BaseModel):
    """Where the run goes. url/token default to ALIGNSCOPE_URL / ALIGNSCOPE_API_TOKEN; none: offline
    (spooled for ``alignscope sync``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(None, description="The AlignScope server, e.g. http://127.0.0.1:8000.")
    token: str | None = Field(None, description="The server's API token.")
    name: str | None = Field(None, max_length=200, description="Run name (default: TRL's run_name).")
    spool_dir: str | None = Field(None, description="Undelivered rows wait here (./.alignscope/spool).")
    pair_records: bool = Field(True, description="Record every pair of the logged steps, with its texts.")
    finish_timeout_s: float = Field(30.0, ge=0.0, description="End-of-training delivery wait.")
