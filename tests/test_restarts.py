"""Counters across outages and restarts, held to the Agent's monotonic_count semantics.

`AgentAggregator` follows the Agent's `MonotonicCount` (pkg/metrics/monotonic_count.go): the
difference with the previous sample of the context, a lower sample dropped unless the submission
flushes first values, in which case it counts from 0. Each scenario runs one check instance
against an endpoint whose counter goes up by 10 per scrape, and checks what the Agent would have
counted in each interval: neither a spike (the counter's whole history) nor a lost interval.
"""

from __future__ import annotations

import pytest

from cilium_check.agent_sim.aggregator import AgentAggregator
from cilium_dev.fixtures.server import FixtureServer
from datadog_checks.cilium import CiliumCheck

AGENT = """\
# HELP cilium_drop_count_total Dropped packets
# TYPE cilium_drop_count_total counter
cilium_drop_count_total{{direction="INGRESS",reason="Policy denied"}} {drops}
# HELP cilium_process_start_time_seconds Start time
# TYPE cilium_process_start_time_seconds gauge
cilium_process_start_time_seconds {started}
# HELP cilium_unreachable_nodes Unreachable nodes
# TYPE cilium_unreachable_nodes gauge
cilium_unreachable_nodes 0
"""
HUBBLE = """\
# HELP hubble_flows_processed_total Flows
# TYPE hubble_flows_processed_total counter
hubble_flows_processed_total{{protocol="TCP",subtype="to-endpoint",type="Trace",verdict="FORWARDED"}} {drops}
# HELP hubble_lost_events_total Lost events
# TYPE hubble_lost_events_total counter
hubble_lost_events_total{{source="observer_events_queue"}} 0
"""
KVSTOREMESH = """\
# HELP cilium_kvstoremesh_kvstore_operations_duration_seconds ops
# TYPE cilium_kvstoremesh_kvstore_operations_duration_seconds histogram
cilium_kvstoremesh_kvstore_operations_duration_seconds_bucket{{action="get",kind="Leased",outcome="success",scope="nodes/v1",le="+Inf"}} {drops}
cilium_kvstoremesh_kvstore_operations_duration_seconds_sum{{action="get",kind="Leased",outcome="success",scope="nodes/v1"}} 1
cilium_kvstoremesh_kvstore_operations_duration_seconds_count{{action="get",kind="Leased",outcome="success",scope="nodes/v1"}} {drops}
# HELP process_start_time_seconds Start time
# TYPE process_start_time_seconds gauge
process_start_time_seconds {started}
"""
DOWN = None  # a step during which the endpoint fails

# (counter value, process start time) per scrape; the counter grows by 10 per scrape.
SCENARIOS = {
    # Cilium restarted during a two-scrape outage: the recovery interval counts the 7 since.
    "restart during the outage": [(100, 1000), (110, 1000), DOWN, DOWN, (7, 2000), (17, 2000)],
    # No restart: the recovery interval counts the 30 of the outage and its own, no more.
    "no restart during the outage": [(100, 1000), (110, 1000), DOWN, DOWN, (140, 1000), (150, 1000)],
    # A restart between two good scrapes: the 5 since it are counted.
    "restart without an outage": [(100, 1000), (110, 1000), (5, 2000), (15, 2000)],
}
# What the Agent counts for each scrape (None: no point; the first scrape of a check counts nothing).
EXPECTED = {
    "restart during the outage": [None, 10, None, None, 7, 10],
    "no restart during the outage": [None, 10, None, None, 30, 10],
    "restart without an outage": [None, 10, 5, 10],
}


def counted(flush, name: str) -> float | None:
    points = [s["points"][-1][1] for s in flush.series if s["metric"] == name]
    return sum(points) if points else None


def run_scenario(steps, template: str, option: str, names: list[str], **options) -> list[list[float | None]]:
    aggregator = AgentAggregator()
    aggregator.stub.reset()  # the stub is process-wide: nothing of an earlier test
    with FixtureServer() as server:
        path = "/restart/metrics"
        url = server.set_payload(path, template.format(drops=0, started=1))
        check = CiliumCheck("cilium", {}, [{option: url, **options}])
        results = []
        for step in steps:
            if step is DOWN:
                server.set_fault(path, "status", code=503)
            else:
                server.clear_fault(path)
                server.set_payload(path, template.format(drops=step[0], started=step[1]))
            error = check.run()
            if step is not DOWN:  # a failing endpoint is reported at its first failing run, then every tenth
                assert error == "", error
            flush = aggregator.flush()
            results.append([counted(flush, name) for name in names])
        check.cancel()
    return results


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "stock"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_agent_counters_across_outages_and_restarts(scenario, fast_path):
    results = run_scenario(
        SCENARIOS[scenario], AGENT, "agent_endpoint", ["cilium.drop_count.count"], use_openmetrics=True, fast_path=fast_path
    )
    assert [r[0] for r in results] == EXPECTED[scenario]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_legacy_mode_counts_the_same(scenario):
    results = run_scenario(SCENARIOS[scenario], AGENT, "agent_endpoint", ["cilium.drop_count.total"], use_openmetrics=False)
    assert [r[0] for r in results] == EXPECTED[scenario]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_component_with_an_unprefixed_start_time(scenario):
    """kvstoremesh's process collector is unprefixed and unmapped: it is read all the same."""
    results = run_scenario(
        SCENARIOS[scenario],
        KVSTOREMESH,
        "kvstoremesh_endpoint",
        ["cilium.kvstoremesh.kvstore.operations_duration.seconds.count"],
        use_openmetrics=True,
    )
    assert [r[0] for r in results] == EXPECTED[scenario]


def test_hubble_takes_the_restart_verdict_of_its_agent():
    """Hubble has no start time: beside its agent in one instance, the agent's restart tells."""
    steps = SCENARIOS["restart during the outage"]
    aggregator = AgentAggregator()
    aggregator.stub.reset()
    with FixtureServer() as server:
        urls = {}
        for name, template in (("agent", AGENT), ("hubble", HUBBLE)):
            urls[name] = server.set_payload(f"/{name}/metrics", template.format(drops=0, started=1))
        check = CiliumCheck("cilium", {}, [{"agent_endpoint": urls["agent"], "hubble_endpoint": urls["hubble"]}])
        flows = []
        for step in steps:
            for name, template in (("agent", AGENT), ("hubble", HUBBLE)):
                path = f"/{name}/metrics"
                if step is DOWN:
                    server.set_fault(path, "status", code=503)
                else:
                    server.clear_fault(path)
                    server.set_payload(path, template.format(drops=step[0], started=step[1]))
            check.run()
            flows.append(counted(aggregator.flush(), "cilium.hubble.flows_processed.count"))
        check.cancel()
    assert flows == EXPECTED["restart during the outage"]


def test_without_a_start_time_the_stock_behaviour_remains():
    """Hubble alone: nothing tells whether it restarted, so no first value is flushed after an outage."""
    results = run_scenario(
        SCENARIOS["restart during the outage"], HUBBLE, "hubble_endpoint", ["cilium.hubble.flows_processed.count"]
    )
    # The 7 counted since the restart are dropped (the interval counts 0), as stock OpenMetrics V2
    # drops them; no spike.
    assert [r[0] for r in results] == [None, 10, None, None, 0, 10]
