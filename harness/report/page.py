"""One self-contained HTML page per report: inline CSS, inline PNGs, no script, works offline."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from controllers.core.policies import DEFAULT_POLICY
from harness.report import plots, tables
from harness.results import RunResult, summarize
from harness.scenario import SUMMARY_KEYS

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { margin-bottom: 0.3em; } h4 { margin: 0.8em 0 0.2em; font-size: 1em; }
.banner { padding: 0.8em 1em; border-radius: 4px; font-weight: 600; margin: 1em 0; }
.banner ul { font-weight: normal; margin: 0.4em 0 0; }
.banner.red { background: #fde2e1; border: 2px solid #c62828; color: #7f1010; }
.banner.green { background: #e3f6e5; border: 2px solid #2e7d32; color: #1b4d20; }
.scroll { overflow-x: auto; }
table.data { border-collapse: collapse; font-size: 12px; margin: 0.3em 0; }
table.data th, table.data td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
table.data thead th { background: #f3f3f3; text-align: center; }
table.data tbody th { text-align: left; background: #fafafa; }
tr.busy td { background: #f8c9c6; color: #7f1010; font-weight: 600; }
span.bad { color: #c62828; font-weight: 700; }
ul.fail { color: #b71c1c; } p.ok { color: #2e7d32; } p.note { color: #666; font-size: 12px; }
section.run { margin-left: 1em; padding-left: 1em; border-left: 3px solid #eee; }
img { display: block; max-width: 100%; }
nav a { margin-right: 1em; }
"""


class Page:
    """An HTML page assembled from escaped fragments, written as `DIR/index.html`."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        self._ids: set[str] = set()

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def anchor(self, name: str) -> str:
        """A unique element id derived from `name`."""
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "section"
        slug, n = base, 1
        while slug in self._ids:
            n += 1
            slug = f"{base}-{n}"
        self._ids.add(slug)
        return slug

    def render(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(self.parts)
            + "\n</body>\n</html>\n"
        )

    def write(self, out_dir: Path) -> Path:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "index.html"
        path.write_text(self.render(), encoding="utf-8")
        return path


def image(b64: str | None, alt: str) -> str:
    if b64 is None:
        return "<p>No timeline was recorded.</p>"
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def summary_of(result: RunResult) -> dict[str, Any]:
    """The run's summary; computed from its tables when the producer left it empty."""
    if result.summary:
        return result.summary
    summary = summarize(result, float(result.extra.get("worker_seconds", 0.0)))
    summary["expect_failures"] = []
    return summary


def run_label(summary: dict[str, Any]) -> str:
    return f"{summary['scenario']} / {summary['policy']} / seed {summary['seed']}"


def _is_unsafe(summary: dict[str, Any]) -> bool:
    return bool(summary.get("busy_worker_terminations") or summary.get("tasks_lost"))


def banner_html(summaries: Sequence[dict[str, Any]], limit: int = 40) -> str:
    """Red when any run terminated a busy worker or lost a task (naming them), green otherwise."""
    bad = [s for s in summaries if _is_unsafe(s)]
    n = len(summaries)
    if not bad:
        return (
            '<div class="banner green">No busy worker was terminated and no task was lost '
            f"in {n} run{'s' if n != 1 else ''}.</div>"
        )
    per_policy = pd.Series([s["policy"] for s in bad]).value_counts()
    counts = ", ".join(
        f"{p}: {per_policy[p]}" for p in tables.policy_order(per_policy.index) if p in per_policy
    )
    items = [
        f"<li>{html.escape(run_label(s))}: {s.get('busy_worker_terminations', 0)} busy "
        f"terminations, {s.get('tasks_killed', 0)} tasks killed, "
        f"{s.get('tasks_lost', 0)} tasks lost</li>"
        for s in bad[:limit]
    ]
    if len(bad) > limit:
        items.append(f"<li>and {len(bad) - limit} more runs</li>")
    default = [s for s in summaries if s["policy"] == DEFAULT_POLICY]
    if default and not any(_is_unsafe(s) for s in default):
        items.insert(0, f"<li><b>{DEFAULT_POLICY}: none in {len(default)} runs</b></li>")
    return (
        f'<div class="banner red">{len(bad)} of {n} runs terminated a busy worker or lost a '
        f"task ({html.escape(counts)}).<ul>{''.join(items)}</ul></div>"
    )


def failures_html(summaries: Iterable[dict[str, Any]]) -> str:
    items = [
        f"<li>{html.escape(run_label(s))}: {html.escape(failure)}</li>"
        for s in summaries
        for failure in s.get("expect_failures") or []
    ]
    if not items:
        return '<p class="ok">Every expectation holds.</p>'
    return f'<ul class="fail">{"".join(items)}</ul>'


def wait_stats_html(waits: dict[str, pd.Series]) -> str:
    frame = pd.concat(
        [tables.wait_stats(w).assign(run=label) for label, w in waits.items()],
        ignore_index=True,
    ).set_index("run")
    frame.index.name = None
    return f'<div class="scroll">{tables.frame_html(frame)}</div>'


def run_section(page: Page, result: RunResult) -> str:
    """Plots, wait percentiles, terminations and expectation failures of one run with tables."""
    summary = summary_of(result)
    label = run_label(summary)
    terms = result.terminations
    n_busy = int(terms["busy"].astype(bool).sum()) if len(terms) else 0
    waits = plots.waits(result.tasks)
    return "\n".join(
        [
            f'<section class="run"><h3 id="{page.anchor(label)}">'
            f"{html.escape(result.policy)} · seed {result.seed} "
            f"<small>({html.escape(result.mode)})</small></h3>",
            failures_html([summary]),
            "<h4>Replicas against load and target</h4>",
            image(plots.replicas_figure(result), f"replicas over time, {label}"),
            "<h4>Queue depth, active and reserved tasks</h4>",
            image(plots.queue_figure(result), f"queue over time, {label}"),
            "<h4>Task waits (queued to started)</h4>",
            image(plots.wait_figure({result.policy: waits}), f"task waits, {label}"),
            wait_stats_html({result.policy: waits}),
            f"<h4>Pod terminations ({len(terms)}, {n_busy} of a busy worker)</h4>",
            f"<details{' open' if n_busy else ''}><summary>show all</summary>"
            f'<div class="scroll">{tables.terminations_html(terms)}</div></details>',
            "</section>",
        ]
    )


def _summary_block(summaries: Sequence[dict[str, Any]]) -> str:
    return (
        "<h2>Summary</h2>"
        f'<p class="note">{html.escape(tables.AGGREGATION_NOTE)}</p>'
        f'<div class="scroll">{tables.summary_html(summaries)}</div>'
    )


def write_report(
    results: list[RunResult],
    out_dir: Path,
    title: str,
    summaries: list[dict[str, Any]] | None = None,
) -> Path:
    """Write `out_dir/index.html` for runs: banner, side-by-side summary, a section per scenario.

    `summaries` (all runs of a sweep) default to those of `results` (the runs with tables).
    """
    if summaries is None:
        summaries = [summary_of(r) for r in results]
    page = Page(title)
    page.add(banner_html(summaries))
    scenarios = list(
        dict.fromkeys([s["scenario"] for s in summaries] + [r.scenario for r in results])
    )
    ids = {name: page.anchor(f"scenario {name}") for name in scenarios}
    links = "".join(f'<a href="#{ids[n]}">{html.escape(n)}</a>' for n in scenarios)
    page.add(f"<nav>{links}</nav>")
    page.add(_summary_block(summaries))
    order = {p: i for i, p in enumerate(tables.policy_order(r.policy for r in results))}
    for name in scenarios:
        page.add(f'<h2 id="{ids[name]}">{html.escape(name)}</h2>')
        page.add("<h4>Expectation failures</h4>")
        page.add(failures_html(s for s in summaries if s["scenario"] == name))
        runs = sorted(
            (r for r in results if r.scenario == name), key=lambda r: (order[r.policy], r.seed)
        )
        if not runs:
            page.add('<p class="note">No run of this scenario kept its tables.</p>')
        for run in runs:
            page.add(run_section(page, run))
    return page.write(Path(out_dir))


def write_sim_vs_real(
    sim: RunResult, real: RunResult, out_dir: Path, title: str | None = None
) -> Path:
    """One page comparing a simulated and a real run of one scenario: summaries side by side,
    replicas over time and wait distributions overlaid, then each run's own section."""
    runs = {"sim": sim, f"real ({real.mode})": real}
    summaries = {label: summary_of(r) for label, r in runs.items()}
    page = Page(title or f"{sim.scenario}: simulator against a real cluster")
    page.add(banner_html(list(summaries.values())))
    keys = [k for k in SUMMARY_KEYS if k not in ("scenario",)]
    compare = pd.DataFrame(
        {label: [s.get(k) for k in keys] for label, s in summaries.items()}, index=keys
    )
    page.add("<h2>Summaries</h2>")
    page.add(f'<div class="scroll">{tables.frame_html(compare)}</div>')
    page.add("<h2>Simulator against real cluster</h2>")
    page.add("<h4>Desired and live replicas</h4>")
    page.add(image(plots.replicas_overlay_figure(runs), "replicas over time, sim and real"))
    waits = {label: plots.waits(r.tasks) for label, r in runs.items()}
    page.add("<h4>Task waits (queued to started)</h4>")
    page.add(image(plots.wait_figure(waits), "task waits, sim and real"))
    page.add(wait_stats_html(waits))
    for label, run in runs.items():
        page.add(f"<h2>{html.escape(label)}</h2>")
        page.add(run_section(page, run))
    return page.write(Path(out_dir))
