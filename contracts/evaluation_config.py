"""The evaluation part of RunConfig: the judge (reward model, rule or OpenAI-compatible, with prices),
when and how win rates are sampled, and the probe sets (docs/SCIENCE.md §C.5)."""

from __future__ import annotations

import re
import sys
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from contracts.frozen import MAX_STEPS_CAP, Frozen

ENTRY_POINT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
MAX_PRICE_PER_MILLION = 10_000.0


class JudgeConfig(Frozen):
    """Who decides which of two responses is better.

    ``reward_model``: a local sequence-classification model directory (``path``; safetensors only),
    higher score wins; ``rule``: the constructed tasks' ground-truth rule (a response that is exactly
    right beats one that is not), or, with ``entry_point`` ("package.module:function", a module
    importable in the worker's environment, never a file path), the user's own scoring function
    (worker.engine.evaluation.custom_judge; the operator lists the allowed ones); ``openai``: an
    OpenAI-compatible chat-completions endpoint that the operator configured under the name
    ``endpoint`` (its URL and key stay in the deployment's settings, never in a config; see
    contracts.deployment) asked for ``model``, in both orders to cancel position bias, its cost
    counted at ``usd_per_million_input_tokens`` and
    ``usd_per_million_output_tokens`` (0 = unknown or free).
    """

    kind: Literal["reward_model", "rule", "openai"] = "rule"
    path: str | None = Field(None, max_length=4096)
    entry_point: str | None = Field(None, max_length=190)
    endpoint: str | None = Field(
        None, max_length=64, description="name of a judge endpoint the operator configured (kind openai)"
    )
    model: str | None = Field(None, max_length=200, description="the judge model to ask (kind openai)")
    requests_per_minute: int = Field(60, ge=1, le=100_000)
    max_retries: int = Field(3, ge=0, le=20)
    usd_per_million_input_tokens: float = Field(0.0, ge=0.0, le=MAX_PRICE_PER_MILLION)
    usd_per_million_output_tokens: float = Field(0.0, ge=0.0, le=MAX_PRICE_PER_MILLION)

    @model_validator(mode="before")
    @classmethod
    def _no_connection_fields(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("base_url", "api_key_env"):
                if key in data:
                    raise ValueError(
                        f"evaluation.judge.{key} is set by the operator, not in a run config: remove it "
                        "and name a configured endpoint in evaluation.judge.endpoint"
                    )
        return data

    @field_validator("entry_point")
    @classmethod
    def _entry_point_form(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "/" in value or "\\" in value or value.endswith(".py"):
            raise ValueError(
                f"'{value}' looks like a file path; file paths are not accepted: make the file part of a "
                "package importable in the worker's environment (installed, or on its PYTHONPATH) and "
                "write 'package.module:function'"
            )
        if not ENTRY_POINT.fullmatch(value):
            raise ValueError(
                f"'{value}' is not of the form 'package.module:function' (dotted module name, a colon, "
                "then the function's name)"
            )
        top = value.split(".", 1)[0].split(":", 1)[0]
        if top in sys.stdlib_module_names or top == "builtins":
            raise ValueError(
                f"'{top}' is a standard-library module; name a rule-judge function in your own package"
            )
        return value

    @model_validator(mode="after")
    def _fields(self) -> JudgeConfig:
        if self.kind == "reward_model" and not self.path:
            raise ValueError("evaluation.judge.path is required for a reward_model judge")
        if self.kind == "openai" and not (self.endpoint and self.model):
            raise ValueError("evaluation.judge.endpoint and evaluation.judge.model are required for openai")
        if self.endpoint and self.kind != "openai":
            raise ValueError("evaluation.judge.endpoint applies only to kind 'openai'")
        if self.entry_point and self.kind != "rule":
            raise ValueError(
                "evaluation.judge.entry_point applies only to kind 'rule'; remove it or set kind: rule"
            )
        priced = self.usd_per_million_input_tokens or self.usd_per_million_output_tokens
        if priced and self.kind != "openai":
            raise ValueError(
                "evaluation.judge.usd_per_million_input_tokens/_output_tokens apply only to kind "
                "'openai'; set them to 0 or use an openai judge"
            )
        return self


class EvaluationConfig(Frozen):
    """Win rates: sample from the policy (and the reference) on held-out prompts at each temperature,
    judge against the dataset's chosen response and/or the reference's sample. every: steps between
    evaluations (0 = only at the end when ``at_end``); intervals are 95 % Wilson."""

    every: int = Field(0, ge=0, le=MAX_STEPS_CAP)
    at_end: bool = False
    temperatures: tuple[Annotated[float, Field(ge=0.0, le=2.0)], ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    max_new_tokens: int = Field(32, ge=1, le=1024)
    num_prompts: int = Field(16, ge=1, le=10_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    opponents: tuple[Literal["chosen", "reference"], ...] = ("chosen",)
    judge: JudgeConfig = JudgeConfig()


class ProbeConfig(Frozen):
    """Probe sets for dispersion (docs/SCIENCE.md §C.5 D3): held-out prompts with chosen, rejected,
    unseen (reference samples drawn at step 0, fixed) and mismatched (another prompt's chosen)
    responses; per-token log-ratios per group every ``every`` steps (0 = off)."""

    every: int = Field(0, ge=0, le=MAX_STEPS_CAP)
    num_prompts: int = Field(8, ge=1, le=1000)
    unseen_samples: int = Field(2, ge=1, le=16)
    max_new_tokens: int = Field(24, ge=1, le=512)
