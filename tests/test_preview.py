"""`cilium-check preview`: the shipped dashboards rendered from the demo's data."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pytest

from cilium_dev import preview
from cilium_dev.fixtures import PRERELEASE
from cilium_check.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "assets" / "dashboards"
NAMES = ("cilium_overview", "cilium_hubble", "cilium_clustermesh")


def _widgets(widgets):
    for widget in widgets:
        yield widget
        yield from _widgets(widget["definition"].get("widgets", []))


def _titles(name: str) -> list[str]:
    dashboard = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return [w["definition"]["title"] for w in _widgets(dashboard["widgets"]) if w["definition"].get("title")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    # the newest release the fixtures have, so that every widget (1.21's load-balancer IDs too) has data
    result = preview.collect(PRERELEASE)
    out = tmp_path_factory.mktemp("preview")
    paths = preview.main(out, result=result, version=PRERELEASE)
    return result, out, paths


def test_every_dashboard_page_and_index_written(rendered):
    _, out, paths = rendered
    assert {p.name for p in paths} == {f"{n}.html" for n in NAMES} | {"index.html"}
    index = (out / "index.html").read_text()
    for name in NAMES:
        assert f'href="{name}.html"' in index


@pytest.mark.parametrize("name", NAMES)
def test_page_shows_every_widget_title(rendered, name):
    _, out, _ = rendered
    page = (out / f"{name}.html").read_text()
    titles = _titles(name)
    assert titles
    for title in titles:
        assert html.escape(title) in page, title
    assert "http://" not in page.split("<footer>")[0].replace("http://127.0.0.1", "")  # self-contained


def _card(page: str, title: str) -> str:
    start = page.index(f"<h3>{html.escape(title)}</h3>")
    return page[start : page.index('<div class="card', start)] if '<div class="card' in page[start:] else page[start:]


def test_overview_shows_the_demo_numbers(rendered):
    result, out, _ = rendered
    page = (out / "cilium_overview.html").read_text()
    ready = sum(
        s["points"][-1][1]
        for s in result.series
        if s["metric"] == "cilium.endpoint.state" and "endpoint_state:ready" in s["tags"]
    )
    assert ready > 0
    card = _card(page, "Endpoints by state")
    assert re.search(rf">ready</text>.*?class=\"v\">{int(ready)}</text>", card), card
    assert f'<div class="qv">{int(ready)}<' in _card(page, "Ready endpoints")
    drops = {}
    for s in result.series:
        if s["metric"] == "cilium.drop_count.count":
            reason = next(t.partition(":")[2] for t in s["tags"] if t.startswith("reason:"))
            drops[reason] = drops.get(reason, 0) + s["points"][-1][1]
    top_reason = max(drops, key=drops.get)
    assert html.escape(top_reason) in _card(page, "Top drop reasons (packets)")


def test_no_overview_widget_lacks_data(rendered):
    _, out, _ = rendered
    page = (out / "cilium_overview.html").read_text()
    assert preview.NO_DATA not in page


def test_dashboards_use_only_known_metrics_and_sum_counts():
    types = {r["metric_name"]: r["metric_type"] for r in csv.DictReader((ROOT / "metadata.csv").open())}
    for name in NAMES:
        dashboard = json.loads((DASHBOARDS / f"{name}.json").read_text())
        assert dashboard["layout_type"] == "ordered"
        assert [v["name"] for v in dashboard["template_variables"]] == ["cluster", "node", "namespace"]
        for widget in _widgets(dashboard["widgets"]):
            for request in widget["definition"].get("requests", []):
                for query in request["queries"]:
                    m = preview.QUERY_RE.match(query["query"])
                    assert m, query["query"]
                    assert m["metric"] in types, m["metric"]
                    if types[m["metric"]] == "count":
                        assert m["agg"] == "sum" and m["mod"], query["query"]


def test_evaluator_rates_ratios_and_missing_metrics():
    series = [
        {"metric": "c.sum", "points": [[0, 3.0]], "tags": ["k:A b"], "host": "h1", "type": "count"},
        {"metric": "c.sum", "points": [[0, 1.0]], "tags": ["k:x"], "host": "h2", "type": "count"},
        {"metric": "c.count", "points": [[0, 2.0]], "tags": ["k:A b"], "host": "h1", "type": "count"},
        {"metric": "c.count", "points": [[0, 2.0]], "tags": ["k:x"], "host": "h2", "type": "count"},
    ]
    ev = preview.Evaluator(series, interval=0.5)
    assert ev.query("sum:c.sum{$cluster,k:a_b}.as_count()") == {(): 3.0}
    assert ev.query("sum:c.sum{*}.as_rate()") == {(): 8.0}
    assert ev.query("sum:c.sum{*} by {host}.as_count()") == {("host:h1",): 3.0, ("host:h2",): 1.0}
    assert ev.query("sum:c.sum{k:nope}.as_count()") is None
    assert ev.query("sum:missing{*}") is None
    ratio = ev.request(
        {
            "queries": [
                {"name": "query1", "query": "sum:c.sum{*} by {k}.as_count()"},
                {"name": "query2", "query": "sum:c.count{*} by {k}.as_count()"},
            ],
            "formulas": [{"formula": "query1 / query2"}],
        }
    )
    assert ratio == [("query1 / query2", {("k:A b",): 1.5, ("k:x",): 0.5})]


def test_cli_preview_prints_paths(tmp_path, capsys, monkeypatch):
    calls = []

    def fake_main(out):
        calls.append(out)
        return [Path(out) / "index.html"]

    monkeypatch.setattr(preview, "main", fake_main)
    assert cli_main(["preview", "--out", str(tmp_path)]) == 0
    assert calls == [str(tmp_path)]
    assert capsys.readouterr().out.strip() == str(tmp_path / "index.html")
