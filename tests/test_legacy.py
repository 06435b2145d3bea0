"""Upgrading from the bundled check without losing a series, in both of its modes.

`tests/data/bundled-cilium-check-legacy-names.csv` lists what the bundled check's legacy mode
(OpenMetrics V1, `use_openmetrics` false or absent) submits for every entry of its three map
versions, `bundled-cilium-check-names.csv` what its `use_openmetrics: true` mode submits. Each row
is served alone, with its wire type, and the check must submit those names with those types in the
matching mode. Legacy mode is also held to datadog-checks-base's own V1 class on every fixture
payload, and to the fixture releases row by row.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from datadog_checks.base import OpenMetricsBaseCheck
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.dev.utils import get_metadata_metrics, get_service_checks

from cilium_check.agent_sim.runner import run_instance
from cilium_check.components import BY_NAME
from cilium_check.mapping import Label, load_table, parse_version, rows_for
from cilium_check.tags import RESERVED_LABEL_RENAMES
from cilium_dev.fixtures.payloads import CURRENT, FIXTURE_CASES, FIXTURE_VERSIONS, render
from cilium_dev.fixtures.server import FixtureServer, closed_url
from cilium_dev.generate import legacy_type_conflicts
from datadog_checks.cilium import CiliumCheck

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
TYPES = {"gauge": 0, "monotonic_count": 3}  # the aggregator stub's submission types
HEALTH_V2, HEALTH_V1 = "cilium.openmetrics.health", "cilium.prometheus.health"

with open(DATA / "bundled-cilium-check-legacy-names.csv") as f:
    LEGACY = list(csv.DictReader(f))
with open(DATA / "bundled-cilium-check-names.csv") as f:
    CURRENT_NAMES = list(csv.DictReader(f))

# What the bundled check submits and this one does not, each with the reason the README gives.
LEGACY_DEVIATIONS = {
    # The 23167 map mapped `cilium_version` as a value-less gauge; the release is version metadata.
    ("agent", "cilium_version", "cilium.version"),
}
CURRENT_DEVIATIONS = {
    # The bundled check cut 8 characters off `_counter`: `k8s_client.api_cal.count`.
    ("agent", "cilium_k8s_client_api_calls_counter", "cilium.k8s_client.api_cal.count"),
}


def bundled_component(row: dict) -> str:
    if row.get("component"):
        return row["component"]
    if row["raw_metric"].startswith("cilium_operator_") or row["datadog_base_name"].startswith("cilium.operator."):
        return "operator"
    return "agent"


def served_row(component: str, raw_metric: str, wire_type: str):
    """The table row of a family, exposed with the given type, its labels in every release."""
    rows = [row for row in rows_for(component) if row.wire_name == raw_metric]
    assert rows, f"the table has no {component} row for {raw_metric}"
    labels = tuple(Label(name) for name in dict.fromkeys(label.name for row in rows for label in row.labels))
    return replace(rows[-1], type=wire_type, since=(1, 0), until=None, labels=labels)


def beside(component: str, wire_name: str) -> list:
    """Two families only this component serves, so that a family it shares with others (such as
    `cilium_hive_status`) is still recognised as this component's."""
    prefixes = BY_NAME[component].family_prefixes
    if not prefixes:
        return []
    own = [r for r in rows_for(component) if r.wire_name.startswith(prefixes) and r.wire_name != wire_name and r.until is None]
    return [replace(r, since=(1, 0)) for r in own[:2]]


def expected_current(fact: dict) -> set[tuple[str, int]]:
    kind = {"counter": 3, "gauge": 0, "histogram": 3, "summary": 3}[fact["wire_type"]]
    return {(name, 0 if name.endswith(".quantile") else kind) for name in fact["submitted_names"].split()}


def expected_legacy(fact: dict) -> set[tuple[str, int]]:
    pairs = (item.rsplit(":", 1) for item in fact["submitted"].split())
    return {(name, TYPES[kind]) for name, kind in pairs}


@pytest.fixture(scope="module")
def served():
    """One server for every compat row, each family alone on its own path."""
    with FixtureServer() as server:
        yield server


def submitted(aggregator) -> set[tuple[str, int]]:
    return {(m.name, m.type) for name in aggregator._metrics for m in aggregator._metrics[name]}


def run_row(served, aggregator, fact: dict, legacy: bool) -> set[tuple[str, int]]:
    component = bundled_component(fact)
    row = served_row(component, fact["raw_metric"], fact["wire_type"])
    path = f"/compat/{component}/{fact['raw_metric']}/{fact['wire_type']}/metrics"
    url = served.url_for(path)
    served.set_payload(path, render(component, CURRENT, 3, rows=[row, *beside(component, row.wire_name)]))
    aggregator.reset()
    check = CiliumCheck("cilium", {}, [{BY_NAME[component].option: url, "use_openmetrics": not legacy}])
    for _ in range(2):
        assert check.run() == ""
    return submitted(aggregator)


def coverage(served, aggregator, facts, legacy: bool, deviations) -> tuple[int, int, list]:
    expected_total = found_total = 0
    missing = []
    for fact in facts:
        expected = expected_legacy(fact) if legacy else expected_current(fact)
        key = bundled_component(fact), fact["raw_metric"]
        expected = {pair for pair in expected if (*key, pair[0]) not in deviations}
        got = run_row(served, aggregator, fact, legacy)
        expected_total += len(expected)
        found_total += len(expected & got)
        missing += [(key, pair) for pair in sorted(expected - got)]
    return found_total, expected_total, missing


def test_legacy_mode_submits_every_name_of_the_bundled_legacy_mode_with_its_type(served, aggregator):
    found, expected, missing = coverage(served, aggregator, LEGACY, True, LEGACY_DEVIATIONS)
    print(f"legacy mode: {found} of {expected} bundled name:type pairs ({len(LEGACY)} rows)")
    assert missing == []
    assert found == expected


def test_current_mode_submits_every_name_of_the_bundled_v2_mode_with_its_type(served, aggregator):
    found, expected, missing = coverage(served, aggregator, CURRENT_NAMES, False, CURRENT_DEVIATIONS)
    print(f"current mode: {found} of {expected} bundled names ({len(CURRENT_NAMES)} rows)")
    assert missing == []
    assert found == expected


def test_the_documented_deviations_are_in_the_compat_tables_and_the_readme():
    legacy = {(bundled_component(f), f["raw_metric"], n.rsplit(":", 1)[0]) for f in LEGACY for n in f["submitted"].split()}
    current = {(bundled_component(f), f["raw_metric"], n) for f in CURRENT_NAMES for n in f["submitted_names"].split()}
    assert LEGACY_DEVIATIONS <= legacy
    assert CURRENT_DEVIATIONS <= current
    readme = (ROOT / "README.md").read_text()
    for _, family, name in LEGACY_DEVIATIONS | CURRENT_DEVIATIONS:
        assert f"`{name}`" in readme and f"`{family}`" in readme, name


# -- every fixture release ------------------------------------------------------------------------


@pytest.mark.parametrize("version", FIXTURE_VERSIONS)
@pytest.mark.parametrize("component", ["agent", "operator"])
def test_bundled_legacy_names_on_each_fixture_release(fixture_server, aggregator, component, version):
    """On a release's whole payload, every legacy row whose family it exposes with that type is submitted."""
    v = parse_version(version)
    exposed = {(row.wire_name, row.type) for row in rows_for(component) if row.in_version(v)}
    check = CiliumCheck("cilium", {}, [{BY_NAME[component].option: fixture_server.url(component, version)}])
    assert check.settings.legacy  # one bundled-style endpoint, `use_openmetrics` absent
    for _ in range(2):
        assert check.run() == ""
    got = submitted(aggregator)
    checked = 0
    for fact in LEGACY:
        if fact["component"] != component or (fact["raw_metric"], fact["wire_type"]) not in exposed:
            continue
        for pair in expected_legacy(fact):
            if (component, fact["raw_metric"], pair[0]) not in LEGACY_DEVIATIONS:
                assert pair in got, (fact["raw_metric"], pair)
                checked += 1
    assert checked > 50
    # metadata.csv records each name with the current mode's type; legacy mode sends a histogram's
    # `.sum` and `.count` as gauges, as the bundled check does: those names are the known exceptions.
    aggregator.assert_metrics_using_metadata(
        get_metadata_metrics(), check_submission_type=True, exclude=list(legacy_type_conflicts())
    )
    aggregator.assert_service_checks(get_service_checks())


# -- held to datadog-checks-base's V1 class -------------------------------------------------------


def v1_instance(component: str, url: str) -> dict:
    """The bundled check's legacy instance, as its class builds it, with this table as its map."""
    mapping = {row.wire_name: row.legacy_base for row in rows_for(component) if row.type != "metadata"}
    return {
        "prometheus_url": url,
        "namespace": "cilium",
        "metrics": [mapping],
        "tags": ["team:net"],
        # V1 stops at 2,000 contexts; this check does not (a documented difference).
        "max_returned_metrics": 1_000_000,
        # Reserved labels get the `cilium_` prefix in both modes (a documented difference).
        "labels_mapper": dict(RESERVED_LABEL_RENAMES),
    }


def metric_submissions(aggregator) -> list[tuple]:
    return sorted(
        (m.name, m.type, m.value, tuple(sorted(m.tags)), m.hostname, m.flush_first_value)
        for name in aggregator._metrics
        if not name.startswith("cilium.check.")
        for m in aggregator._metrics[name]
    )


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "stock"])
@pytest.mark.parametrize("component,version", FIXTURE_CASES)
def test_legacy_mode_submits_what_the_v1_class_submits(fixture_server, aggregator, component, version, fast_path):
    path = f"/v1/{component}/{version}/metrics"
    url = fixture_server.url_for(path)
    runs = [render(component, version, scrape) for scrape in (3, 4)]

    def run_twice(check):
        for text in runs:
            fixture_server.set_payload(path, text)
            check.run() if isinstance(check, CiliumCheck) else check.check(check.instance)

    aggregator.reset()
    run_twice(OpenMetricsBaseCheck("cilium", {}, [v1_instance(component, url)]))
    v1 = metric_submissions(aggregator)
    v1_health = [(sc.status, sc.tags) for sc in aggregator.service_checks(HEALTH_V1)]
    aggregator.reset()
    instance = {BY_NAME[component].option: url, "use_openmetrics": False, "tags": ["team:net"], "fast_path": fast_path}
    run_twice(CiliumCheck("cilium", {}, [instance]))
    ours = metric_submissions(aggregator)
    # the V1 class read the payload: every sample line of it gave at least one submission
    assert len(v1) >= sum(1 for line in runs[-1].splitlines() if line and not line.startswith("#"))
    assert ours == v1
    assert [(sc.status, sc.tags) for sc in aggregator.service_checks(HEALTH_V1)] == v1_health
    assert aggregator.service_checks(HEALTH_V2) == []


def test_version_metadata_in_legacy_mode(fixture_server, aggregator, datadog_agent):
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": fixture_server.url("agent", "1.18")}])
    check.check_id = "test:legacy"
    assert check.run() == ""
    datadog_agent.assert_metadata("test:legacy", {"version.major": "1", "version.minor": "18", "version.scheme": "semver"})
    assert "legacy mode" in datadog_agent._metadata[("test:legacy", "collection_mode")]


# -- health checks -------------------------------------------------------------------------------


def test_legacy_health_check_is_ok_then_critical_with_the_url(fixture_server, aggregator):
    url = fixture_server.url("operator")
    check = CiliumCheck("cilium", {}, [{"operator_endpoint": url, "tags": ["team:net"]}])
    assert check.run() == ""
    aggregator.assert_service_check(HEALTH_V1, ServiceCheck.OK, tags=[f"endpoint:{url}", "team:net"], count=1)
    down = closed_url()
    check = CiliumCheck("cilium", {}, [{"operator_endpoint": down, "tags": ["team:net"]}])
    error = check.run()
    assert "connection refused" in error
    (critical,) = [sc for sc in aggregator.service_checks(HEALTH_V1) if sc.status == ServiceCheck.CRITICAL]
    assert critical.tags == [f"endpoint:{down}", "team:net"]
    assert critical.message.startswith(down) and "connection refused" in critical.message
    assert aggregator.service_checks(HEALTH_V2) == []
    aggregator.assert_service_checks(get_service_checks())


def test_legacy_metrics_carry_the_bundled_tags_only(fixture_server, aggregator):
    url = fixture_server.url("agent")
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": url, "tags": ["team:net"]}])
    assert check.run() == ""
    for name, metrics in aggregator._metrics.items():
        for metric in metrics:
            if name.startswith("cilium.check."):
                # The check's own metrics still say which endpoint they are about.
                assert f"endpoint:{url}" in metric.tags and "cilium_component:agent" in metric.tags
                continue
            assert "team:net" in metric.tags
            assert not any(tag.startswith(("endpoint:", "cilium_component:")) for tag in metric.tags), metric


# -- switching mode between two Agent restarts -----------------------------------------------------


def drop_count(series: list[dict], name: str) -> float:
    return sum(s["points"][-1][1] for s in series if s["metric"] == name)


def test_switching_mode_between_restarts_keeps_counting_without_a_spike():
    """Each restart is a new check instance: its first run flushes no counter, its second the delta."""
    with FixtureServer() as server:
        url = server.url("agent")
        for mode, name in ((False, "cilium.drop_count.total"), (True, "cilium.drop_count.count"), (False, "cilium.drop_count.total")):
            before = server.scrapes("agent")
            result = run_instance(CiliumCheck, "cilium", {}, {"agent_endpoint": url, "use_openmetrics": mode}, times=2, pause=0)
            assert [run.error for run in result.runs] == ["", ""]
            first, second = (run.flush.series for run in result.runs)
            # No value at the first run of a restart: no spike from the counter's whole history.
            assert drop_count(first, name) == 0
            assert not any(s["metric"].startswith("cilium.drop_count.") and s["type"] == "count" for s in first)
            # The second run counts what was dropped between the two scrapes, in either mode.
            growth = sum_of("cilium_drop_count_total", before + 1) - sum_of("cilium_drop_count_total", before)
            assert growth > 0
            assert drop_count(second, name) == pytest.approx(growth)
            other = "cilium.drop_count.count" if name.endswith(".total") else "cilium.drop_count.total"
            assert drop_count(second, other) == 0


def sum_of(family: str, scrape: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for metric in text_string_to_metric_families(render("agent", CURRENT, scrape)):
        for sample in metric.samples:
            if sample.name == family:
                total += sample.value
    return total


# -- what a user runs -----------------------------------------------------------------------------


def test_cilium_check_on_a_legacy_instance_prints_the_legacy_names(tmp_path, fixture_server):
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"init_config": {}, "instances": [{"agent_endpoint": fixture_server.url("agent")}]}))
    text = subprocess.run(
        [sys.executable, "-m", "cilium_check", "check", "-c", str(conf), "--check-rate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert text.returncode == 0, text.stderr
    assert '"metric": "cilium.drop_count.total"' in text.stdout
    assert '"metric": "cilium.drop_count.count"' not in text.stdout
    assert '"check": "cilium.prometheus.health"' in text.stdout
    assert "collection_mode: legacy mode" in text.stdout
    assert "set `use_openmetrics: true` in the instance for the current names" in text.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "cilium_check", "check", "-c", str(conf), "--json"], capture_output=True, text=True
    )
    (instance,) = json.loads(as_json.stdout)
    names = {s["metric"] for s in instance["aggregator"]["metrics"]}
    assert "cilium.agent.api_process_time.seconds.count" in names and "cilium.agent.api_process_time.seconds.bucket" not in names


@pytest.mark.parametrize(
    "path", ["conf.yaml.example", "datadog_checks/cilium/data/conf.yaml.example", "datadog_checks/cilium/data/auto_conf.yaml"]
)
def test_shipped_configurations_run_the_current_names(path):
    text = (ROOT / path).read_text().replace("%%host%%", "127.0.0.1").replace("%%port_prometheus%%", "9962")
    (instance,) = yaml.safe_load(text)["instances"]
    assert instance["use_openmetrics"] is True
    assert CiliumCheck("cilium", {}, [instance]).settings.legacy is False


def test_the_bundled_checks_autodiscovery_instance_keeps_legacy_mode():
    # The bundled check's auto_conf.yaml: no `use_openmetrics`, so it ran legacy mode.
    instance = {"agent_endpoint": "http://10.0.0.1:9962/metrics", "tags": ["cilium-pod:10.0.0.1"]}
    assert CiliumCheck("cilium", {}, [instance]).settings.legacy is True


def test_every_legacy_name_is_in_metadata_csv():
    metadata = get_metadata_metrics()
    names = defaultdict(set)
    for row in load_table():
        for submission in row.legacy_submissions():
            names[submission.name].add(submission.metadata_type)
    assert set(names) <= set(metadata)
    conflicts = legacy_type_conflicts()
    for name, types in names.items():
        if name not in conflicts:
            assert metadata[name]["metric_type"] in types, name


# The bundled check's captured Cilium 1.13 operator payload types these two gauges as counters.
IPAM_AS_COUNTERS = """\
# HELP cilium_operator_ipam_interface_candidates
# TYPE cilium_operator_ipam_interface_candidates counter
cilium_operator_ipam_interface_candidates{subnet_id="subnet-0a1b2c3d"} 4
# HELP cilium_operator_ipam_empty_interface_slots
# TYPE cilium_operator_ipam_empty_interface_slots counter
cilium_operator_ipam_empty_interface_slots{subnet_id="subnet-0a1b2c3d"} 5
# HELP cilium_operator_process_open_fds Number of open file descriptors.
# TYPE cilium_operator_process_open_fds gauge
cilium_operator_process_open_fds 20
"""


@pytest.mark.parametrize("typed", ["counter", "gauge"])
def test_the_two_ipam_families_keep_the_bundled_name_of_the_type_they_are_exposed_with(fixture_server, aggregator, typed):
    text = IPAM_AS_COUNTERS if typed == "counter" else IPAM_AS_COUNTERS.replace(" counter\n", " gauge\n")
    url = fixture_server.set_payload(f"/ipam-as-{typed}/metrics", text)
    check = CiliumCheck("cilium", {}, [{"operator_endpoint": url, "use_openmetrics": True}])
    assert check.run() == ""
    for family in ("interface_candidates", "empty_interface_slots"):
        name = f"cilium.operator.ipam.{family}"
        if typed == "counter":
            # The bundled check's V2 names: `.count` (metadata.csv: count), as monotonic counts.
            aggregator.assert_metric(f"{name}.count", metric_type=aggregator.MONOTONIC_COUNT, count=1)
            aggregator.assert_metric(name, count=0)
        else:
            aggregator.assert_metric(name, metric_type=aggregator.GAUGE, count=1)
            aggregator.assert_metric(f"{name}.count", count=0)
    aggregator.assert_metrics_using_metadata(get_metadata_metrics(), check_submission_type=True)


def test_legacy_mode_finds_its_endpoint_among_candidates_and_scrubs_credentials(fixture_server, aggregator, caplog):
    closed = closed_url()
    url = fixture_server.url("agent").replace("http://", "http://cilium:s3cr3t-pass@")
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": [closed, url], "use_openmetrics": False}])
    assert check.settings.legacy
    assert check.run() == ""
    aggregator.assert_metric("cilium.drop_count.total", metric_type=aggregator.MONOTONIC_COUNT, at_least=1)
    (health,) = aggregator.service_checks(HEALTH_V1)
    assert health.status == ServiceCheck.OK
    assert health.tags == [f"endpoint:{fixture_server.url('agent').replace('http://', 'http://***@')}"]
    assert "s3cr3t-pass" not in caplog.text + repr(aggregator._metrics) + repr(aggregator._service_checks)
