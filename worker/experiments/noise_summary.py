"""The ``label_noise`` summary: win rates per method and noise level (as ``win_rate_summary``), the
robustness verdicts, and the audit of the outlier inspector's noise score against the planted flips.

Robustness (β-DPO's claim that β-guided filtering makes DPO robust to noisy pairs; the paper gives no
number for label flips, so this is a direction only): each method − the baseline (DPO) at each noise
level and temperature, Newcombe 95 %: "agrees" when the interval is above 0, "disagrees" when below,
"too noisy to tell" when it holds 0.

Audit: per run, every training pair with records gets its noise score (backend.storage.pairs: the mean
of max(0, −z) over its records) and its planted flag; the runs of one (method, noise level) are
pooled over seeds. ROC AUC with the Hanley–McNeil 95 % interval and precision@k (k = pairs planted,
Wilson 95 %) against the base rate k/n. Verdict: "agrees" (the score finds planted pairs) when the AUC
interval is above 0.5 and the precision interval above the base rate, "disagrees" when the AUC interval
is below 0.5, "too noisy to tell" otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine

from backend.experiment_spec import ExperimentSpec
from backend.storage.pairs import pair_summary
from worker.alignment.noise_audit import RankingAudit, audit_ranking
from worker.engine.evaluation.win_rates import difference_interval, wilson_interval
from worker.experiments.summary import Parts, RunResult, points, pooled_cells, win_rate_summary

ALL_PAIRS = 10**7
CLAIM = "β-guided filtering makes DPO robust to noisy pairs (direction only: no number for label flips)"


def label_noise_summary(spec: ExperimentSpec, results: list[RunResult], engine: Engine) -> Parts:
    """Our win-rate table, the robustness and audit verdicts, the audit rows, and the figure."""
    lines, data, figure = win_rate_summary(spec, results, engine)
    audits = _audits(results, engine)
    rows = [_audit_row(label, column, audit) for (label, column), audit in audits.items()]
    data["verdicts"] = _robustness(spec, results, engine) + [_audit_verdict(row) for row in rows]
    data["audit"] = {"rows": rows, "note": AUDIT_NOTE}
    lines += ["", "Noise score against the planted flips (pooled over seeds):", "",
              "| method | noise | n | planted k | ROC AUC [95 %] | precision@k [95 %] | base rate |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [_audit_line(row) for row in rows]
    return lines, data, figure


AUDIT_NOTE = (
    "Noise score = mean over a pair's records of max(0, −z), z = (M − M0)/σ: how far below β-DPO's "
    "running mean the pair sat. ROC AUC: chance 0.5 (Hanley–McNeil 95 %). precision@k: share of planted "
    "pairs among the k highest scores, k = pairs planted (Wilson 95 %); a random ranking gets the base rate."
)


def _audits(results: list[RunResult], engine: Engine) -> dict[tuple[str, str], RankingAudit]:
    """(label, column) → the audit of the pooled (score, planted) of its runs with planted pairs."""
    pooled: dict[tuple[str, str], tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    with engine.connect() as conn:
        for result in results:
            summary = pair_summary(conn, result.run_id, kept=None, limit=ALL_PAIRS, with_text=False)
            flagged = [s for s in summary if s.planted is not None]
            if not any(s.planted for s in flagged):
                continue
            scores, flags = pooled[(result.label, result.column)]
            scores += [s.noise_score for s in flagged]
            flags += [bool(s.planted) for s in flagged]
    return {key: audit_ranking(*value) for key, value in pooled.items()}


def _audit_row(label: str, column: str, audit: RankingAudit) -> dict[str, Any]:
    low, high = wilson_interval(audit.hits, audit.k)
    return {"method": label, "column": column, "n": audit.n, "k": audit.k, "hits": audit.hits,
            "auc": {"value": audit.auc, "low": audit.auc_low, "high": audit.auc_high},
            "precision": {"value": audit.precision, "low": low, "high": high},
            "base_rate": audit.base_rate}  # fmt: skip


def _audit_verdict(row: dict[str, Any]) -> dict[str, Any]:
    auc, precision = row["auc"], row["precision"]
    if auc["low"] > 0.5 and precision["low"] > row["base_rate"]:
        said = "agrees"
    elif auc["high"] < 0.5:
        said = "disagrees"
    else:
        said = "too noisy to tell"
    text = (f"noise score finds the planted pairs — {row['method']} at {row['column']}: ROC AUC "
            f"{auc['value']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}] vs 0.5, precision@{row['k']} "
            f"{precision['value']:.3f} [{precision['low']:.3f}, {precision['high']:.3f}] vs base rate "
            f"{row['base_rate']:.3f} → {said}")  # fmt: skip
    claim = text.removesuffix(f" → {said}")
    return {"verdict": said, "category": _category(said), "text": text, "claim": claim,
            "method": row["method"], "column": row["column"]}  # fmt: skip


def _category(said: str) -> str:
    return {"agrees": "agrees", "disagrees": "disagrees"}.get(said, "noisy")


def _robustness(spec: ExperimentSpec, results: list[RunResult], engine: Engine) -> list[dict[str, Any]]:
    """Each method − the baseline at every (noise level, temperature), direction-only verdicts."""
    cells = pooled_cells(engine, results)
    baseline = spec.runs[0].label
    columns = sorted(
        {(c, t) for (_, c, t) in cells}, key=lambda ct: ([r.column for r in results].index(ct[0]), ct[1])
    )
    verdicts = []
    for label in [run.label for run in spec.runs[1:] if run.label != "base (SFT, no DPO)"]:
        for column, temperature in columns:
            ours, base = cells.get((label, column, temperature)), cells.get((baseline, column, temperature))
            if ours is None or base is None or not ours.n or not base.n:
                continue
            d, low, high = difference_interval(ours.triple(), base.triple())
            said = "agrees" if low > 0 else "disagrees" if high < 0 else "too noisy to tell"
            head = f"{column} T={temperature:g}"
            text = (f"{label} − {baseline} at {head}: ours {100 * d:+.1f} points [{100 * low:+.1f}, "
                    f"{100 * high:+.1f}]; paper: {CLAIM} → {said}")  # fmt: skip
            verdicts.append(
                {"method": label, "column": head, "difference": points((d, low, high)),
                 "paper_direction": None, "paper_basis": "direction only", "verdict": said,
                 "category": _category(said), "text": text}
            )  # fmt: skip
    return verdicts


def _audit_line(row: dict[str, Any]) -> str:
    auc, precision = row["auc"], row["precision"]
    return (f"| {row['method']} | {row['column']} | {row['n']} | {row['k']} | {auc['value']:.3f} "
            f"[{auc['low']:.3f}, {auc['high']:.3f}] | {precision['value']:.3f} [{precision['low']:.3f}, "
            f"{precision['high']:.3f}] | {row['base_rate']:.3f} |")  # fmt: skip
