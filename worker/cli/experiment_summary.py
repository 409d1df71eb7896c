"""The summary of an experiment group: our numbers (from the store) next to the paper's, a plain
verdict per comparison, and one figure. Written as ``summary.md``, ``summary.json`` and
``figure.html`` (plus ``figure.png`` when plotly can export images) in the experiment's folder.

Win rates are pooled over seeds (wins, ties, losses summed; Wilson 95 % interval on the pool). A
method is compared with the first run of the spec (the baseline) by the difference of win rates and
Newcombe's interval for it. Verdict: "agrees" when the interval excludes 0 on the side the paper's
numbers point to, "disagrees" when it excludes 0 on the other side, "weaker than the paper" when it
holds 0 but not the paper's difference (in win-rate points, a different task and judge: a rough yardstick),
"too noisy to tell" otherwise.
The paper's direction is read from the matching paper column when the columns coincide (the
mixture ratios), else from the mean over the paper's columns (model sizes).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sqlalchemy import Engine

from backend.storage import metrics
from backend.storage.evaluations import list_evaluations
from contracts import metric_keys as mk
from worker.cli.experiment_spec import ExperimentSpec
from worker.engine.evaluation import difference_interval, wilson_interval

TOY_KEYS = (mk.TOY_PROB_CHOSEN, mk.TOY_PROB_REJECTED, mk.TOY_MASS_OUT_OF_PAIR, mk.TOY_MASS_UNSEEN)


@dataclass
class RunResult:
    run_id: str
    label: str
    column: str
    seed: int
    status: str
    seconds: float


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


def _expected(paper: dict[str, Any], label: str, baseline: str, column: str) -> float:
    rows, columns = paper.get("rows", {}), paper.get("columns", [])
    if label not in rows or baseline not in rows:
        return 0.0
    diffs = [a - b for a, b in zip(rows[label], rows[baseline], strict=True)]
    if column in columns:
        return diffs[columns.index(column)]
    return sum(diffs) / len(diffs) if diffs else 0.0


def _verdicts(spec: ExperimentSpec, table: dict, heads: list[str], columns: list[tuple]) -> list[dict]:
    """Each non-baseline method against the baseline (the spec's first run) in every column."""
    baseline, verdicts = spec.runs[0].label, []
    for label in [run.label for run in spec.runs[1:]]:
        for head, (column, _) in zip(heads, columns, strict=True):
            diff = difference_interval(table[label][head], table[baseline][head])
            expected = _expected(spec.paper, label, baseline, column)
            verdicts.append(
                {"method": label, "column": head, "difference": diff, "paper_direction": expected,
                 "verdict": verdict(diff, expected)}
            )  # fmt: skip
    return verdicts


def _bars(title: str, table: dict, heads: list[str]) -> go.Figure:
    figure = go.Figure()
    for label, row in table.items():
        values = [row[head] for head in heads]
        above = [100 * (v[2] - v[0]) for v in values]
        below = [100 * (v[0] - v[1]) for v in values]
        error = {"type": "data", "symmetric": False, "array": above, "arrayminus": below}
        figure.add_bar(name=label, x=heads, y=[100 * v[0] for v in values], error_y=error)
    figure.update_layout(title=title, yaxis_title="win rate vs chosen (%)", barmode="group")
    return figure


def win_rate_summary(
    spec: ExperimentSpec, results: list[RunResult], engine: Engine
) -> tuple[list[str], dict, go.Figure]:
    """Markdown table rows, the JSON data and a bar figure of pooled win rates vs chosen."""
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
    lines.append(
        "\nWin rate (%) against the dataset's chosen response, ties counted half, [95 % Wilson], "
        f"n = {n} judgments per cell pooled over seeds."
    )
    data = {
        "table": {k: {h: list(v) for h, v in row.items()} for k, row in table.items()},
        "verdicts": _verdicts(spec, table, heads, columns),
    }
    return lines, data, _bars(spec.title, table, heads)


def _toy_row(series: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    chosen = series[mk.TOY_PROB_CHOSEN]
    peak_step, peak = max(chosen, key=lambda sv: sv[1])
    return {
        "first": chosen[0][1], "peak": peak, "peak_step": peak_step, "end": chosen[-1][1],
        "out_of_pair": series[mk.TOY_MASS_OUT_OF_PAIR][-1][1], "unseen": series[mk.TOY_MASS_UNSEEN][-1][1],
    }  # fmt: skip


def toy_summary(
    spec: ExperimentSpec, results: list[RunResult], engine: Engine
) -> tuple[list[str], dict, go.Figure]:
    """p_w at start/peak/end and the masses at the end per run (first seed), the claims checked, and
    one figure with a panel per toy metric."""
    figure = make_subplots(rows=2, cols=2, subplot_titles=TOY_KEYS)
    lines = [
        "| run | p_w first | peak p_w (step) | p_w end | out-of-pair end | unseen end |",
        "|---" * 6 + "|",
    ]
    rows: dict[str, dict[str, float]] = {}
    with engine.connect() as conn:
        for index, result in enumerate(r for r in results if r.seed == results[0].seed):
            series = {key: metrics.series(conn, result.run_id, key, max_points=100_000) for key in TOY_KEYS}
            if not all(series.values()):
                continue
            row = rows[result.label] = _toy_row(series)
            lines.append(
                f"| {result.label} | {row['first']:.3f} | {row['peak']:.3f} ({row['peak_step']}) | "
                f"{row['end']:.3f} | {row['out_of_pair']:.3f} | {row['unseen']:.3f} |"
            )
            color = {"color": f"hsl({index * 55 % 360}, 65%, 45%)"}
            for k, key in enumerate(TOY_KEYS):
                steps, values = zip(*series[key], strict=True)
                figure.add_scatter(
                    x=steps, y=values, name=result.label, legendgroup=result.label, showlegend=k == 0,
                    line=color, row=k // 2 + 1, col=k % 2 + 1,
                )  # fmt: skip
    figure.update_layout(title=spec.title, height=700)
    verdicts = [{"claim": c["claim"], "verdict": _toy_claim(c, rows)} for c in spec.paper.get("claims", [])]
    return lines, {"table": rows, "verdicts": verdicts}, figure


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


def paper_lines(paper: dict[str, Any]) -> list[str]:
    if not paper.get("rows"):
        return [f"- {c['claim']}" for c in paper.get("claims", [])]
    cols = paper["columns"]
    lines = ["| method | " + " | ".join(map(str, cols)) + " |", "|---|" + "---|" * len(cols)]
    lines += [
        f"| {label} | " + " | ".join(f"{v:g}" for v in values) + " |"
        for label, values in paper["rows"].items()
    ]
    return lines


def _verdict_line(item: dict[str, Any], baseline: str) -> str:
    if "claim" in item:
        return f"- {item['claim']}: **{item['verdict']}**"
    d, low, high = (100 * x for x in item["difference"])
    return (
        f"- {item['method']} − {baseline} at {item['column']}: {d:+.1f} points [{low:+.1f}, {high:+.1f}]; "
        f"paper {item['paper_direction']:+.2f} → **{item['verdict']}**"
    )


def write_summary(
    spec: ExperimentSpec, group: str, results: list[RunResult], engine: Engine, folder: Path, quick: bool
) -> str:
    """Builds, writes and returns the Markdown summary of the group."""
    build = toy_summary if spec.summary == "toy" else win_rate_summary
    ours, data, figure = build(spec, results, engine)
    minutes = sum(r.seconds for r in results) / 60
    header = f"group `{group}`{' (--quick)' if quick else ''}; {len(results)} runs, {minutes:.1f} min"
    lines = [f"# {spec.title}", "", header, "", spec.description.strip(), "", "## Ours", "", *ours, ""]
    lines += [f"## Paper — {spec.paper.get('citation', 'no paper numbers')}", "", *paper_lines(spec.paper)]
    lines += ["", "## Verdicts", "", *(_verdict_line(v, spec.runs[0].label) for v in data["verdicts"])]
    failed = [f"{r.label} seed {r.seed} ({r.status})" for r in results if r.status != "succeeded"]
    if failed:
        lines += ["", f"Runs not succeeded: {', '.join(failed)}"]
    text = "\n".join(lines)
    (folder / "summary.md").write_text(text)
    runs = [asdict(r) for r in results]
    payload = {"group": group, "title": spec.title, "quick": quick, "runs": runs, "paper": spec.paper, **data}
    (folder / "summary.json").write_text(json.dumps(payload, indent=1, default=str))
    figure.write_html(str(folder / "figure.html"), include_plotlyjs=True)
    if not write_png(figure, folder / "figure.html", folder / "figure.png"):
        text += "\n\n(figure.png not written: neither kaleido nor chromium is available; figure.html is)"
    return text + f"\n\nwritten to {folder}"


def write_png(figure: go.Figure, html: Path, png: Path) -> bool:
    """figure.png through plotly's image export (kaleido) or, failing that, a headless-Chromium
    screenshot of the HTML; False when neither works."""
    try:
        figure.write_image(str(png), width=1100, height=750)
        return True
    except Exception:  # plotly raises several kinds when kaleido or its browser is missing
        pass
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        return False
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,750"]
    command = [browser, *flags, "--virtual-time-budget=5000", f"--screenshot={png}", html.as_uri()]
    try:
        subprocess.run(command, capture_output=True, timeout=90, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return png.is_file()
