"""The summary's figure for the files next to the summary (``figure.html``, ``figure.png``), drawn with
plotly from the same plain series the dashboard draws (``experiment_groups.Figure``, as a mapping):
``intervals`` → a point per series and category with its 95 % interval as an asymmetric error bar,
the series side by side in each category (scatter traces only: the dashboard's partial Plotly bundle
has no bar trace); ``lines`` → a grid of line panels, two per row, one legend entry per series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def plotly_figure(figure: dict[str, Any]) -> go.Figure:
    """A plotly figure of ``figure`` ({kind, title, x_title, panels: [{title, y_title, series}]})."""
    if figure["kind"] == "intervals":
        return _intervals(figure)
    return _lines(figure)


def _intervals(figure: dict[str, Any]) -> go.Figure:
    out = go.Figure()
    panel = figure["panels"][0]
    for series in panel["series"]:
        y = series["y"]
        above = [None if v is None or h is None else h - v for v, h in zip(y, series["high"], strict=True)]
        below = [None if v is None or lo is None else v - lo for v, lo in zip(y, series["low"], strict=True)]
        error = {"type": "data", "symmetric": False, "array": above, "arrayminus": below, "width": 6}
        out.add_scatter(name=series["name"], x=series["x"], y=y, mode="markers", marker={"size": 10},
                        error_y=error)  # fmt: skip
    out.update_layout(title=figure["title"], yaxis_title=panel.get("y_title", ""), scattermode="group")
    return out


def _lines(figure: dict[str, Any]) -> go.Figure:
    panels = figure["panels"]
    rows = (len(panels) + 1) // 2
    out = make_subplots(rows=rows, cols=2, subplot_titles=[p.get("title", "") for p in panels])
    names = list(dict.fromkeys(s["name"] for p in panels for s in p["series"]))  # first-seen order
    for k, panel in enumerate(panels):
        for series in panel["series"]:
            index = names.index(series["name"])
            out.add_scatter(
                x=series["x"], y=series["y"], name=series["name"], legendgroup=series["name"],
                showlegend=k == 0, line={"color": f"hsl({index * 55 % 360}, 65%, 45%)"},
                row=k // 2 + 1, col=k % 2 + 1,
            )  # fmt: skip
    out.update_layout(title=figure["title"], height=350 * rows)
    return out


def write_figure(figure: go.Figure, folder: Path) -> bool:
    """``figure.html`` (plotly.js included) and ``figure.png`` in ``folder``; False when no PNG could
    be made (neither kaleido nor a Chromium is available)."""
    html = folder / "figure.html"
    figure.write_html(str(html), include_plotlyjs=True)
    return write_png(figure, html, folder / "figure.png")


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
