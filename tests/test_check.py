"""The check against the fixture server: every mapped metric, per Cilium release and component."""

import pytest
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.base.utils.tagging import GENERIC_TAGS
from datadog_checks.dev.utils import get_metadata_metrics, get_service_checks

from datadog_checks.cilium import CiliumCheck
from cilium_dev.fixtures import closed_url
from cilium_dev.fixtures.payloads import FIXTURE_CASES, render
from cilium_check.detect import identify
from cilium_check.mapping import parse_version, rows_for
from cilium_check.openmetrics_map import metadata_name

from cilium_check.components import COMPONENTS
from cilium_check.self_metrics import SELF_METRICS

COMPONENT_OPTIONS = {c.name: c.option for c in COMPONENTS}


def expected_submissions(component, version):
    """(name, metadata type) of every metric the table says a release of a component sends."""
    v = parse_version(version)
    return {(s.name, s.metadata_type) for row in rows_for(component) if row.in_version(v) for s in row.submissions()}


def run(check, dd_run_check, times=2):
    for _ in range(times):
        dd_run_check(check)


@pytest.mark.parametrize("component,version", FIXTURE_CASES)
def test_every_mapped_metric_of_a_release(component, version, fixture_server, aggregator, datadog_agent, dd_run_check):
    url = fixture_server.url(component, version)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, COMPONENT_OPTIONS[component]: url, "tags": ["team:net"]}])
    check.check_id = "test:123"
    run(check, dd_run_check)

    expected = expected_submissions(component, version) | {(s.name, s.metadata_type) for s in SELF_METRICS}
    assert len(expected) > len(SELF_METRICS), f"the table has no {component} metric for Cilium {version}"
    types = {"gauge": aggregator.GAUGE, "count": aggregator.MONOTONIC_COUNT}
    for name, metadata_type in sorted(expected):
        aggregator.assert_metric(name, metric_type=types[metadata_type], at_least=1)
        aggregator.assert_metric_has_tag(name, f"endpoint:{url}")
        aggregator.assert_metric_has_tag(name, f"cilium_component:{component}")
        aggregator.assert_metric_has_tag(name, "team:net")
    aggregator.assert_all_metrics_covered()
    aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)
    aggregator.assert_service_check(
        "cilium.openmetrics.health",
        ServiceCheck.OK,
        tags=["team:net", f"cilium_component:{component}", f"endpoint:{url}"],
        count=2,
    )
    aggregator.assert_service_checks(get_service_checks())

    key = metadata_name(component)
    if any(row.type == "metadata" and row.in_version(parse_version(version)) for row in rows_for(component)):
        major, minor = version.split(".")
        datadog_agent.assert_metadata(
            "test:123", {f"{key}.major": major, f"{key}.minor": minor, f"{key}.scheme": "semver"}
        )
    else:
        # The operator exposes its release only since Cilium 1.17.
        datadog_agent.assert_metadata_count(0)


def test_counters_flush_after_the_first_scrape(fixture_server, aggregator, dd_run_check):
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent")}])
    dd_run_check(check)
    first = aggregator.metrics("cilium.drop_count.count")
    assert first and not any(m.flush_first_value for m in first)
    aggregator.reset()
    dd_run_check(check)
    second = aggregator.metrics("cilium.drop_count.count")
    assert second and all(m.flush_first_value for m in second)
    assert sum(m.value for m in second) > sum(m.value for m in first), "counters grow between scrapes"


def test_one_instance_scrapes_agent_and_operator(fixture_server, aggregator, datadog_agent, dd_run_check):
    agent, operator = fixture_server.url("agent"), fixture_server.url("operator")
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": agent, "operator_endpoint": operator}])
    check.check_id = "test:both"
    dd_run_check(check)
    aggregator.assert_metric_has_tag("cilium.endpoint.state", "cilium_component:agent")
    aggregator.assert_metric_has_tag("cilium.operator.process.resident_memory.bytes", f"endpoint:{operator}")
    for url, component in ((agent, "agent"), (operator, "operator")):
        aggregator.assert_service_check(
            "cilium.openmetrics.health", ServiceCheck.OK, tags=[f"cilium_component:{component}", f"endpoint:{url}"]
        )
    datadog_agent.assert_metadata("test:both", {"version.minor": "20", "operator_version.minor": "20"})


def test_no_reserved_tag_is_submitted(fixture_server, aggregator, dd_run_check):
    check = CiliumCheck(
        "cilium", {}, [{"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent"), "operator_endpoint": fixture_server.url("operator")}]
    )
    dd_run_check(check)
    for name in aggregator.metric_names:
        for metric in aggregator.metrics(name):
            keys = [tag.split(":", 1)[0] for tag in metric.tags]
            assert not set(keys) & set(GENERIC_TAGS), (name, metric.tags)
            assert keys.count("endpoint") == 1 and keys.count("cilium_component") == 1, (name, metric.tags)


def test_down_endpoint_is_critical_and_named_and_the_other_is_still_scraped(
    fixture_server, aggregator, dd_run_check
):
    down = fixture_server.closed_url()
    operator = fixture_server.url("operator")
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": down, "operator_endpoint": operator}])
    with pytest.raises(Exception, match=f"{down}: connection refused \\(nothing listens on that port\\). `agent_endpoint` found no Cilium agent metrics"):
        dd_run_check(check)
    aggregator.assert_service_check(
        "cilium.openmetrics.health",
        ServiceCheck.CRITICAL,
        tags=["cilium_component:agent", f"endpoint:{down}"],
        message=f".*{down}.*connection refused.*prometheus.enabled=true",
    )
    aggregator.assert_service_check("cilium.openmetrics.health", ServiceCheck.OK, tags=[
        "cilium_component:operator", f"endpoint:{operator}"
    ])
    aggregator.assert_metric("cilium.operator.process.resident_memory.bytes")


def test_http_error_is_critical_with_the_status(fixture_server, aggregator, dd_run_check):
    url = fixture_server.set_fault("/broken/metrics", "status", code=500)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    with pytest.raises(Exception, match=f"{url}.*500"):
        dd_run_check(check)
    aggregator.assert_service_check("cilium.openmetrics.health", ServiceCheck.CRITICAL, message=".*500.*")


def test_metrics_endpoint_recognises_the_component(fixture_server, aggregator, datadog_agent, dd_run_check):
    operator = fixture_server.url("operator")
    check = CiliumCheck("cilium", {}, [{"metrics_endpoint": operator}])
    check.check_id = "test:detect"
    dd_run_check(check)
    aggregator.assert_metric_has_tag("cilium.operator.process.resident_memory.bytes", "cilium_component:operator")
    aggregator.assert_service_check(
        "cilium.openmetrics.health", ServiceCheck.OK, tags=["cilium_component:operator", f"endpoint:{operator}"]
    )
    datadog_agent.assert_metadata("test:detect", {"operator_version.minor": "20"})


def test_metrics_endpoint_that_serves_no_cilium_metrics(fixture_server, aggregator, dd_run_check):
    url = fixture_server.set_payload("/not-cilium/metrics", "# TYPE go_goroutines gauge\ngo_goroutines 7\n")
    check = CiliumCheck("cilium", {}, [{"metrics_endpoint": url}])
    with pytest.raises(Exception, match=f"{url}: serves Prometheus metrics, but none of Cilium's"):
        dd_run_check(check)
    aggregator.assert_service_check(
        "cilium.openmetrics.health", ServiceCheck.CRITICAL, tags=["cilium_component:unknown", f"endpoint:{url}"]
    )


def test_gzip_is_requested_and_decoded(fixture_server, aggregator, dd_run_check):
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent")}])
    dd_run_check(check)
    headers = fixture_server.requests[-1].headers
    assert "gzip" in headers.get("Accept-Encoding", "")
    assert headers.get("Accept") == "text/plain"
    aggregator.assert_metric("cilium.endpoint.state")


def test_untyped_exposition_still_gets_the_table_types(fixture_server, aggregator, dd_run_check):
    # Some relabelling proxies drop `# TYPE` lines: explicit types keep counters counters.
    url = fixture_server.set_payload(
        "/untyped/metrics",
        'cilium_drop_count_total{reason="Policy denied",direction="INGRESS"} 12\n'
        'cilium_act_new_connections_total{zone="a"} 3\n',
    )
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}])
    dd_run_check(check)
    aggregator.assert_metric("cilium.drop_count.count", 12, metric_type=aggregator.MONOTONIC_COUNT)
    aggregator.assert_metric("cilium.act.new_connections", 3, metric_type=aggregator.GAUGE)


def test_standard_options_take_effect_on_the_scrape(fixture_server, aggregator, dd_run_check):
    url = fixture_server.url("agent")
    instance = {
        "use_openmetrics": True,
        "agent_endpoint": url,
        "exclude_metrics": ["cilium_feature_.*", "cilium_endpoint_state"],
        "exclude_labels": ["direction"],
        "rename_labels": {"reason": "drop_reason"},
        "exclude_metrics_by_labels": {"map_name": ["^cilium_ct"]},
        "collect_histogram_buckets": False,
        "tag_by_endpoint": False,
    }
    dd_run_check(CiliumCheck("cilium", {}, [instance]))
    assert not [n for n in aggregator.metric_names if n.startswith("cilium.feature.")]
    aggregator.assert_metric("cilium.endpoint.state", count=0)
    for metric in aggregator.metrics("cilium.drop_count.count"):
        assert not any(t.startswith(("direction:", "reason:", "endpoint:")) for t in metric.tags)
        assert any(t.startswith("drop_reason:") for t in metric.tags)
    assert not any("map_name:cilium_ct" in t for m in aggregator.metrics("cilium.bpf.map_pressure") for t in m.tags)
    assert aggregator.metrics("cilium.bpf.map_pressure")
    assert not [n for n in aggregator.metric_names if n.endswith(".bucket")]
    aggregator.assert_metric("cilium.endpoint.regeneration_time_stats.seconds.sum")


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_telemetry_reports_the_payload_size_of_a_streamed_answer(fixture_server, aggregator, dd_run_check, encoding):
    # Cilium streams its answer without a Content-Length: the size is what the bounded reader read,
    # and the body is still parsed (the stock method would have read it all before the parser).
    url = fixture_server.url("operator")
    instance = {"use_openmetrics": True, "operator_endpoint": url, "telemetry": True, "extra_headers": {"Accept-Encoding": encoding}}
    check = CiliumCheck("cilium", {}, [instance])
    dd_run_check(check)
    from cilium_dev.fixtures.payloads import render

    body = render("operator", "1.20", fixture_server.scrapes("operator") - 1)
    aggregator.assert_metric("cilium.telemetry.payload.size", value=len(body.encode()), count=1)
    aggregator.assert_metric("cilium.operator.process.resident_memory.bytes", at_least=1)
    aggregator.assert_service_check("cilium.openmetrics.health", ServiceCheck.OK, count=1)


@pytest.mark.parametrize("component,version", FIXTURE_CASES)
def test_every_fixture_payload_is_recognised(component, version):
    """`metrics_endpoint` recognition on what each component serves, the DNS proxy's ten plain
    `cilium_hive_*` families and the relay's unprefixed `process_*` included."""
    lines = render(component, version, 1).split("\n")
    assert identify(lines) == component


def test_a_relay_before_its_pool_metric_is_recognised_by_its_grpc_families():
    # Before Cilium 1.15 the relay serves only grpc_server_* and process_*.
    lines = render("hubble-relay", "1.14").split("\n")
    assert not any(line.startswith("hubble_relay_") for line in lines)
    assert identify(lines) == "hubble-relay"


def test_own_names_outweigh_any_number_of_shared_cilium_names():
    shared = [f'cilium_hive_jobs_runs_total{{module_id="m{i}",job_name="j"}} 1' for i in range(50)]
    assert identify(shared) == "agent"
    assert identify([*shared, "standalone_dns_proxy_proxy_bootstrap_errors 0"]) == "standalone-dns-proxy"


def test_a_dns_proxy_that_is_not_there_names_the_helm_value(aggregator, dd_run_check):
    url = closed_url()
    check = CiliumCheck("cilium", {}, [{"standalone_dns_proxy_endpoint": url}])
    with pytest.raises(Exception) as raised:
        dd_run_check(check)
    message = str(raised.value)
    assert "`standaloneDnsProxy.enabled=true`" in message and "port 9961 since Cilium 1.20" in message


def test_the_relay_is_tagged_and_its_version_free_payload_scraped(fixture_server, aggregator, dd_run_check):
    url = fixture_server.url("hubble-relay")
    check = CiliumCheck("cilium", {}, [{"metrics_endpoint": url}])
    dd_run_check(check)
    aggregator.assert_metric(
        "cilium.hubble_relay.pool.peer_connection_status",
        50,
        tags=["cilium_component:hubble-relay", f"endpoint:{url}", "status:READY"],
    )
    aggregator.assert_service_check(
        "cilium.openmetrics.health", ServiceCheck.OK, tags=["cilium_component:hubble-relay", f"endpoint:{url}"]
    )


def test_hubble_serving_the_grpc_server_families_is_still_hubble():
    """Hubble's metrics server registers go-grpc-prometheus too: its `grpc_server_*` lines, however
    many, do not make it the relay."""
    lines = render("hubble", "1.20", 1).split("\n")
    grpc = [
        f'grpc_server_handled_total{{grpc_code="{code}",grpc_method="GetFlows",grpc_service="observer.Observer",grpc_type="server_stream"}} 0'
        for code in range(17)
        for _ in range(10)
    ]
    assert identify([*lines, *grpc]) == "hubble"
    assert identify(grpc) == "hubble-relay"
