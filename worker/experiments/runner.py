"""An experiment preset run as a group: its stages, then its runs one after another in this
process (each an ordinary run row of the group), then the summary next to the paper's, stored in the
group's row and written to ``<data dir>/experiments/<group>/``.

The group's row (``backend.storage.experiment_groups``) is written at the start (or the queued row
the API created is taken), follows the stages and runs in its message, and gets the summary and the
outcome at the end, so the dashboard shows it wherever it runs. While it runs, a thread renews the
group's heartbeat (``updated_at``) every HEARTBEAT_S; the reconciler fails a running group whose
heartbeat is stale. ``summarize`` recomputes the summary of an existing group from the store.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from backend.config_files import ConfigError, validate
from backend.experiment_spec import (
    ExperimentSpec,
    group_name,
    load_experiment,
    planned_runs,
    run_count,
    substitute,
)
from backend.settings import get_settings
from backend.storage import experiment_groups, runs
from backend.storage.db import init_db
from contracts.config import RunConfig
from worker.experiments.report import build_summary, write_files
from worker.experiments.stages import run_stages
from worker.experiments.summary import RunResult
from worker.jobs.in_process import run_in_process

HEARTBEAT_S = 2.0


def run_experiment(name: str, quick: bool, seeds: list[int] | None, group: str | None = None) -> int:
    """Run the experiment preset ``name`` as a new group, or as the API's queued ``group``; returns
    the exit status (0: every run succeeded; 2: the preset or group is invalid)."""
    try:
        spec = load_experiment(name)
        count = run_count(spec, quick, seeds)
    except ConfigError as exc:
        print(f"invalid experiment:\n{exc}", file=sys.stderr)
        return 2
    engine = init_db(get_settings().database_url)
    opened = _open_group(engine, spec, quick, seeds, group, count)
    if opened is None:
        return 2
    beating = threading.Event()
    threading.Thread(
        target=_heartbeat, args=(engine, opened, beating), name="group-heartbeat", daemon=True
    ).start()
    try:
        return run_group(engine, spec, opened, quick, seeds)
    except BaseException as exc:  # Ctrl-C twice, a crash: the group row must not stay running
        with engine.begin() as conn:
            experiment_groups.finish_group(conn, opened, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        beating.set()


def _heartbeat(engine: Engine, group: str, stop: threading.Event) -> None:
    """Renew the group's heartbeat every HEARTBEAT_S until ``stop``; a database outage is reported
    and retried on the next beat."""
    while not stop.wait(HEARTBEAT_S):
        try:
            with engine.begin() as conn:
                experiment_groups.touch_group(conn, group)
        except (OperationalError, InterfaceError) as exc:
            print(f"group {group}: heartbeat failed, database unavailable ({exc})", file=sys.stderr)


def _open_group(
    engine: Engine, spec: ExperimentSpec, quick: bool, seeds: list[int] | None, group: str | None, count: int
) -> str | None:
    """The group's id: the API's queued row named by ``group``, or a new running row."""
    with engine.begin() as conn:
        if group is None:
            return experiment_groups.new_group(
                conn, group_name(spec, quick), spec.name, spec.title, quick, seeds, count, status="running"
            )
        if experiment_groups.start_group(conn, group, count, "starting"):
            return group
    print(f"group {group} does not exist or has already finished", file=sys.stderr)
    return None


def run_group(engine: Engine, spec: ExperimentSpec, group: str, quick: bool, seeds: list[int] | None) -> int:
    """Stages, runs and summary of ``group``; the exit status (0 when every run succeeded)."""
    data_dir = Path(get_settings().data_dir)
    folder = data_dir / "experiments" / group
    folder.mkdir(parents=True, exist_ok=True)
    print(f"experiment {spec.name} → group {group} ({get_settings().database_url})", file=sys.stderr)
    try:
        plan = planned_runs(spec, quick, seeds)
        for label, column, seed, data in plan:  # fail fast, before the stages
            _config(spec, group, label, column, seed, data)
        places = run_stages(spec, quick, engine, group, folder, data_dir, lambda m: _say(engine, group, m))
        configs = [
            (label, column, seed, _config(spec, group, label, column, seed, substitute(data, places)))
            for label, column, seed, data in plan
        ]
    except (ConfigError, ValueError) as exc:
        print(f"experiment {spec.name} cannot start:\n{exc}", file=sys.stderr)
        with engine.begin() as conn:
            experiment_groups.finish_group(conn, group, "failed", f"cannot start: {exc}")
        return 2
    results = []
    for index, (label, column, seed, config) in enumerate(configs, start=1):
        _say(engine, group, f"run {index} of {len(configs)}: {config.name}")
        results.append(_launch(engine, label, column, seed, config))
        if results[-1].status == "stopped":  # Ctrl-C: the run checkpointed; summarize what ran
            print("experiment stopped; the summary covers the runs so far", file=sys.stderr)
            break
    _say(engine, group, "summarizing")
    print(store_summary(engine, spec, group, results, quick, folder))
    failed = [f"{r.place()}: {r.status}" for r in results if r.status != "succeeded"]
    missing = len(configs) - len(results)
    error = "; ".join(failed + ([f"{missing} runs not started"] if missing else [])) or None
    with engine.begin() as conn:
        experiment_groups.finish_group(conn, group, "failed" if error else "succeeded", error)
    return 1 if error else 0


def _say(engine: Engine, group: str, message: str) -> None:
    with engine.begin() as conn:
        experiment_groups.set_message(conn, group, message)


def store_summary(
    engine: Engine, spec: ExperimentSpec, group: str, results: list[RunResult], quick: bool, folder: Path
) -> str:
    """Builds the summary, stores it in the group's row, writes the files; returns the Markdown."""
    summary, ours, figure = build_summary(spec, group, results, engine, quick)
    with engine.begin() as conn:
        experiment_groups.store_summary(conn, group, summary)
    return write_files(summary, ours, figure, folder)


def run_name(spec: ExperimentSpec, label: str, column: str, seed: int) -> str:
    return "/".join(part for part in (spec.name, label, column, f"seed{seed}") if part)


def _config(
    spec: ExperimentSpec, group: str, label: str, column: str, seed: int, data: dict[str, Any]
) -> RunConfig:
    name = run_name(spec, label, column, seed)
    try:
        return validate({**data, "name": name, "group": group, "preset": f"experiment:{spec.name}"})
    except ConfigError as exc:
        raise ConfigError(f"run '{name}':\n{exc}") from exc


def _launch(engine: Engine, label: str, column: str, seed: int, config: RunConfig) -> RunResult:
    started = time.perf_counter()
    run_id, summary = run_in_process(engine, config)
    seconds = time.perf_counter() - started
    print(
        f"    {summary.status} after {summary.steps} steps in {seconds:.0f} s (run {run_id})", file=sys.stderr
    )
    if summary.error:
        print(summary.error, file=sys.stderr)
    return RunResult(run_id, label, column, seed, summary.status, seconds)


def summarize(group: str, name: str | None) -> int:
    """``--summarize GROUP``: the summary of the group's stored runs, stored and written again."""
    engine = init_db(get_settings().database_url)
    with engine.begin() as conn:
        row = experiment_groups.get_group(conn, group)
        stored = runs.list_runs(conn, group=group, limit=100_000)
    if row is None and not stored:
        print(f"no group {group!r} in {get_settings().database_url}", file=sys.stderr)
        return 2
    name = name or (row.experiment if row else _preset_of(stored))
    try:
        spec = load_experiment(name or "")
    except ConfigError as exc:
        print(f"cannot tell the group's experiment (name it: experiment NAME --summarize GROUP):\n{exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    quick = row.quick if row else "-quick-" in group
    seeds = row.seeds if row else sorted({json.loads(r.config).get("seed", 0) for r in stored})
    newest = {}
    for r in reversed(stored):  # newest first in ``stored``: a resumed run replaces its parent
        newest[r.name] = r
    results = []
    for label, column, seed, _ in planned_runs(spec, quick, seeds):
        found = newest.get(run_name(spec, label, column, seed))
        if found is not None:
            seconds = found.finished_at - found.started_at if found.finished_at and found.started_at else None
            results.append(RunResult(found.id, label, column, seed, found.status, seconds))
    if row is None:
        with engine.begin() as conn:
            count = run_count(spec, quick, seeds)
            experiment_groups.create_group(conn, group, spec.name, spec.title, quick, seeds, count, "running")
    folder = Path(get_settings().data_dir) / "experiments" / group
    print(store_summary(engine, spec, group, results, quick, folder))
    _settle(engine, group, [r.status for r in stored], len(results) == len(planned_runs(spec, quick, seeds)))
    return 0


def _preset_of(stored: list[runs.RunRow]) -> str | None:
    presets = {r.preset for r in stored if r.preset and r.preset.startswith("experiment:")}
    return presets.pop().removeprefix("experiment:") if len(presets) == 1 else None


def _settle(engine: Engine, group: str, statuses: list[str], complete: bool) -> None:
    """The group's outcome from its runs: still running while one is queued or running; succeeded
    when every planned run exists and every run succeeded; failed otherwise."""
    if any(s in ("queued", "running") for s in statuses):
        return
    ok = complete and all(s == "succeeded" for s in statuses)
    error = None if ok else "not every planned run succeeded (summarized from the store)"
    with engine.begin() as conn:
        experiment_groups.finish_group(conn, group, "succeeded" if ok else "failed", error, only_active=False)
