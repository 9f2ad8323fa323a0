"""The HTML report: self-contained, honest banner, every termination, policies side by side."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from harness.report import write_report, write_sim_vs_real
from harness.report.tables import METRICS, side_by_side

POLICIES = ("drain", "seed", "hpa", "keda")


class _Tags(HTMLParser):
    """Collects start tags with their attributes and checks that every element is closed."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack[-5:], tag)
        self.stack.pop()


def parse(page: str) -> _Tags:
    tags = _Tags()
    tags.feed(page)
    tags.close()
    assert tags.stack == []
    return tags


@pytest.fixture
def sweep_results(make_result):
    return [
        make_result(scenario, policy, 1) for scenario in ("burst", "steady") for policy in POLICIES
    ]


def test_page_is_self_contained(sweep_results, tmp_path):
    path = write_report(sweep_results, tmp_path / "r", "all clean")
    assert path == tmp_path / "r" / "index.html"
    page = path.read_text()
    for remote in ('src="http', "src='http", 'href="http', "href='http", "@import", "url("):
        assert remote not in page
    tags = parse(page)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "iframe")]
    images = [a for t, a in tags.tags if t == "img"]
    assert images and all(a["src"].startswith("data:image/png;base64,") for a in images)
    # replicas, queue and waits for each of the 8 runs
    assert len(images) == 3 * len(sweep_results)
    assert all(a["href"].startswith("#") for t, a in tags.tags if t == "a")
    assert "<style>" in page


def test_green_banner_when_no_busy_termination_and_no_loss(make_result, tmp_path):
    results = [make_result("burst", "drain", 1), make_result("burst", "keda", 1)]
    page = write_report(results, tmp_path, "clean").read_text()
    assert 'class="banner green"' in page
    assert 'class="banner red"' not in page


def test_red_banner_names_the_run_with_a_busy_termination(make_result, tmp_path):
    results = [make_result("burst", "drain", 1), make_result("burst", "seed", 3, busy=2)]
    page = write_report(results, tmp_path, "one busy").read_text()
    assert 'class="banner red"' in page
    assert 'class="banner green"' not in page
    banner = page[page.index('class="banner red"') :].split("</div>")[0]
    assert "burst / seed / seed 3" in banner
    assert "burst / drain" not in banner.replace("drain: none", "")
    assert page.index("banner red") < page.index("<h2")  # at the top


def test_red_banner_for_a_lost_task_alone(make_result, tmp_path):
    page = write_report([make_result("s", "drain", 5, lost=1)], tmp_path, "lost").read_text()
    assert 'class="banner red"' in page
    assert "s / drain / seed 5" in page


def test_banner_follows_the_summaries_of_runs_without_tables(make_result, tmp_path):
    shown = make_result("burst", "drain", 1)
    other = make_result("burst", "drain", 2, busy=1).summary  # a later seed, summary only
    page = write_report([shown], tmp_path, "t", [shown.summary, other]).read_text()
    assert 'class="banner red"' in page and "burst / drain / seed 2" in page


def test_every_termination_row_is_listed_and_busy_rows_are_red(make_result, tmp_path):
    run = make_result("burst", "hpa", 1, busy=3, n_terminations=40)
    page = write_report([run], tmp_path, "terms").read_text()
    for pod in run.terminations["pod"]:
        assert f"<td>{pod}</td>" in page
    assert page.count('<tr class="busy">') == 3
    busy_rows = re.findall(r'<tr class="busy">(.*?)</tr>', page, flags=re.S)
    assert all("SIGKILL" in row for row in busy_rows)


def test_side_by_side_has_one_column_group_per_policy(make_result, tmp_path):
    results = [make_result(s, p, 1) for s in ("a", "b", "c") for p in POLICIES]
    summaries = [r.summary for r in results]
    table = side_by_side(summaries)
    assert list(table.columns.get_level_values(0).unique()) == list(POLICIES)
    labels = [label for _, label, _ in METRICS]
    for policy in POLICIES:
        assert list(table[policy].columns) == labels
    assert list(table.index) == ["a", "b", "c"]

    page = write_report(results[:1], tmp_path, "groups", summaries).read_text()
    summary_table = page[page.index("<h2>Summary</h2>") :].split("</table>")[0]
    for policy in POLICIES:
        assert f'<th colspan="{len(labels)}" halign="left">{policy}</th>' in summary_table


def test_side_by_side_combines_seeds(make_result):
    runs = [make_result("a", "drain", s, busy=1) for s in (1, 2, 3)]
    table = side_by_side([r.summary for r in runs])
    assert table.loc["a", ("drain", "busy terms")] == 3  # summed
    assert table.loc["a", ("drain", "max repl")] == 3  # maximum


def test_expectation_failures_are_listed(make_result, tmp_path):
    run = make_result("a", "drain", 1)
    run.summary["expect_failures"] = ["tasks_completed = 24, expected ge 999999"]
    page = write_report([run], tmp_path, "t").read_text()
    assert "tasks_completed = 24, expected ge 999999" in page
    assert 'class="fail"' in page


def test_names_are_escaped(make_result, tmp_path):
    run = make_result("<script>alert(1)</script>", "drain", 1)
    page = write_report([run], tmp_path, "<b>title</b>").read_text()
    assert "<script>" not in page and "<b>title</b>" not in page
    parse(page)


def test_run_without_timeline_or_terminations_still_renders(make_result, tmp_path):
    run = make_result("empty", "drain", 1, n_terminations=0)
    run.timeline = run.timeline.iloc[0:0]
    run.tasks = run.tasks.iloc[0:0]
    run.events = run.events.iloc[0:0]
    page = write_report([run], tmp_path, "empty").read_text()
    assert "No pod was terminated" in page and "No timeline was recorded" in page
    parse(page)


def test_page_size_stays_small(make_result, tmp_path):
    results = [make_result("a", p, 1, busy=1) for p in ("drain", "seed")]
    size = write_report(results, tmp_path, "size").stat().st_size
    assert size < 2 * 150_000  # so 13 x 4 runs stay under ~15 MB


def test_sim_vs_real_page(make_result, tmp_path):
    sim = make_result("burst", "drain", 1)
    real = make_result("burst", "drain", 1, mode="e2e:kind", busy=1)
    path = write_sim_vs_real(sim, real, tmp_path / "cmp")
    page = path.read_text()
    assert path.name == "index.html"
    assert "real (e2e:kind)" in page and "Simulator against real cluster" in page
    assert 'class="banner red"' in page
    assert 'src="http' not in page
    tags = parse(page)
    # overlay replicas + overlay waits, then 3 figures for each run
    assert len([t for t, _ in tags.tags if t == "img"]) == 2 + 2 * 3
