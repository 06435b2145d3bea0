"""`cilium-check doctor` on the fixture server: healthy, in every sick scenario, down, and what it costs."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import yaml

from cilium_check import doctor, monitors
from cilium_check.cli import main
from cilium_check.components import BY_NAME, COMPONENTS
from cilium_dev.fixtures import CURRENT, PRERELEASE, FixtureServer, closed_url, render, serves
from cilium_dev.fixtures.scenarios import SCENARIOS
from datadog_checks.cilium import CiliumCheck

INTERVAL = "0.2"


def monitors_by_key() -> dict[str, monitors.Monitor]:
    return {m.key: m for m in monitors.load()}


@pytest.fixture(scope="module")
def server():
    with FixtureServer() as srv:
        yield srv


def flags(server, version: str, scenario: str | None = None) -> list[str]:
    out = []
    for c in COMPONENTS:
        if serves(c.name, version):
            out += [f"--{c.name}", server.url(c.name, version, scenario)]
    return out


def run_json(capsys, *args: str) -> tuple[int, dict]:
    status = main(["doctor", *args, "--interval", INTERVAL, "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_a_healthy_cluster_exits_0_with_every_component_quiet(server, capsys):
    status, report = run_json(capsys, *flags(server, CURRENT))
    assert status == 0 and report["status"] == 0 and report["failures"] == []
    assert set(report["components"]) == {c.name for c in COMPONENTS}
    assert all(c["findings"] == [] for c in report["components"].values())
    assert report["components"]["agent"]["monitors_quiet"] >= 10


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_sick_scenario_exits_2_naming_the_problem_the_place_and_the_first_check(server, capsys, name):
    scenario = SCENARIOS[name]
    status, report = run_json(capsys, *flags(server, scenario.version or CURRENT, name))
    assert status == 2, report
    findings = [f for c in report["components"].values() for f in c["findings"]]
    assert {f["monitor"] for f in findings} == set(scenario.monitors)
    for finding in findings:
        assert finding["level"] == "critical" or finding["monitor"] in scenario.monitors
        assert all(v not in ("", "N/A") for v in finding["where"].values()), finding
        # the place: a node (or map, remote cluster...), or the cluster for a cluster-wide monitor
        assert finding["where"] or "by {kube_cluster_name}" in monitors_by_key()[finding["monitor"]].query
        assert finding["check_first"], finding["monitor"]


def test_the_text_report_reads_as_a_diagnosis(server, capsys):
    status = main(["doctor", *flags(server, CURRENT, "bpf-map-full"), "--interval", INTERVAL])
    out = capsys.readouterr().out
    assert status == 2
    agent = out[out.index("\nagent ") : out.index("\noperator ")]
    assert "critical" in agent.splitlines()[1] or "critical" in agent
    # the problem, the place, the value against the threshold, the first check
    assert "CRITICAL Cilium BPF map almost full: host 127.0.0.1, map_name cilium_ct4_global: 0.95 against > 0.9" in agent
    assert "check first: `cilium-dbg" in agent
    # a healthy component gets one line
    operator = [line for line in out.splitlines() if line.startswith("operator ")]
    assert len(operator) == 1 and "healthy" in operator[0]
    assert "\033[" not in out  # no colour off a terminal


def test_colour_only_where_asked_or_on_a_terminal(server):
    report = doctor.diagnose({"agent_endpoint": server.url("agent", CURRENT, "bpf-map-full")}, interval=0.2)
    plain, coloured = io.StringIO(), io.StringIO()
    doctor.print_text(report, plain)
    doctor.print_text(report, coloured, colour=True)
    assert "\033[" not in plain.getvalue() and "\033[31mcritical\033[0m" in coloured.getvalue()


def test_warnings_only_exit_1(server, capsys):
    text = render("agent", CURRENT).replace(
        'cilium_bpf_map_pressure{map_name="cilium_ct4_global"}', 'cilium_bpf_map_pressure{map_name="cilium_ct4_global"} 0.85 #'
    )
    text = "\n".join(line.split(" #", 1)[0] if "0.85 #" in line else line for line in text.splitlines()) + "\n"
    url = server.set_payload("/warn/agent/metrics", text)
    status, report = run_json(capsys, "--agent", url)
    (finding,) = report["components"]["agent"]["findings"]
    assert status == 1 and finding["level"] == "warning" and finding["monitor"] == "bpf_map_pressure"


def test_an_endpoint_that_is_down_exits_3_with_the_checks_message(capsys):
    down = closed_url()
    status, report = run_json(capsys, "--agent", down)
    assert status == 3
    (failure,) = report["failures"]
    assert failure == (
        f"{down}: connection refused (nothing listens on that port). `agent_endpoint` found no Cilium agent"
        " metrics there. Cilium serves them when its Helm values set `prometheus.enabled=true`"
        " (port 9962 since Cilium 1.12)."
    )


def test_nothing_answering_anywhere_exits_3(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "default_instance", lambda: {"agent_endpoint": [closed_url()], "optional_components": ["agent"]})
    status, report = run_json(capsys)
    assert status == 3 and report["failures"] == ["no Cilium component answered at any of the URLs tried"]


def test_every_shipped_monitor_is_evaluated(server, capsys):
    """The only monitors doctor cannot judge from two scrapes are those that need history."""
    status, report = run_json(capsys, *flags(server, PRERELEASE))
    assert status == 0
    assert report["not_judged"] == [
        {"monitor": "unreachable_nodes_anomaly", "why": "`anomalies()` needs more history than two runs"}
    ]
    verdicts = report["monitors"]
    assert set(verdicts) == {m.key for m in monitors.load()}
    # every other monitor had data and found it healthy, or watches series a healthy Cilium does not
    # have (5xx answers, node-local identities, the 1.14-only import errors counter)
    no_data = {key for key, verdict in verdicts.items() if verdict == "no data"}
    assert no_data == {"endpoint_api_errors", "identity_node_local_exhaustion", "policy_import_errors"}
    assert {key for key, verdict in verdicts.items() if verdict == "quiet"} == set(verdicts) - no_data - {
        "unreachable_nodes_anomaly"
    }


def test_the_cost_counts_are_what_the_check_submits(server, capsys, aggregator):
    version = CURRENT
    urls = {}
    for c in COMPONENTS:
        urls[c.name] = server.set_payload(f"/cost/{c.name}/metrics", render(c.name, version, 5))
    args = [arg for c in COMPONENTS for arg in (f"--{c.name}", urls[c.name])]
    status, report = run_json(capsys, *args, "--nodes", "100")
    assert status == 0
    instance = {BY_NAME[name].option: url for name, url in urls.items()} | {"use_openmetrics": True}
    check = CiliumCheck("cilium", {}, [instance])
    check.run()
    check.run()
    submitted = {}
    for name in aggregator._metrics:
        if name.startswith("cilium.check."):
            continue
        for m in aggregator._metrics[name]:
            component = next(t.split(":", 1)[1] for t in m.tags if t.startswith("cilium_component:"))
            submitted.setdefault(component, set()).add((name, tuple(sorted(m.tags))))
    for name, component in report["components"].items():
        assert component["contexts"] == len(submitted[name]), name
        assert sum(component["families"].values()) == component["contexts"]
        # the check's own count of what it sent agrees
        (own,) = [m.value for m in aggregator.metrics("cilium.check.contexts") if f"cilium_component:{name}" in m.tags][-1:]
        assert own == component["contexts"], name
        per_node = name in ("agent", "hubble", "standalone-dns-proxy")
        assert component["contexts_per_cluster"] == component["contexts"] * (100 if per_node else 1)


def test_a_cardinality_explosion_names_its_labels_and_what_the_budget_drops(server, capsys):
    status, report = run_json(
        capsys,
        "--hubble",
        server.url("hubble", CURRENT, "cardinality-explosion"),
        "--agent",
        server.url("agent", CURRENT, "cardinality-explosion"),
    )
    hubble = report["components"]["hubble"]
    assert status == 2 and hubble["max_contexts"] == 10000 and hubble["contexts"] == 10000
    assert hubble["contexts_dropped"] > 0
    top = report["hubble"]["dominant_labels"][:4]
    assert {t["label"] for t in top} == {"source", "destination"}
    assert all(added > 0 for added in report["hubble"]["context_options"].values())


def test_a_conf_yaml_is_diagnosed_instance_by_instance(server, capsys, tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "init_config": {},
                "instances": [
                    {"agent_endpoint": server.url("agent", CURRENT), "use_openmetrics": False},
                    {"operator_endpoint": server.url("operator", CURRENT, "ipam-exhausted")},
                ],
            }
        )
    )
    status, reports = run_json(capsys, "-c", str(conf))
    assert status == 2 and [r["status"] for r in reports] == [0, 2]
    # legacy mode is diagnosed with the current names the monitors are written for
    assert reports[0]["components"]["agent"]["monitors_quiet"] >= 10


def test_the_command_runs_as_a_user_runs_it(server):
    done = subprocess.run(
        [sys.executable, "-m", "cilium_check", "doctor", "--agent", server.url("agent", CURRENT, "unreachable-nodes"),
         "--interval", INTERVAL],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "CRITICAL Cilium nodes unreachable: host 127.0.0.1: 3 against > 0" in done.stdout


def test_first_checks_name_the_place(server, capsys):
    status, report = run_json(capsys, "--kvstoremesh", server.url("kvstoremesh", CURRENT, "remote-cluster-down"))
    (finding,) = [f for f in report["components"]["kvstoremesh"]["findings"] if f["monitor"] == "kvstoremesh_remote_not_ready"]
    assert any("towards cluster-2" in step for step in finding["check_first"])
    assert not any("{{" in step for f in report["components"]["kvstoremesh"]["findings"] for step in f["check_first"])
