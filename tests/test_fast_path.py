"""The fast scrape path: malformed lines, its cache, and its explicit fallbacks."""

import logging

import pytest
from datadog_checks.base.constants import ServiceCheck

from datadog_checks.cilium import CiliumCheck
from cilium_check.fast.scraper import FastScraper
from cilium_check.scraper import CiliumScraper

GOOD = (
    "# HELP cilium_drop_count_total Drops\n"
    "# TYPE cilium_drop_count_total counter\n"
    'cilium_drop_count_total{direction="INGRESS",reason="Policy denied"} 10\n'
    'cilium_drop_count_total{direction="EGRESS",reason="Policy denied"} 20\n'
    "# TYPE cilium_unreachable_nodes gauge\n"
    "cilium_unreachable_nodes 3\n"
)
BROKEN_AT = 4  # the line number of the broken sample below
BROKEN = GOOD.replace(
    'cilium_drop_count_total{direction="EGRESS",reason="Policy denied"} 20',
    'cilium_drop_count_total{direction="EGRESS",reason="Policy denied 20',
)


def test_a_malformed_line_costs_that_line_only(fixture_server, aggregator, dd_run_check, caplog):
    caplog.set_level(logging.WARNING)
    url = fixture_server.set_payload("/broken-line/metrics", BROKEN + "this is not a sample\n")
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    dd_run_check(check)
    tags = ["cilium_component:agent", f"endpoint:{url}"]
    aggregator.assert_metric("cilium.drop_count.count", 10, tags=["direction:INGRESS", "reason:Policy denied", *tags])
    aggregator.assert_metric("cilium.unreachable.nodes", 3, tags=tags)
    aggregator.assert_metric("cilium.check.lines_skipped", 2, tags=tags)
    aggregator.assert_service_check(
        "cilium.openmetrics.health", ServiceCheck.WARNING, tags=tags, message=f".*2 malformed line.*line {BROKEN_AT}"
    )
    assert len(aggregator.service_checks("cilium.openmetrics.health")) == 1
    warnings = [r.getMessage() for r in caplog.records if "malformed line" in r.getMessage()]
    assert len(warnings) == 1 and f"line {BROKEN_AT}" in warnings[0], "the first offender only"


def test_the_stock_parser_loses_the_scrape_on_the_same_line(fixture_server, aggregator, dd_run_check):
    url = fixture_server.set_payload("/broken-line-stock/metrics", BROKEN)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url, "fast_path": False}])
    with pytest.raises(Exception):
        dd_run_check(check)
    aggregator.assert_metric("cilium.unreachable.nodes", count=0)


def test_a_clean_payload_after_a_broken_one_is_ok_again(fixture_server, aggregator, dd_run_check):
    url = fixture_server.set_payload("/flaky-line/metrics", BROKEN)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    dd_run_check(check)
    fixture_server.set_payload("/flaky-line/metrics", GOOD)
    aggregator.reset()
    dd_run_check(check)
    aggregator.assert_service_check("cilium.openmetrics.health", ServiceCheck.OK)
    aggregator.assert_metric("cilium.check.lines_skipped", 0)


def scraper_of(check) -> FastScraper:
    (scraper,) = check.scrapers.values()
    return scraper


def test_the_cache_forgets_series_that_disappear(fixture_server, dd_run_check):
    many = GOOD + "".join(f'cilium_drop_count_total{{direction="INGRESS",reason="r{i}"}} 1\n' for i in range(50))
    many = many.replace("# TYPE cilium_unreachable_nodes gauge\ncilium_unreachable_nodes 3\n", "") + (
        "# TYPE cilium_unreachable_nodes gauge\ncilium_unreachable_nodes 3\n"
    )
    url = fixture_server.set_payload("/shrinking/metrics", many)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    dd_run_check(check)
    assert scraper_of(check).cache_stats()["entries"] == 53
    fixture_server.set_payload("/shrinking/metrics", GOOD)
    dd_run_check(check)
    stats = scraper_of(check).cache_stats()
    assert stats["entries"] == 3
    assert stats["bytes"] > 0


def test_changed_tags_are_not_served_from_the_cache(fixture_server, aggregator, dd_run_check):
    url = fixture_server.set_payload("/retag/metrics", GOOD)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    dd_run_check(check)
    check.set_dynamic_tags("pod_name:cilium-abcde")
    aggregator.reset()
    dd_run_check(check)
    aggregator.assert_metric_has_tag("cilium.unreachable.nodes", "pod_name:cilium-abcde")


def test_options_it_does_not_implement_use_the_stock_parser_and_say_so(fixture_server, aggregator, dd_run_check, caplog):
    caplog.set_level(logging.INFO)
    url = fixture_server.set_payload("/telemetry/metrics", GOOD)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url, "telemetry": True}])
    dd_run_check(check)
    assert "does not implement `telemetry`; using the stock OpenMetrics parser" in caplog.text
    aggregator.assert_metric("cilium.unreachable.nodes", 3)
    aggregator.assert_metric("cilium.telemetry.metrics.input.count")


def test_openmetrics_payloads_use_the_stock_parser_and_say_so(fixture_server, aggregator, dd_run_check, caplog):
    caplog.set_level(logging.INFO)
    text = GOOD.replace("cilium_drop_count_total counter", "cilium_drop_count counter").replace(
        "# HELP cilium_drop_count_total", "# HELP cilium_drop_count"
    ) + "# EOF\n"
    url = fixture_server.set_payload(
        "/openmetrics/metrics", text, content_type="application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    dd_run_check(check)
    assert "serves OpenMetrics: using the stock parser" in caplog.text
    aggregator.assert_metric("cilium.drop_count.count", 10)
    aggregator.assert_metric("cilium.unreachable.nodes", 3)


def test_fast_path_is_the_default_and_can_be_turned_off(fixture_server, dd_run_check):
    url = fixture_server.set_payload("/which/metrics", GOOD)
    fast = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    stock = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url, "fast_path": False}])
    dd_run_check(fast)
    dd_run_check(stock)
    assert type(scraper_of(fast)) is FastScraper
    assert type(scraper_of(stock)) is CiliumScraper


def test_a_tab_after_a_bare_name_is_read_as_prometheus_reads_it(fixture_server, aggregator, dd_run_check):
    url = fixture_server.set_payload("/tabbed/metrics", "# TYPE cilium_unreachable_nodes gauge\ncilium_unreachable_nodes\t4\n")
    dd_run_check(CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}]))
    aggregator.assert_metric("cilium.unreachable.nodes", 4)
    aggregator.assert_metric("cilium.check.lines_skipped", 0)


def test_a_full_cache_still_evicts_what_leaves(fixture_server, monkeypatch):
    """With the cache at its bound, a series that left is evicted and the one that replaced it is
    cached, even when the series seen in a run number as many as the cache holds."""
    from cilium_check.fast import scraper as fast_scraper

    monkeypatch.setattr(fast_scraper, "MAX_CACHED_SERIES", 3)
    header = "# TYPE cilium_drop_count_total counter\n"

    def payload(*reasons):
        return header + "".join(f'cilium_drop_count_total{{reason="{r}",direction="INGRESS"}} 1\n' for r in reasons)

    url = fixture_server.set_payload("/full-cache/metrics", payload("a", "b", "c"))
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": url, "use_openmetrics": True}])
    check.run()
    fixture_server.set_payload("/full-cache/metrics", payload("a", "b", "d"))
    for _ in range(3):
        check.run()
    (scraper,) = check.scrapers.values()
    cached = sorted(key for fam in scraper.families.values() for key in fam.entries)
    assert [key.split('reason="')[1][0] for key in cached] == ["a", "b", "d"]
