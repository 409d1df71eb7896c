"""Our numbers of an experiment group, from the store, next to the paper's: the table, a plain verdict
per comparison, and the figure as plain series (``experiment_report`` turns them into the stored
summary, Markdown and figure files).

Win rates are pooled over seeds (wins, ties, losses summed; Wilson 95 % interval on the pool). A
method is compared with the first run of the spec (the baseline) by the difference of win rates and
Newcombe's interval for it. Verdict: "agrees" when the interval excludes 0 on the side the paper's
numbers point to, "disagrees" when it excludes 0 on the other side, "weaker than the paper" when it
holds 0 but not the paper's difference (in win-rate points, a different task and judge: a rough yardstick),
"too noisy to tell" otherwise.
The paper's direction is read from the matching paper column when the columns coincide (the
mixture ratios), else from the mean over the paper's columns (model sizes).

Each builder returns ``(lines, data, figure)``: the Markdown rows of our table, ``data`` = {"table",
"verdicts", "figure"} shaped like ``backend.storage.experiment_groups``'s Table, Verdict and Figure
(display units: win rates and differences in %), and the plotly figure drawn from ``data["figure"]``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from sqlalchemy import Engine

from backend.experiment_spec import ExperimentSpec
from backend.storage import metrics
from backend.storage.evaluations import list_evaluations
from contracts import metric_keys as mk
from worker.engine.evaluation.win_rates import difference_interval, wilson_interval
from worker.experiments.figure import plotly_figure

TOY_KEYS = (mk.TOY_PROB_CHOSEN, mk.TOY_PROB_REJECTED, mk.TOY_MASS_OUT_OF_PAIR, mk.TOY_MASS_UNSEEN)
TOY_COLUMNS = (  # (column, field of the toy row, format)
    ("p_w first", "first", "probability"),
    ("peak p_w", "peak", "probability"),
    ("peak step", "peak_step", "step"),
    ("p_w end", "end", "probability"),
    ("out-of-pair end", "out_of_pair", "probability"),
    ("unseen end", "unseen", "probability"),
)
Parts = tuple[list[str], dict[str, Any], go.Figure]


@dataclass
class RunResult:
    run_id: str
    label: str
    column: str
    seed: int
    status: str
    seconds: float | None

    def place(self) -> str:
        """ "β-DPO 10% seed 0": the run's row, column and seed in the summary."""
        return " ".join(part for part in (self.label, self.column, f"seed {self.seed}") if part)


@dataclass
class Cell:
    """Pooled counts of one (label, column, temperature) against the dataset's chosen response."""

    wins: int = 0
    ties: int = 0
    losses: int = 0

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    def triple(self) -> tuple[float, float, float]:
        score = self.wins + self.ties / 2
        low, high = wilson_interval(score, self.n)
        return (score / self.n if self.n else math.nan), low, high


def pct(triple: tuple[float, float, float]) -> str:
    value, low, high = triple
    return "–" if math.isnan(value) else f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def points(triple: tuple[float, float, float]) -> list[float | None]:
    """A (value, low, high) triple of fractions as percentages (None for NaN)."""
    return [finite(100 * x) for x in triple]


def verdict(difference: tuple[float, float, float], expected: float) -> str:
    """difference: (d, low, high) as fractions; expected: the paper's difference in points."""
    _, low, high = difference
    if math.isnan(low) or expected == 0:
        return "no paper direction"
    if (low > 0 and expected > 0) or (high < 0 and expected < 0):
        return "agrees"
    if low > 0 or high < 0:
        return "disagrees"
    if not low <= expected / 100 <= high:
        return "weaker than the paper: our interval holds 0 but not the paper's difference"
    return "too noisy to tell"


def category(text: str) -> str:
    """The verdict's kind: agrees, disagrees, weaker, noisy or none (no paper direction, not run)."""
    for prefix, kind in (("agrees", "agrees"), ("disagrees", "disagrees"), ("weaker", "weaker"),
                         ("too noisy", "noisy")):  # fmt: skip
        if text.startswith(prefix):
            return kind
    return "none"


def pooled_cells(engine: Engine, results: list[RunResult], opponent: str = "chosen") -> dict[tuple, Cell]:
    """(label, column, temperature) → pooled counts at each run's last evaluated step."""
    cells: dict[tuple, Cell] = defaultdict(Cell)
    with engine.connect() as conn:
        for result in results:
            records = [r for r in list_evaluations(conn, result.run_id) if r.opponent == opponent]
            if not records:
                continue
            last = max(r.step for r in records)
            for r in records:
                if r.step == last:
                    cell = cells[(result.label, result.column, r.temperature)]
                    cell.wins, cell.ties, cell.losses = (
                        cell.wins + r.wins,
                        cell.ties + r.ties,
                        cell.losses + r.losses,
                    )
    return cells


def _expected(paper: dict[str, Any], label: str, baseline: str, column: str) -> tuple[float, str]:
    """The paper's difference label − baseline in points, and which of its numbers it comes from."""
    rows, columns = paper.get("rows", {}), paper.get("columns", [])
    if label not in rows or baseline not in rows:
        return 0.0, ""
    diffs = [a - b for a, b in zip(rows[label], rows[baseline], strict=True)]
    if column in columns:
        return diffs[columns.index(column)], str(column)
    if len(diffs) == 1:
        return diffs[0], str(columns[0])
    return (sum(diffs) / len(diffs) if diffs else 0.0), f"mean over its {len(diffs)} columns"


def _verdicts(spec: ExperimentSpec, table: dict, heads: list[str], columns: list[tuple]) -> list[dict]:
    """Each non-baseline method against the baseline (the spec's first run) in every column."""
    baseline, verdicts = spec.runs[0].label, []
    for label in [run.label for run in spec.runs[1:]]:
        for head, (column, _) in zip(heads, columns, strict=True):
            diff = difference_interval(table[label][head], table[baseline][head])
            expected, basis = _expected(spec.paper, label, baseline, column)
            said = verdict(diff, expected)
            d, low, high = (f"{100 * x:+.1f}" for x in diff)
            text = (f"{label} − {baseline} at {head}: ours {d} points [{low}, {high}], "
                    f"paper {expected:+.2f} ({basis}) → {said}")  # fmt: skip
            verdicts.append(
                {"method": label, "column": head, "difference": points(diff), "paper_direction": expected,
                 "paper_basis": basis, "verdict": said, "category": category(said), "text": text}
            )  # fmt: skip
    return verdicts


def win_rate_summary(spec: ExperimentSpec, results: list[RunResult], engine: Engine) -> Parts:
    """Pooled win rates vs chosen per method and (sweep column, temperature), and their intervals."""
    cells = pooled_cells(engine, results)
    order = [r.column for r in results]
    columns = sorted({(c, t) for (_, c, t) in cells}, key=lambda ct: (order.index(ct[0]), ct[1]))
    heads = [f"{c + ' ' if c else ''}T={t:g}" for c, t in columns]
    table = {
        run.label: {h: cells[(run.label, c, t)].triple() for h, (c, t) in zip(heads, columns, strict=True)}
        for run in spec.runs
    }
    lines = ["| method | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    lines += [f"| {label} | " + " | ".join(pct(row[h]) for h in heads) + " |" for label, row in table.items()]
    n = max((cell.n for cell in cells.values()), default=0)
    note = (f"Win rate (%) against the dataset's chosen response, ties counted half, [95 % Wilson], "
            f"n = {n} judgments per cell pooled over seeds.")  # fmt: skip
    lines.append("\n" + note)
    rows = [{"label": label, "cells": [_estimate(row[h]) for h in heads]} for label, row in table.items()]
    series = []
    for label, row in table.items():
        value, low, high = zip(*(points(row[h]) for h in heads), strict=True) if heads else ((), (), ())
        series.append({"name": label, "x": heads, "y": list(value), "low": list(low), "high": list(high)})
    figure = {"kind": "intervals", "title": spec.title,
              "panels": [{"y_title": "win rate vs chosen (%)", "series": series}]}  # fmt: skip
    data = {
        "table": {"columns": [{"name": h, "format": "percent"} for h in heads], "rows": rows, "note": note},
        "verdicts": _verdicts(spec, table, heads, columns),
        "figure": figure,
    }
    return lines, data, plotly_figure(figure)


def _estimate(triple: tuple[float, float, float]) -> dict[str, float | None] | None:
    value, low, high = points(triple)
    return None if value is None else {"value": value, "low": low, "high": high}


def _toy_row(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    chosen = series[mk.TOY_PROB_CHOSEN]
    peak_step, peak = max(chosen, key=lambda sv: sv[1])
    return {
        "first": chosen[0][1], "peak": peak, "peak_step": peak_step, "end": chosen[-1][1],
        "out_of_pair": series[mk.TOY_MASS_OUT_OF_PAIR][-1][1], "unseen": series[mk.TOY_MASS_UNSEEN][-1][1],
    }  # fmt: skip


def toy_summary(spec: ExperimentSpec, results: list[RunResult], engine: Engine) -> Parts:
    """p_w at start/peak/end and the masses at the end per run (first seed), the claims checked, and
    one line panel per toy metric."""
    lines = [
        "| run | p_w first | peak p_w (step) | p_w end | out-of-pair end | unseen end |",
        "|---" * 6 + "|",
    ]
    rows: dict[str, dict[str, float]] = {}
    panels: list[dict[str, Any]] = [{"title": key, "series": []} for key in TOY_KEYS]
    with engine.connect() as conn:
        for result in (r for r in results if r.seed == results[0].seed):
            series = {key: metrics.series(conn, result.run_id, key, max_points=100_000) for key in TOY_KEYS}
            if not all(series.values()):
                continue
            row = rows[result.label] = _toy_row(series)
            lines.append(
                f"| {result.label} | {row['first']:.3f} | {row['peak']:.3f} ({row['peak_step']}) | "
                f"{row['end']:.3f} | {row['out_of_pair']:.3f} | {row['unseen']:.3f} |"
            )
            for panel, key in zip(panels, TOY_KEYS, strict=True):
                steps, values = zip(*series[key], strict=True)
                y = [finite(v) for v in values]
                panel["series"].append({"name": result.label, "x": list(steps), "y": y})
    verdicts = []
    for claim in spec.paper.get("claims", []):
        said = _toy_claim(claim, rows)
        verdicts.append({"claim": claim["claim"], "verdict": said, "category": category(said),
                         "text": f"{claim['claim']}: {said}"})  # fmt: skip
    table = {
        "columns": [{"name": name, "format": form} for name, _, form in TOY_COLUMNS],
        "rows": [
            {"label": label, "cells": [{"value": finite(row[field])} for _, field, _ in TOY_COLUMNS]}
            for label, row in rows.items()
        ],
        "note": "p_w = mean π(chosen | prompt); out-of-pair = 1 − π(y_w) − Σ π(rejected); first seed.",
    }
    figure = {"kind": "lines", "title": spec.title, "x_title": "step", "panels": panels}
    return lines, {"table": table, "verdicts": verdicts, "figure": figure}, plotly_figure(figure)


def _toy_claim(claim: dict[str, Any], rows: dict[str, dict[str, float]]) -> str:
    """A claim {kind: higher|peak_then_fall|grows, a, b?, field}: checked on our numbers."""
    a, b, field = rows.get(claim["a"]), rows.get(claim.get("b", "")), claim.get("field", "end")
    if a is None:
        return "not run"
    if claim["kind"] == "higher":
        return "not run" if b is None else ("agrees" if a[field] > b[field] else "disagrees")
    if claim["kind"] == "peak_then_fall":
        return "agrees" if a["peak"] - a["end"] > 0.05 else "disagrees"
    return "agrees" if a[field] > 0.05 else "disagrees"
