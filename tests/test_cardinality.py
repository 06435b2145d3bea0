"""The cardinality guard and Hubble's unbounded labels."""

from datadog_checks.cilium import CiliumCheck
from cilium_check.components import HUBBLE


def hubble_flows(n: int, extra: str = "") -> str:
    lines = ["# HELP hubble_flows_processed_total Flows processed", "# TYPE hubble_flows_processed_total counter"]
    for i in range(n):
        lines.append(
            f'hubble_flows_processed_total{{protocol="TCP",source="ns-{i}/app",subtype="to-endpoint",'
            f'type="Trace",verdict="FORWARDED"{extra}}} {i + 1}'
        )
    return "\n".join(lines) + "\n"


def test_ten_times_max_contexts_submits_exactly_max_contexts(fixture_server, aggregator, dd_run_check):
    limit = 500
    url = fixture_server.set_payload("/big-hubble/metrics", hubble_flows(10 * limit))
    check = CiliumCheck("cilium", {}, [{"hubble_endpoint": url, "max_contexts": {"hubble": limit}}])
    dd_run_check(check)
    flows = aggregator.metrics("cilium.hubble.flows_processed.count")
    assert len(flows) == limit
    # The first contexts of the payload are the ones kept.
    assert {t for m in flows for t in m.tags if t.startswith("source:")} == {f"source:ns-{i}/app" for i in range(limit)}
    aggregator.assert_metric("cilium.check.contexts", limit, tags=["cilium_component:hubble", f"endpoint:{url}"])
    aggregator.assert_metric("cilium.check.contexts_dropped", 9 * limit)
    warnings = check.get_warnings()  # what the Agent collects after each run
    assert len(warnings) == 1 and "more than its max_contexts of 500" in warnings[0]
    aggregator.reset()
    dd_run_check(check)
    assert len(aggregator.metrics("cilium.hubble.flows_processed.count")) == limit
    assert check.get_warnings() == [], "warned once, not at every run"


def test_hubble_has_a_default_budget_and_agent_none(fixture_server, aggregator, dd_run_check):
    assert HUBBLE.max_contexts == 10000
    url = fixture_server.set_payload("/default-hubble/metrics", hubble_flows(HUBBLE.max_contexts + 50))
    dd_run_check(CiliumCheck("cilium", {}, [{"hubble_endpoint": url}]))
    assert len(aggregator.metrics("cilium.hubble.flows_processed.count")) == HUBBLE.max_contexts
    aggregator.assert_metric("cilium.check.contexts_dropped", 50)


def test_unbounded_hubble_labels_are_summed_away_by_default(fixture_server, aggregator, dd_run_check):
    text = (
        "# TYPE hubble_drop_total counter\n"
        'hubble_drop_total{protocol="TCP",reason="POLICY_DENIED",source_pod="web-1",source_ip="10.0.0.1"} 3\n'
        'hubble_drop_total{protocol="TCP",reason="POLICY_DENIED",source_pod="web-2",source_ip="10.0.0.2"} 4\n'
        'hubble_drop_total{protocol="UDP",reason="POLICY_DENIED",source_pod="web-2",source_ip="10.0.0.2"} 5\n'
        "# TYPE hubble_dns_queries_total counter\n"
        'hubble_dns_queries_total{rcode="",qtypes="A",ips_returned="0",query="a.example."} 2\n'
        'hubble_dns_queries_total{rcode="",qtypes="A",ips_returned="0",query="b.example."} 6\n'
    )
    url = fixture_server.set_payload("/pods-hubble/metrics", text)
    dd_run_check(CiliumCheck("cilium", {}, [{"hubble_endpoint": url}]))
    base = ["cilium_component:hubble", f"endpoint:{url}"]
    aggregator.assert_metric(
        "cilium.hubble.drop.count", 7, tags=["protocol:TCP", "reason:POLICY_DENIED", *base], count=1
    )
    aggregator.assert_metric("cilium.hubble.drop.count", 5, tags=["protocol:UDP", "reason:POLICY_DENIED", *base])
    aggregator.assert_metric(
        "cilium.hubble.dns_queries.count", 8, tags=["rcode:", "qtypes:A", "ips_returned:0", *base]
    )

    aggregator.reset()
    opted_in = {"hubble_endpoint": url, "hubble_unbounded_labels": ["source_pod"]}
    dd_run_check(CiliumCheck("cilium", {}, [opted_in]))
    pods = {t for m in aggregator.metrics("cilium.hubble.drop.count") for t in m.tags if t.startswith("source_pod:")}
    assert pods == {"source_pod:web-1", "source_pod:web-2"}
    assert not [t for m in aggregator.metrics("cilium.hubble.drop.count") for t in m.tags if "source_ip" in t]


def test_summed_histograms_stay_consistent(fixture_server, aggregator, dd_run_check):
    lines = ["# TYPE hubble_http_request_duration_seconds histogram"]
    for pod, counts in (("a", (1, 3, 4)), ("b", (2, 2, 5))):
        labels = f'method="GET",reporter="server",source_pod="{pod}"'
        for le, n in zip(("0.1", "1", "+Inf"), counts):
            lines.append(f'hubble_http_request_duration_seconds_bucket{{{labels},le="{le}"}} {n}')
        lines.append(f"hubble_http_request_duration_seconds_sum{{{labels}}} 1.5")
        lines.append(f"hubble_http_request_duration_seconds_count{{{labels}}} {counts[-1]}")
    url = fixture_server.set_payload("/hist-hubble/metrics", "\n".join(lines) + "\n")
    dd_run_check(CiliumCheck("cilium", {}, [{"hubble_endpoint": url}]))
    name = "cilium.hubble.http_request_duration.seconds"
    aggregator.assert_metric(f"{name}.count", 9)
    aggregator.assert_metric(f"{name}.sum", 3.0)
    buckets = {t: m.value for m in aggregator.metrics(f"{name}.bucket") for t in m.tags if t.startswith("upper_bound")}
    assert buckets == {"upper_bound:0.1": 3, "upper_bound:1.0": 5}
