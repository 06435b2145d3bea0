"""Lines that cannot become a valid sample cost themselves only, in both parsers."""

from __future__ import annotations

import pytest
from datadog_checks.base.constants import ServiceCheck

from datadog_checks.cilium import CiliumCheck

HISTOGRAM = """\
# TYPE cilium_endpoint_regeneration_time_stats_seconds histogram
cilium_endpoint_regeneration_time_stats_seconds_bucket{scope="total",le="1"} 2
{bad}
cilium_endpoint_regeneration_time_stats_seconds_bucket{scope="total",le="+Inf"} 3
cilium_endpoint_regeneration_time_stats_seconds_sum{scope="total"} 1
cilium_endpoint_regeneration_time_stats_seconds_count{scope="total"} 3
# TYPE cilium_unreachable_nodes gauge
cilium_unreachable_nodes 2
"""
BUCKETS_WITHOUT_LE = [
    'cilium_endpoint_regeneration_time_stats_seconds_bucket{scope="total"} 3',
    "cilium_endpoint_regeneration_time_stats_seconds_bucket{} 3",
    "cilium_endpoint_regeneration_time_stats_seconds_bucket 3",
]
EXEMPLAR = """\
# TYPE cilium_drop_count_total counter
cilium_drop_count_total{reason="Policy denied",direction="INGRESS"} 10 # {trace_id="abc"} 0.5 1700000000
cilium_drop_count_total{reason="a # in a value",direction="EGRESS"} 7
# TYPE cilium_unreachable_nodes gauge
cilium_unreachable_nodes 2
"""
HEALTH = "cilium.openmetrics.health"


def run(fixture_server, aggregator, path: str, text: str, fast_path: bool) -> CiliumCheck:
    url = fixture_server.set_payload(path, text)
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": url, "use_openmetrics": True, "fast_path": fast_path}])
    assert check.run() == ""
    return check


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "stock"])
@pytest.mark.parametrize("line", BUCKETS_WITHOUT_LE)
def test_a_bucket_without_le_is_skipped_and_counted(fixture_server, aggregator, fast_path, line):
    path = f"/no-le/{fast_path}/{len(line)}/metrics"
    run(fixture_server, aggregator, path, HISTOGRAM.replace("{bad}", line), fast_path)
    # The rest of the histogram and of the payload is there.
    tags = ["scope:total", "upper_bound:1.0", "cilium_component:agent", f"endpoint:{fixture_server.url_for(path)}"]
    aggregator.assert_metric("cilium.endpoint.regeneration_time_stats.seconds.bucket", value=2, tags=tags)
    aggregator.assert_metric("cilium.endpoint.regeneration_time_stats.seconds.count", value=3)
    aggregator.assert_metric("cilium.unreachable.nodes", value=2)
    aggregator.assert_metric("cilium.check.lines_skipped", value=1)
    (health,) = aggregator.service_checks(HEALTH)
    assert health.status == ServiceCheck.WARNING
    assert "skipped 1 malformed line(s)" in health.message


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "stock"])
def test_an_exemplar_never_becomes_a_value(fixture_server, aggregator, fast_path):
    run(fixture_server, aggregator, f"/exemplar/{fast_path}/metrics", EXEMPLAR, fast_path)
    drops = aggregator.metrics("cilium.drop_count.count")
    # The line with an exemplar is skipped (the Prometheus text format has none: promtool refuses it);
    # a `#` inside a label value is just a character.
    assert [(m.value, "reason:a # in a value" in m.tags) for m in drops] == [(7, True)]
    assert all(m.value != 0.5 for name in aggregator._metrics for m in aggregator._metrics[name])
    aggregator.assert_metric("cilium.check.lines_skipped", value=1)
    aggregator.assert_metric("cilium.unreachable.nodes", value=2)
