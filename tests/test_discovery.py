"""Endpoints found among candidate URLs, wrong components caught, failures reported once."""

import logging

import pytest
from datadog_checks.base.constants import ServiceCheck

from datadog_checks.cilium import CiliumCheck
from cilium_check.endpoints import REPORT_EVERY


def paths_requested(server, url):
    path = url.split("127.0.0.1:", 1)[1].split("/", 1)[1]
    return sum(1 for r in server.requests if r.path == "/" + path)


def test_first_answering_candidate_is_used_and_remembered(fixture_server, aggregator, dd_run_check):
    closed = [fixture_server.closed_url(), fixture_server.closed_url()]
    agent = fixture_server.url("agent", "1.18")
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": [*closed, agent]}])
    before = paths_requested(fixture_server, agent)
    for _ in range(3):
        dd_run_check(check)
    # One probe to find it, then one scrape per run: no probing while it answers.
    assert paths_requested(fixture_server, agent) - before == 4
    aggregator.assert_metric_has_tag("cilium.endpoint.state", f"endpoint:{agent}")
    aggregator.assert_service_check(
        "cilium.openmetrics.health", ServiceCheck.OK, tags=["cilium_component:agent", f"endpoint:{agent}"], count=3
    )
    assert not [sc for sc in aggregator.service_checks("cilium.openmetrics.health") if sc.status != ServiceCheck.OK]


def test_closed_candidates_give_one_error_naming_them_all(fixture_server, aggregator, dd_run_check):
    closed = [fixture_server.closed_url() for _ in range(3)]
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": closed}])
    with pytest.raises(Exception) as error:
        dd_run_check(check)
    message = str(error.value)
    assert f"{closed[0]}: none of the 3 candidate URLs of `agent_endpoint` serves Cilium agent metrics" in message
    for url in closed:
        assert f"{url} (connection refused" in message
    assert "`prometheus.enabled=true`" in message
    (sc,) = aggregator.service_checks("cilium.openmetrics.health")
    assert sc.status == ServiceCheck.CRITICAL
    assert sc.tags == ["cilium_component:agent", f"endpoint:{closed[0]}"]
    assert all(url in sc.message for url in closed)


def test_a_moved_component_is_found_again(fixture_server, aggregator, dd_run_check):
    first = fixture_server.set_payload("/moved/a/metrics", "")
    second = fixture_server.url("operator")
    from cilium_dev.fixtures.payloads import render

    fixture_server.set_payload("/moved/a/metrics", render("operator", "1.20"))
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "operator_endpoint": [first, second]}])
    dd_run_check(check)
    aggregator.assert_metric_has_tag("cilium.operator.process.resident_memory.bytes", f"endpoint:{first}")
    fixture_server.set_fault("/moved/a/metrics", "status", code=503)
    with pytest.raises(Exception, match=f"error scraping endpoint {first}"):
        dd_run_check(check)
    aggregator.reset()
    dd_run_check(check)
    aggregator.assert_metric_has_tag("cilium.operator.process.resident_memory.bytes", f"endpoint:{second}")
    fixture_server.clear_fault("/moved/a/metrics")


def test_a_failing_endpoint_is_reported_at_the_first_run_then_every_tenth(fixture_server, aggregator, caplog):
    caplog.set_level(logging.ERROR)
    closed = fixture_server.closed_url()
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": closed}])
    errors = []
    runs = 2 * REPORT_EVERY + 5
    for _ in range(runs):
        errors.append(bool(check.run()))
    assert [i + 1 for i, failed in enumerate(errors) if failed] == [1, REPORT_EVERY + 1, 2 * REPORT_EVERY + 1]
    logged = [r for r in caplog.records if closed in r.getMessage()]
    assert len(logged) == 3
    statuses = [sc.status for sc in aggregator.service_checks("cilium.openmetrics.health")]
    assert statuses == [ServiceCheck.CRITICAL] * runs


def test_a_url_serving_another_component_is_rejected(fixture_server, aggregator, dd_run_check):
    operator = fixture_server.url("operator")
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": operator}])
    with pytest.raises(Exception, match=f"{operator}: serves the Cilium operator, not the agent"):
        dd_run_check(check)
    assert not aggregator.metric_names


def test_hubble_is_not_probed_beside_an_operator(fixture_server, aggregator, dd_run_check):
    # The Autodiscovery template covers agent and operator containers alike; Hubble runs in the agent.
    hubble = fixture_server.url("hubble")
    before = paths_requested(fixture_server, hubble)
    check = CiliumCheck("cilium", {}, [{"metrics_endpoint": fixture_server.url("operator"), "hubble_endpoint": hubble}])
    dd_run_check(check)
    assert paths_requested(fixture_server, hubble) == before
    assert not [n for n in aggregator.metric_names if n.startswith("cilium.hubble.")]


def test_hubble_beside_an_agent_is_scraped(fixture_server, aggregator, dd_run_check):
    hubble = fixture_server.url("hubble")
    check = CiliumCheck("cilium", {}, [{"metrics_endpoint": fixture_server.url("agent"), "hubble_endpoint": hubble}])
    dd_run_check(check)
    aggregator.assert_metric_has_tag("cilium.hubble.flows_processed.count", "cilium_component:hubble")


def test_optional_component_absent_is_not_an_error(fixture_server, aggregator, dd_run_check):
    closed = [fixture_server.closed_url(), fixture_server.closed_url()]
    instance = {"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent"), "hubble_endpoint": closed, "optional_components": ["hubble"]}
    check = CiliumCheck("cilium", {}, [instance])
    dd_run_check(check)
    dd_run_check(check)
    assert [sc.tags for sc in aggregator.service_checks("cilium.openmetrics.health")] == [
        ["cilium_component:agent", f"endpoint:{fixture_server.url('agent')}"]
    ] * 2


@pytest.mark.parametrize(
    "instance, message",
    [
        ({"agent_endpoint": []}, "`agent_endpoint`: .*the list of candidate URLs is empty"),
        ({"agent_endpoint": ["http://a:9962/metrics", "a:9090"]}, "`agent_endpoint`: candidate 2 of 2 is not an http"),
        ({"hubble_endpoint": "http://a:9965/metrics", "max_contexts": {"hubbel": 5}}, "'hubbel' is not a component"),
        ({"hubble_endpoint": "http://a:9965/metrics", "max_contexts": -1}, "0 for no limit"),
        ({"hubble_endpoint": "http://a:9965/metrics", "hubble_unbounded_labels": ["pod"]}, "pod is not one of"),
        (
            {"hubble_endpoint": "http://a:9965/metrics", "optional_components": ["hubbel"]},
            r"`optional_components\[0\]` must be 'agent'.*got a string \('hubbel'\)",
        ),
    ],
)
def test_discovery_options_are_validated(instance, message):
    from datadog_checks.base.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        CiliumCheck("cilium", {}, [instance])
