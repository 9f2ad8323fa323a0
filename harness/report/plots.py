"""Small matplotlib figures rendered to inline base64 PNGs (Agg canvas, no pyplot state).

Figures are ~8x3 in at 80 dpi so a 13-scenario x 4-policy page stays a few megabytes.
Every function takes the column sets of `harness.results` and nothing else.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from harness.results import RunResult

FIGSIZE = (8.0, 3.0)
DPI = 80
SCALE_IN_THRESHOLD = 0.70  # scale in when load < 0.70 * target (DESIGN.md)

REPLICA_LINES = (  # column, colour
    ("desired", "tab:blue"),
    ("live", "tab:green"),
    ("serving", "tab:cyan"),
    ("terminating", "tab:red"),
)
QUEUE_LINES = (("queue_depth", "tab:purple"), ("active", "tab:green"), ("reserved", "tab:orange"))


def _figure(ncols: int = 1, right: float = 0.98) -> tuple[Figure, list]:
    """Fixed margins (a layout engine costs more than the drawing); `right` leaves room for a
    legend beside the axes."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.07, right=right, bottom=0.15, top=0.96, wspace=0.22)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.25)
    return fig, list(axes)


def _legend_beside(fig: Figure, x: float, handles: list | None = None) -> None:
    fig.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(x, 0.97), fontsize=7, frameon=False
    )


def png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def waits(tasks: pd.DataFrame) -> pd.Series:
    """Seconds from queued to started, for task executions that started."""
    started = tasks.dropna(subset=["started_at"])
    return (started["started_at"] - started["queued_at"]).astype(float)


def _scale_directions(timeline: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """+1 / -1 / 0 for each scale event: did `desired` go up or down across it."""
    ts = timeline["t"].to_numpy(dtype=float)
    desired = timeline["desired"].to_numpy(dtype=float)
    if len(ts) == 0:
        return np.zeros(len(times))
    before = np.clip(np.searchsorted(ts, times, side="left") - 1, 0, len(ts) - 1)
    after = np.clip(np.searchsorted(ts, times, side="right"), 0, len(ts) - 1)
    return np.sign(desired[after] - desired[before])


def _event_times(events: pd.DataFrame, *kinds: str) -> np.ndarray:
    if not len(events):
        return np.array([])
    return events.loc[events["kind"].isin(kinds), "t"].to_numpy(dtype=float)


def replicas_figure(result: RunResult) -> str | None:
    """Replicas over time against load and target, with cordon and scale marks."""
    tl, ev = result.timeline, result.events
    if not len(tl):
        return None
    fig, (ax,) = _figure(right=0.74)
    for col, colour in REPLICA_LINES:
        ax.step(tl["t"], tl[col], where="post", color=colour, lw=1.2, label=col)
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel("pods", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))

    load_ax = ax.twinx()
    load_ax.tick_params(labelsize=7)
    load_ax.plot(tl["t"], tl["load"], color="0.45", lw=0.8, alpha=0.8, label="load %")
    load_ax.plot(tl["t"], tl["target"], color="black", ls="--", lw=0.9, label="target")
    load_ax.plot(
        tl["t"],
        tl["target"] * SCALE_IN_THRESHOLD,
        color="black",
        ls=":",
        lw=0.9,
        label="70 % of target",
    )
    top = np.nanmax([100.0, *tl["load"].fillna(0), *tl["target"].fillna(0)]) * 1.05
    load_ax.set_ylim(0, top)
    load_ax.set_ylabel("load %", fontsize=8)

    marks = []
    xaxis = ax.get_xaxis_transform()
    cordons = _event_times(ev, "cordon")
    if len(cordons):
        ax.vlines(cordons, 0, 1, transform=xaxis, colors="tab:orange", ls=":", lw=0.8)
        marks.append(Line2D([], [], color="tab:orange", ls=":", label="cordon"))
    scales = _event_times(ev, "scale")
    direction = _scale_directions(tl, scales)
    ins = np.concatenate([_event_times(ev, "mark"), scales[direction < 0]])
    if len(ins):
        ax.vlines(ins, 0, 1, transform=xaxis, colors="tab:red", ls="--", lw=0.8, alpha=0.7)
        marks.append(Line2D([], [], color="tab:red", ls="--", label="scale-in / mark"))
    outs = scales[direction >= 0]
    if len(outs):
        ax.vlines(outs, 0, 1, transform=xaxis, colors="tab:green", ls="-", lw=0.5, alpha=0.5)
        marks.append(Line2D([], [], color="tab:green", lw=0.5, label="scale (out)"))

    handles = [*ax.get_lines(), *load_ax.get_lines(), *marks]
    _legend_beside(fig, 0.82, handles)
    return png_base64(fig)


def queue_figure(result: RunResult) -> str | None:
    """Broker queue depth and active/reserved tasks over time."""
    tl = result.timeline
    if not len(tl):
        return None
    fig, (ax,) = _figure(right=0.82)
    for col, colour in QUEUE_LINES:
        ax.step(tl["t"], tl[col], where="post", color=colour, lw=1.1, label=col)
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel("tasks", fontsize=8)
    ax.set_ylim(bottom=0)
    _legend_beside(fig, 0.83)
    return png_base64(fig)


def wait_figure(series: Mapping[str, pd.Series]) -> str | None:
    """Task wait histogram (left) and CDF (right); several labelled series are overlaid."""
    series = {label: s for label, s in series.items() if len(s)}
    if not series:
        return None
    fig, (hist_ax, cdf_ax) = _figure(2, right=0.98)
    top = max(float(s.max()) for s in series.values())
    bins = np.linspace(0, top if top > 0 else 1.0, 40)
    for label, s in series.items():
        hist_ax.hist(s, bins=bins, histtype="step", lw=1.2, label=label)
        xs = np.sort(s.to_numpy(dtype=float))
        cdf_ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", lw=1.2, label=label)
    if len(series) == 1:
        (s,) = series.values()
        for q, ls in ((0.50, "-"), (0.95, "--"), (0.99, ":")):
            v = float(s.quantile(q))
            cdf_ax.axvline(v, color="0.4", ls=ls, lw=0.8, label=f"p{round(q * 100)} {v:.3g} s")
    hist_ax.set_xlabel("wait (s)", fontsize=8)
    hist_ax.set_ylabel("tasks", fontsize=8)
    cdf_ax.set_xlabel("wait (s)", fontsize=8)
    cdf_ax.set_ylabel("fraction started", fontsize=8)
    cdf_ax.set_ylim(0, 1.02)
    cdf_ax.legend(fontsize=7, frameon=False, loc="lower right")
    return png_base64(fig)


def replicas_overlay_figure(runs: Mapping[str, RunResult]) -> str | None:
    """Desired and live replicas of several runs (e.g. sim and real) on one axis."""
    runs = {label: r for label, r in runs.items() if len(r.timeline)}
    if not runs:
        return None
    fig, (ax,) = _figure(right=0.74)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for i, (label, run) in enumerate(runs.items()):
        tl, colour = run.timeline, colours[i % len(colours)]
        for col, ls in (("desired", "--"), ("live", "-")):
            ax.step(tl["t"], tl[col], where="post", color=colour, ls=ls, lw=1.2)
            ax.plot([], [], color=colour, ls=ls, label=f"{label} {col}")
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel("pods", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_beside(fig, 0.75)
    return png_base64(fig)
