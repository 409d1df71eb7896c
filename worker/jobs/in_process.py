"""Runs trained in this process (``alignscope train``, ``train-rm`` and the runs of an experiment
group): the one place that creates a run row, claims its attempt 1 and executes it here, so the run
is recorded exactly like one a worker trains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from backend.storage import runs
from contracts.config import RunConfig

if TYPE_CHECKING:  # both import torch
    from worker.engine.evaluation.reward_model import RewardModelSummary
    from worker.engine.loop import RunSummary

Job = Callable[[Engine, str], "RunSummary | RewardModelSummary"]


def run_in_process(
    engine: Engine,
    config: RunConfig,
    job: Job | None = None,
    name: str | None = None,
    preset: str | None = None,
    console: bool = True,
    announce: Callable[[str], None] | None = None,
) -> tuple[str, RunSummary | RewardModelSummary]:
    """Record ``config`` as a new run (``name`` and ``preset`` default to the config's), claim its
    attempt 1 and run ``job(engine, run_id)`` here (default: the trainer's ``execute``, with a
    progress bar when ``console``); ``announce(run_id)`` is called once the run is recorded. Returns
    the run id and the job's summary."""
    with engine.begin() as conn:
        run_id = runs.create_run(
            conn, config.model_dump_json(), name or config.name, preset or config.preset, config.group
        )
        runs.claim_run(conn, run_id, 1)
    if announce is not None:
        announce(run_id)
    if job is None:
        from worker.jobs.trainer import execute

        return run_id, execute(engine, run_id, 1, console=console)
    return run_id, job(engine, run_id)


def reward_model_job(
    config: RunConfig, out: Callable[[str], Path], console: bool = False, name: str | None = None
) -> Job:
    """The job that trains the Bradley–Terry reward model of ``config`` into ``out(run_id)``,
    recording its metrics under the run and its outcome (failed, with the error raised again, when
    the data or the model is bad)."""

    def job(engine: Engine, run_id: str) -> RewardModelSummary:
        from worker.engine.evaluation.reward_model import train_reward_model
        from worker.engine.sinks import ConsoleSink, TeeSink
        from worker.jobs.db_sink import DbSink

        db_sink = DbSink(engine, run_id, 1, total_steps=config.optim.max_steps)
        bar = ConsoleSink(config.optim.max_steps, name or config.name) if console else None
        status, error = "failed", None
        try:
            sink = TeeSink(db_sink, bar) if bar else db_sink
            summary = train_reward_model(config, sink, out(run_id), db_sink.stop_requested)
            status = summary.status
            return summary
        except Exception as exc:  # recorded on the run, then raised to the caller
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if bar:
                bar.close()
            db_sink.close()
            with engine.begin() as conn:
                runs.finish_run(conn, run_id, 1, status, error)

    return job
