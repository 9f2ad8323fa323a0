"""pandas tables of run summaries and run tables, and their HTML (escaped, small classes)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from controllers.core.policies import POLICIES

# Summary key, short label, how the seeds of one scenario x policy combine.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("busy_worker_terminations", "busy terms", "sum"),
    ("tasks_killed", "killed", "sum"),
    ("tasks_lost", "lost", "sum"),
    ("tasks_completed", "completed", "mean"),
    ("wait_mean", "wait mean", "mean"),
    ("wait_p95", "wait p95", "mean"),
    ("wait_p99", "wait p99", "mean"),
    ("worker_seconds", "worker-s", "mean"),
    ("max_replicas", "max repl", "max"),
    ("final_replicas", "final repl", "mean"),
    ("scale_events", "scale events", "mean"),
    ("expect_failures", "expect fail", "sum"),
)
AGGREGATION_NOTE = (
    "Over the seeds of a scenario and policy: sums for busy terminations, killed, lost and "
    "expectation failures, the maximum of max replicas, means for the rest."
)
# A positive value in these columns is highlighted.
BAD_WHEN_POSITIVE = frozenset({"busy terms", "killed", "lost", "expect fail"})
TERMINATION_SHOWN = ("t", "pod", "active", "reserved", "busy", "ended_by", "ended_at", "reason")


def policy_order(names: Iterable[str]) -> list[str]:
    """The known policies in their usual order, then any other names as they come."""
    names = list(dict.fromkeys(names))
    return [p for p in POLICIES if p in names] + [p for p in names if p not in POLICIES]


def summaries_frame(summaries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run; `expect_failures` joined into one string (for CSV)."""
    df = pd.DataFrame(list(summaries))
    if "expect_failures" in df:
        df["expect_failures"] = df["expect_failures"].map(lambda v: "; ".join(v or []))
    return df


def aggregate(summaries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (scenario, policy): `runs` and every METRICS label, combined over seeds."""
    df = pd.DataFrame(list(summaries))
    labels = [label for _, label, _ in METRICS]
    if df.empty:
        return pd.DataFrame(
            columns=["runs", *labels],
            index=pd.MultiIndex.from_tuples([], names=["scenario", "policy"]),
        )
    df["expect_failures"] = df["expect_failures"].map(lambda v: len(v or []))
    grouped = df.groupby(["scenario", "policy"], sort=False)
    out = pd.DataFrame({"runs": grouped.size()})
    for key, label, how in METRICS:
        out[label] = grouped[key].agg(how)
    scenarios = list(dict.fromkeys(df["scenario"]))
    policies = policy_order(df["policy"])
    order = [(s, p) for s in scenarios for p in policies if (s, p) in out.index]
    return out.loc[order]


def side_by_side(summaries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows: scenarios; columns: one group per policy, the METRICS labels inside each."""
    agg = aggregate(summaries)
    if agg.empty:
        return pd.DataFrame()
    wide = agg.drop(columns="runs").unstack("policy")  # columns (label, policy)
    wide = wide.swaplevel(axis=1)
    policies = policy_order(agg.index.get_level_values("policy"))
    labels = [label for _, label, _ in METRICS]
    columns = pd.MultiIndex.from_product([policies, labels])
    scenarios = list(dict.fromkeys(agg.index.get_level_values("scenario")))
    return wide.reindex(index=pd.Index(scenarios), columns=columns)


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


def _is_positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def _label(value: Any) -> Any:
    return html.escape(str(value)) if isinstance(value, str) else value


def frame_html(
    df: pd.DataFrame,
    *,
    bad_columns: Iterable[str] = (),
    row_classes: Sequence[str | None] | None = None,
    index: bool = True,
) -> str:
    """`DataFrame.to_html` with every value escaped here, positive `bad_columns` cells marked
    `class="bad"`, and `<tr class=...>` for the body rows that `row_classes` names."""
    bad = set(bad_columns)
    cells = df.astype(object).copy()
    for i, col in enumerate(df.columns):
        name = col[-1] if isinstance(col, tuple) else col
        values = df.iloc[:, i].tolist()
        cells.isetitem(
            i,
            [
                f'<span class="bad">{html.escape(fmt(v))}</span>'
                if name in bad and _is_positive(v)
                else html.escape(fmt(v))
                for v in values
            ],
        )
    cells = cells.rename(index=_label, columns=_label)
    if isinstance(cells.index, pd.MultiIndex):
        cells.index = cells.index.set_names([_label(n) for n in cells.index.names])
    else:
        cells.index.name = _label(cells.index.name)
    out = cells.to_html(escape=False, border=0, classes="data", index=index, na_rep="")
    if row_classes is None:
        return out
    head, tbody, body = out.partition("<tbody>")
    pieces = body.split("<tr>")
    rebuilt = [pieces[0]]
    for cls, piece in zip(row_classes, pieces[1:], strict=True):
        rebuilt.append((f'<tr class="{cls}">' if cls else "<tr>") + piece)
    return head + tbody + "".join(rebuilt)


def summary_html(summaries: Sequence[dict[str, Any]]) -> str:
    table = side_by_side(summaries)
    if table.empty:
        return "<p>No runs.</p>"
    return frame_html(table, bad_columns=BAD_WHEN_POSITIVE)


def terminations_html(terms: pd.DataFrame) -> str:
    """Every pod termination of a run; rows of busy workers get `class="busy"`."""
    if not len(terms):
        return "<p>No pod was terminated.</p>"
    shown = terms.loc[:, list(TERMINATION_SHOWN)].reset_index(drop=True)
    classes = ["busy" if bool(b) else None for b in shown["busy"]]
    return frame_html(shown, row_classes=classes, index=False)


def wait_stats(waits: pd.Series) -> pd.DataFrame:
    """Count, mean, percentiles and maximum of task waits, one row."""
    if not len(waits):
        return pd.DataFrame([{"started": 0}])
    return pd.DataFrame(
        [
            {
                "started": len(waits),
                "mean": float(waits.mean()),
                "p50": float(waits.quantile(0.50)),
                "p90": float(waits.quantile(0.90)),
                "p95": float(waits.quantile(0.95)),
                "p99": float(waits.quantile(0.99)),
                "max": float(waits.max()),
            }
        ]
    )
