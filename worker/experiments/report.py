"""The summary of an experiment group as one document (``experiment_groups.GroupSummary``: stored in
the group's row, drawn by the dashboard) and as files in ``<data dir>/experiments/<group>/``:
``summary.md``, ``summary.json`` (the document), ``figure.html`` and ``figure.png``."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from sqlalchemy import Engine

from backend.experiment_spec import ExperimentSpec
from backend.storage.experiment_groups import GroupRun, GroupSummary, Verdict
from worker.experiments.figure import write_figure
from worker.experiments.summary import RunResult, toy_summary, win_rate_summary

SAID = {  # verdict category → (said of one, said of several)
    "agrees": ("agrees", "agree"),
    "disagrees": ("disagrees", "disagree"),
    "weaker": ("is weaker than the paper", "are weaker than the paper"),
    "noisy": ("is too noisy to tell", "are too noisy to tell"),
    "none": ("has no paper direction or was not run", "have no paper direction or were not run"),
}


def build_summary(
    spec: ExperimentSpec, group: str, results: list[RunResult], engine: Engine, quick: bool
) -> tuple[GroupSummary, list[str], go.Figure]:
    """The document, the Markdown rows of our table, and the plotly figure."""
    build = toy_summary if spec.summary == "toy" else win_rate_summary
    lines, data, figure = build(spec, results, engine)
    summary = GroupSummary(
        group=group, experiment=spec.name, title=spec.title, description=spec.description.strip(),
        kind=spec.summary, quick=quick, baseline=spec.runs[0].label,
        runs=[GroupRun(**asdict(r)) for r in results],
        table=data["table"], paper=_paper(spec.paper), verdicts=data["verdicts"],
        headline=headline(data["verdicts"], "claims" if spec.summary == "toy" else "comparisons"),
        figure=data["figure"],
        not_succeeded=[f"{r.place()} ({r.status})" for r in results if r.status != "succeeded"],
        created_at=time.time(),
    )  # fmt: skip
    return summary, lines, figure


def _paper(paper: dict[str, Any]) -> dict[str, Any]:
    return {
        "citation": paper.get("citation", ""),
        "columns": [str(c) for c in paper.get("columns", [])],
        "rows": [{"label": label, "values": values} for label, values in paper.get("rows", {}).items()],
        "claims": [c["claim"] for c in paper.get("claims", [])],
    }


def headline(verdicts: list[dict[str, Any]], what: str) -> str:
    """The verdicts counted in words: "Of 6 comparisons with the paper: 1 agrees, 5 are weaker…"."""
    if not verdicts:
        return "Nothing to compare with the paper yet."
    counts: dict[str, int] = {}
    for item in verdicts:
        counts[item["category"]] = counts.get(item["category"], 0) + 1
    parts = [f"{n} {SAID[kind][0 if n == 1 else 1]}" for kind, n in counts.items()]
    noun = ("claim" if what == "claims" else "comparison") + ("s" if len(verdicts) > 1 else "")
    subject = f"{noun} of the paper" if what == "claims" else f"{noun} with the paper"
    return f"Of {len(verdicts)} {subject}: {', '.join(parts)}."


def markdown(summary: GroupSummary, ours: list[str]) -> str:
    """The summary as Markdown (``ours``: the builder's rows of our table)."""
    minutes = sum(r.seconds or 0.0 for r in summary.runs) / 60
    quick = " (--quick)" if summary.quick else ""
    lines = [f"# {summary.title}", "", f"group `{summary.group}`{quick}; {len(summary.runs)} runs, "
             f"{minutes:.1f} min", "", summary.description, "", "## Ours", "", *ours, ""]  # fmt: skip
    lines += [f"## Paper — {summary.paper.citation or 'no paper numbers'}", "", *_paper_lines(summary)]
    lines += ["", "## Verdicts", "", summary.headline, "", *(_verdict_line(v) for v in summary.verdicts)]
    if summary.not_succeeded:
        lines += ["", f"Runs not succeeded: {', '.join(summary.not_succeeded)}"]
    return "\n".join(lines)


def _verdict_line(item: Verdict) -> str:
    """``text`` with the verdict in bold (``text`` ends with it)."""
    head = item.text.removesuffix(item.verdict)
    return f"- {head}**{item.verdict}**"


def _paper_lines(summary: GroupSummary) -> list[str]:
    paper = summary.paper
    if not paper.rows:
        return [f"- {claim}" for claim in paper.claims]
    lines = ["| method | " + " | ".join(paper.columns) + " |", "|---|" + "---|" * len(paper.columns)]
    lines += [
        f"| {row.label} | " + " | ".join("–" if v is None else f"{v:g}" for v in row.values) + " |"
        for row in paper.rows
    ]
    return lines


def write_files(summary: GroupSummary, ours: list[str], figure: go.Figure, folder: Path) -> str:
    """Writes the four files; returns the Markdown (with where it went)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(summary, ours)
    (folder / "summary.md").write_text(text)
    (folder / "summary.json").write_text(summary.model_dump_json(indent=1))
    if not write_figure(figure, folder):
        text += "\n\n(figure.png not written: neither kaleido nor chromium is available; figure.html is)"
    return text + f"\n\nwritten to {folder}"
