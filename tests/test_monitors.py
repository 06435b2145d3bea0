"""The shipped monitors judged on what the check sends: quiet on a healthy cluster, firing on a sick one.

Each monitor's query is evaluated (`cilium_check.queries`, as the dashboard preview and `doctor`
do) on two runs of the check against the fixture server, healthy and in each scenario of
`cilium_dev/fixtures/scenarios.py`; and each monitor's metrics must exist in every Cilium release
its description says it covers, so a monitor on a family Cilium removed fails here.
"""

from __future__ import annotations

import re

import pytest

from cilium_check import monitors
from cilium_check.agent_sim.runner import run_instance
from cilium_check.components import BY_NAME, COMPONENTS
from cilium_check.mapping import format_version, load_table, parse_version
from cilium_check.queries import Evaluator
from cilium_check.self_metrics import SELF_METRICS
from cilium_dev.fixtures import CURRENT, PRERELEASE, FixtureServer, serves
from cilium_dev.fixtures.scenarios import SCENARIOS
from datadog_checks.cilium import CiliumCheck

MONITORS = {m.key: m for m in monitors.load()}
TABLE = load_table()
LATEST = max(row.since for row in TABLE)  # the newest release the table knows (a pre-release included)
PAUSE = 0.2


@pytest.fixture(scope="module")
def server():
    with FixtureServer() as srv:
        yield srv


def two_runs(server, version: str, scenario: str | None = None, components=None):
    """Every component of `version` (or those named) in one instance, run twice as `--check-rate` does."""
    names = components or [c.name for c in COMPONENTS if serves(c.name, version)]
    instance = {BY_NAME[n].option: server.url(n, version, scenario) for n in names} | {"use_openmetrics": True}
    result = run_instance(CiliumCheck, "cilium", {}, instance, times=2, pause=PAUSE)
    assert result.loaded, result.load_error
    return result


def judgements(result) -> dict[str, monitors.Judgement]:
    first, last = result.runs[0], result.runs[-1]
    evaluator = Evaluator(last.flush.series, last.started - first.started, first.flush.series)
    checks = [run.flush.service_checks for run in result.runs]
    return {key: monitors.judge(m, evaluator, checks) for key, m in MONITORS.items()}


def test_every_monitor_states_the_releases_it_covers():
    for key, monitor in MONITORS.items():
        assert monitor.covers, f"{key}: the description must say 'Covers Cilium X.Y and later.' or 'Covers Cilium X.Y to X.Z.'"


@pytest.mark.parametrize("key", sorted(MONITORS))
def test_the_metrics_of_a_monitor_exist_in_every_release_it_covers(key):
    monitor = MONITORS[key]
    since, until = monitor.covers
    releases = [(1, minor) for minor in range(since[1], (until or LATEST)[1] + 1)]
    for metric in monitors.metrics_of(monitor):
        if metric in {s.name for s in SELF_METRICS}:
            continue  # the check's own, in every release
        rows = [row for row in TABLE if any(s.name == metric for s in row.submissions())]
        assert rows, f"{key}: no table row submits {metric}"
        absent = [format_version(v) for v in releases if not any(row.in_version(v) for row in rows)]
        assert absent == [], f"{key}: {metric} does not exist in Cilium {', '.join(absent)}"


def test_a_monitor_on_a_removed_family_is_caught():
    """The check above can fail: the 1.14-only import-errors counter, claimed for later releases."""
    monitor = MONITORS["policy_import_errors"]
    rows = [row for row in TABLE if row.wire_name == "cilium_policy_import_errors_total"]
    assert monitor.covers[1] == (1, 14)
    assert not any(row.in_version((1, 15)) for row in rows)


@pytest.mark.parametrize("version", [CURRENT, PRERELEASE, "1.14"])
def test_every_monitor_is_quiet_on_the_healthy_fixture(server, version):
    judged = judgements(two_runs(server, version))
    fired = {key: [(f.level, f.group, f.value) for f in j.findings] for key, j in judged.items() if j.findings}
    assert fired == {}
    # quiet because healthy, not because nothing was evaluated
    assert sum(1 for j in judged.values() if j.values) >= 15


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_fires_its_monitors(server, name):
    scenario = SCENARIOS[name]
    version = scenario.version or CURRENT
    result = two_runs(server, version, name)
    assert result.stats["LastError"] == ""
    judged = judgements(result)
    for key in scenario.monitors:
        judgement = judged[key]
        assert judgement.findings, f"{key} did not fire on {name}: {judgement.unknown or judgement.values}"
        assert any(f.level == "critical" for f in judgement.findings), (key, judgement.findings)
        # where: every group tag of the finding has a value, not N/A
        for finding in judgement.findings:
            assert all(v != "N/A" for k, v in finding.group.items() if k != "kube_cluster_name"), finding.group
    # nothing else fires: a scenario is one problem
    others = {key for key, j in judged.items() if j.findings} - set(scenario.monitors)
    assert others == set()


def test_every_metric_monitor_has_a_scenario_that_fires_it():
    covered = {key for s in SCENARIOS.values() for key in s.monitors}
    judged_by_history = {k for k, m in MONITORS.items() if "anomalies(" in m.query}
    no_data_monitors = {k for k, m in MONITORS.items() if m.type == "service check" or k == "agent_metrics_missing"}
    assert set(MONITORS) - covered - judged_by_history - no_data_monitors == set()


def test_an_endpoint_down_fires_the_health_monitor(server):
    url = server.set_fault("/down/metrics", "status", code=503)
    result = run_instance(CiliumCheck, "cilium", {}, {"agent_endpoint": url, "use_openmetrics": True}, times=2, pause=PAUSE)
    judged = judgements(result)
    (finding,) = judged["openmetrics_health"].findings
    assert finding.level == "critical" and finding.group["endpoint"] == url
    # the agent sends nothing: its "metrics stopped arriving" monitor has no data
    assert judged["agent_metrics_missing"].unknown == "no data"


def test_history_bound_monitors_say_so():
    evaluator = Evaluator([], 15.0)
    judgement = monitors.judge(MONITORS["unreachable_nodes_anomaly"], evaluator)
    assert judgement.findings == [] and "needs more history" in judgement.unknown


def test_first_checks_are_read_from_the_message():
    steps = MONITORS["bpf_map_pressure"].first_checks
    assert len(steps) >= 2 and all(step and not re.match(r"^\d", step) for step in steps)


def test_scenarios_change_only_families_the_table_has():
    for scenario in SCENARIOS.values():
        version = parse_version(scenario.version or CURRENT)
        for component, changes in scenario.changes.items():
            for change in changes:
                assert any(
                    row.component == component and row.wire_name == change.family and row.in_version(version)
                    for row in TABLE
                ), (scenario.name, component, change.family)


def series(metric: str, value: float, tags=(), kind: str = "count", host: str = "node-1") -> dict:
    return {"metric": metric, "points": [[0, value]], "tags": list(tags), "host": host, "type": kind}


def test_one_error_in_the_interval_is_not_taken_for_a_windowful():
    """`sum(last_5m) ... > 15`: one sync error between two scrapes 15 s apart is a warning (> 0), not
    twenty errors in five minutes."""
    now = [series("cilium.kvstoremesh.kvstore.sync_errors.count", 1, ["source_cluster:c2"])]
    judgement = monitors.judge(MONITORS["kvstoremesh_sync_errors"], Evaluator(now, 15.0))
    assert [(f.level, f.value) for f in judgement.findings] == [("warning", 1)]


def test_diff_is_taken_after_the_group_is_aggregated():
    """Datadog aggregates `max:` per group, then differentiates: 5->5 and 3->4 in one group is no change."""
    metric = "cilium.kvstoremesh.remote_cluster_failures"
    before = [series(metric, 5, ["target_cluster:c2", "a:1"], "gauge"), series(metric, 3, ["target_cluster:c2", "a:2"], "gauge")]
    now = [series(metric, 5, ["target_cluster:c2", "a:1"], "gauge"), series(metric, 4, ["target_cluster:c2", "a:2"], "gauge")]
    judgement = monitors.judge(MONITORS["kvstoremesh_remote_failing"], Evaluator(now, 15.0, before))
    assert judgement.findings == [] and judgement.values == {("host:node-1", "target_cluster:c2"): 0}
    now[0] = series(metric, 7, ["target_cluster:c2", "a:1"], "gauge")
    (finding,) = monitors.judge(MONITORS["kvstoremesh_remote_failing"], Evaluator(now, 15.0, before)).findings
    assert finding.value == 2
