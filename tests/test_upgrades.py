"""One Datadog name per concept across Cilium renames: a dashboard keeps its series through an upgrade."""

from collections import defaultdict

import pytest

from datadog_checks.cilium import CiliumCheck
from cilium_check.components import BY_NAME
from cilium_check.mapping import format_version, load_table


def renamed_pairs():
    """(component, Datadog name, old row, new row) for every family Cilium renamed."""
    by_name = defaultdict(list)
    for row in load_table():
        if row.type != "metadata":
            by_name[(row.component, row.datadog_name, row.type)].append(row)
    for (component, name, _), rows in sorted(by_name.items()):
        rows.sort(key=lambda r: r.since)
        for old, new in zip(rows, rows[1:]):
            if old.wire_name != new.wire_name and old.until is not None and old.until >= (1, 10):
                yield pytest.param(component, old, new, id=f"{old.wire_name}->{new.wire_name}")


@pytest.mark.parametrize("component, old, new", list(renamed_pairs()))
def test_a_renamed_family_keeps_its_datadog_name(component, old, new, fixture_server, aggregator, dd_run_check):
    before, after = format_version(max(old.since, (1, 10))), format_version(new.since)
    names = []
    for version, row in ((before, old), (after, new)):
        aggregator.reset()
        url = fixture_server.url(component, version)
        dd_run_check(CiliumCheck("cilium", {}, [{"use_openmetrics": True, BY_NAME[component].option: url}]))
        submitted = {s.name for s in row.submissions()}
        assert submitted <= set(aggregator.metric_names), f"Cilium {version} ({row.wire_name})"
        names.append(submitted)
    assert names[0] == names[1]


def test_renames_the_issue_names_are_covered():
    pairs = {(p.values[1].wire_name, p.values[2].wire_name) for p in renamed_pairs()}
    assert ("cilium_operator_lbipam_ips_available_total", "cilium_operator_lbipam_ips_available") in pairs
    assert ("cilium_node_connectivity_status", "cilium_node_health_connectivity_status") in pairs


def test_the_release_that_exposes_both_names_counts_once(fixture_server, aggregator, dd_run_check):
    """Cilium 1.17 exposes node_connectivity_status and its successor: only the successor is sent."""
    url = fixture_server.url("agent", "1.17")
    dd_run_check(CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}]))
    statuses = aggregator.metrics("cilium.node_health.connectivity.status")
    assert statuses
    assert not [m for m in statuses if any(t.startswith("target_node_name:") for t in m.tags)]
    assert [m for m in statuses if any(t.startswith("status:") for t in m.tags)]


def test_an_old_release_alone_still_sends_the_old_family(fixture_server, aggregator, dd_run_check):
    url = fixture_server.url("agent", "1.16")
    dd_run_check(CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url}]))
    statuses = aggregator.metrics("cilium.node_health.connectivity.status")
    assert statuses and all(any(t.startswith("target_node_name:") for t in m.tags) for m in statuses)
