"""Presets, the RunConfig JSON schema (it drives the launch form), what runs may reach here and the
health check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.api.deps import Ctx
from backend.api.models import AllowancesOut, EndpointOut, HealthOut, PresetOut
from backend.config_files import ConfigError, list_presets, load_preset, validate
from contracts.config import RunConfig

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/presets")
def presets() -> list[PresetOut]:
    """The shipped presets that validate, as full RunConfig JSON."""
    found = []
    for name in list_presets():
        try:
            found.append(PresetOut(name=name, config=validate(load_preset(name)).model_dump(mode="json")))
        except ConfigError:
            continue
    return found


@router.get("/schema")
def schema() -> dict[str, Any]:
    return RunConfig.model_json_schema()


@router.get("/allowances")
def allowances(ctx: Ctx) -> AllowancesOut:
    """Judge endpoints (names and models only), rule judges, hub datasets, folders and caps that a run
    submitted here is checked against (the launch form offers them)."""
    allowed = ctx.allowed
    endpoints = [
        EndpointOut(name=n, models=list(e.models)) for n, e in sorted(allowed.judge_endpoints.items())
    ]
    return AllowancesOut(
        judge_endpoints=endpoints,
        rule_judges=list(allowed.rule_judges),
        hub_datasets=list(allowed.hub_datasets),
        model_roots=[str(root) for root in allowed.model_roots],
        dataset_roots=[str(root) for root in allowed.dataset_roots],
        max_processes=allowed.max_processes,
        max_model_params=allowed.max_model_params,
    )


@router.get("/health", responses={503: {"model": HealthOut}})
def health(ctx: Ctx, response: Response) -> HealthOut:
    """``database`` is "ok" or the error; ``broker`` is the configured broker (password hidden)."""
    try:
        with ctx.reads.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError as exc:
        database = f"error: {type(exc).__name__}"
        response.status_code = 503
    return HealthOut(
        status="ok" if database == "ok" else "error",
        database=database,
        broker=ctx.enqueuer.describe(),
        auth=ctx.settings.api_token is not None,
    )
