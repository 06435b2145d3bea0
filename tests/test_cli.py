"""`cilium-check`, run as a user runs it: a subprocess against the fixture server."""

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from datadog_checks.base.utils.tagging import GENERIC_TAGS

from cilium_check.components import COMPONENTS
from cilium_dev.fixtures import serves
from cilium_check.mapping import load_table

ROOT = Path(__file__).resolve().parents[1]
CATALOG = Path(__file__).parent / "data" / "cilium-metrics-catalog.csv"
# Families whose only content is the release in a `version` label: they go to metadata.
VERSION_FAMILIES = {
    "cilium_version",
    "cilium_operator_version",
    "cilium_clustermesh_apiserver_version",
    "cilium_kvstoremesh_version",
}


def cilium_check(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "cilium_check", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def catalog_exposition(component: str) -> tuple[str, set[str]]:
    """An exposition built straight from Cilium's catalog, independent of the mapping table.

    Every family gets one series whose labels are the catalog's, with made-up values. Returns
    the text and the families that are metrics (version families go to metadata instead).
    """
    lines, families = [], set()
    with open(CATALOG) as f:
        for fact in csv.DictReader(f):
            if fact["component"] != component:
                continue
            name, kind = fact["metric"], fact["type"]
            labels = ",".join(f'{label}="{label}-value"' for label in fact["labels"].split())
            brace = "{" + labels + "}" if labels else ""
            if name in VERSION_FAMILIES:
                lines += [f"# TYPE {name} gauge", f'{name}{{version="1.20.3"}} 1']
                continue
            families.add(name)
            lines.append(f"# HELP {name} {fact['description']}")
            lines.append(f"# TYPE {name} {kind}")
            if kind == "histogram":
                for le, n in (("0.1", 2), ("1", 5), ("+Inf", 7)):
                    bucket_labels = ",".join(filter(None, [labels, f'le="{le}"']))
                    lines.append(f"{name}_bucket{{{bucket_labels}}} {n}")
                lines += [f"{name}_sum{brace} 3.5", f"{name}_count{brace} 7"]
            else:
                lines.append(f"{name}{brace} 42")
    return "\n".join(lines) + "\n", families


def write_conf(tmp_path, instance) -> Path:
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump({"init_config": {}, "instances": [instance]}))
    return path


def test_unseen_current_cilium_is_fully_covered(fixture_server, tmp_path):
    """The issue's acceptance run: `check --json --check-rate` against payloads it has never seen."""
    urls, families = {}, {}
    for component in COMPONENTS:
        text, families[component.name] = catalog_exposition(component.name)
        urls[component.name] = fixture_server.set_payload(f"/catalog/{component.name}/metrics", text)
    conf = write_conf(tmp_path, {c.option: urls[c.name] for c in COMPONENTS})
    result = cilium_check("check", "-c", str(conf), "--json", "--check-rate", "--pause", "100")
    assert result.returncode == 0, result.stderr
    (instance,) = json.loads(result.stdout)
    assert instance["runner"]["LastError"] == ""
    assert instance["runner"]["CheckName"] == "cilium"

    with open(ROOT / "metadata.csv") as f:
        metadata = {row["metric_name"]: row["metric_type"] for row in csv.DictReader(f)}
    names_of = defaultdict(set)
    # The catalog is current Cilium: the names of the table's current rows, of the catalog's types.
    for row in load_table():
        if row.until is not None:
            continue
        for submission in row.submissions():
            names_of[(row.component, row.wire_name)].add(submission.name)

    sent = defaultdict(set)
    for series in instance["aggregator"]["metrics"]:
        name, kind = series["metric"], series["type"]
        assert metadata.get(name) == kind, f"{name} sent as {kind}, metadata.csv says {metadata.get(name)}"
        keys = {tag.split(":", 1)[0] for tag in series["tags"]}
        assert not keys & set(GENERIC_TAGS), series
        sent[next(t.split(":", 1)[1] for t in series["tags"] if t.startswith("cilium_component:"))].add(name)

    for component, wanted in families.items():
        covered = {f for f in wanted if names_of[(component, f)] and names_of[(component, f)] <= sent[component]}
        coverage = len(covered) / len(wanted)
        print(f"{component}: {len(covered)}/{len(wanted)} catalog families ({coverage:.1%})")
        assert coverage == 1.0, sorted(wanted - covered)

    statuses = {sc["tags"][-1]: sc["status"] for sc in instance["aggregator"]["service_checks"]}
    assert statuses == {f"endpoint:{url}": 0 for url in urls.values()}
    inventory = instance["inventories"][instance["runner"]["CheckID"]]
    for key in ("version", "operator_version", "clustermesh_apiserver_version", "kvstoremesh_version"):
        assert inventory[f"{key}.raw"] == "1.20.3"


def test_text_output_has_the_agent_check_sections(fixture_server, tmp_path):
    conf = write_conf(tmp_path, {"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent")})
    result = cilium_check("check", "-c", str(conf))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for section in ("=== Series ===", "=== Service Checks ===", "Running Checks", "Instance ID: cilium:", "[OK]"):
        assert section in out
    assert "Metric Samples: Last Run: " in out
    assert "version.raw: 1.20.2" in out
    assert "Check has run only once" in out
    # One run: gauges are there, monotonic counters have no previous value yet.
    series = json.loads(out.split("=== Series ===")[1].split("===")[0])
    assert any(s["metric"] == "cilium.endpoint.state" and s["type"] == "gauge" for s in series)
    assert not any(s["metric"] == "cilium.drop_count.count" for s in series)


def test_check_rate_sends_counter_deltas(fixture_server, tmp_path):
    conf = write_conf(tmp_path, {"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent")})
    result = cilium_check("check", "-c", str(conf), "--check-rate", "--pause", "50", "--json")
    (instance,) = json.loads(result.stdout)
    drops = [s for s in instance["aggregator"]["metrics"] if s["metric"] == "cilium.drop_count.count"]
    assert drops and all(s["type"] == "count" for s in drops)
    # a healthy node keeps dropping for policy and the like, never for a full conntrack or NAT table
    full = {"reason:CT: Map insertion failed", "reason:No mapping for NAT masquerade"}
    growing = [s for s in drops if not full & set(s["tags"])]
    assert len(growing) > len(drops) // 2
    assert all(s["points"][0][1] > 0 for s in growing), "the fixture's counters grow between scrapes"
    assert all(s["points"][0][1] == 0 for s in drops if full & set(s["tags"]))
    assert instance["runner"]["TotalRuns"] == 2


def test_down_endpoint_in_the_output(fixture_server, tmp_path):
    down = fixture_server.closed_url()
    conf = write_conf(tmp_path, {"use_openmetrics": True, "agent_endpoint": down})
    result = cilium_check("check", "-c", str(conf))
    assert "[ERROR]" in result.stdout
    assert f"{down}: connection refused (nothing listens on that port). `agent_endpoint` found no" in result.stdout
    result = cilium_check("check", "-c", str(conf), "--json")
    (instance,) = json.loads(result.stdout)
    assert down in instance["runner"]["LastError"]
    (sc,) = instance["aggregator"]["service_checks"]
    assert sc["status"] == 2 and sc["check"] == "cilium.openmetrics.health" and down in sc["message"]


def test_configuration_error_is_reported_like_a_check_that_cannot_load(tmp_path):
    conf = write_conf(tmp_path, {"tags": ["a:b"]})
    result = cilium_check("check", "-c", str(conf))
    assert result.returncode == 1
    assert "no endpoint to scrape" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "content, message",
    [(None, "cannot read the configuration"), ("instances: [", "not valid YAML"), ("init_config: {}\n", "`instances`")],
)
def test_bad_configuration_file_is_named(tmp_path, content, message):
    path = tmp_path / "conf.yaml"
    if content is not None:
        path.write_text(content)
    result = cilium_check("check", "-c", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and message in result.stderr


def test_demo_prints_the_summary():
    result = cilium_check("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for component in COMPONENTS:
        assert f"\n{component.name}  http://127.0.0.1:" in out
    assert out.count("health: OK") == len(COMPONENTS)
    assert "Cilium version: 1.20" in out
    assert "Last run: OK" in out
    # then `doctor` on the healthy cluster and on a sick one
    healthy, sick = out.split("$ cilium-check doctor")[1:]
    assert "(exit status 0)" in healthy and "CRITICAL" not in healthy
    assert "CRITICAL Cilium conntrack table full: host 127.0.0.1" in sick and "(exit status 2;" in sick


def test_main_leaves_the_process_signal_handlers_alone(tmp_path):
    """Only the command restores SIGPIPE's default; a host process (pytest, an Agent) keeps its own."""
    import signal

    from cilium_check import cli

    before = signal.getsignal(signal.SIGPIPE)
    assert cli.main(["check", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert signal.getsignal(signal.SIGPIPE) == before


def test_log_level_is_accepted_before_and_after_the_subcommand(tmp_path, fixture_server):
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"init_config": {}, "instances": [{"use_openmetrics": True, "agent_endpoint": fixture_server.url("agent")}]}))
    for args in (["--log-level", "info", "check", "-c", str(conf)], ["check", "-c", str(conf), "--log-level", "info"]):
        done = cilium_check(*args)
        assert done.returncode == 0, done.stderr
        assert "serves the Cilium agent" in done.stderr  # an info line of the check
    quiet = cilium_check("check", "-c", str(conf))
    assert "serves the Cilium agent" not in quiet.stderr


def test_serve_starts_the_fixture_server_and_prints_a_conf_yaml(tmp_path):
    """`cilium-check serve` alone, then `check` on the conf.yaml it printed, as a newcomer would."""
    serve = subprocess.Popen(
        [sys.executable, "-m", "cilium_check", "serve", "--cilium-version", "1.18"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        # Cilium 1.18 has every component but the standalone DNS proxy (1.20)
        served = [c for c in COMPONENTS if serves(c.name, "1.18")]
        assert len(served) == len(COMPONENTS) - 1
        last_option = f"{served[-1].option}:"
        while len(lines) < 40 and not (lines and lines[-1].strip().startswith(last_option)):
            line = serve.stdout.readline()
            if not line:
                break
            lines.append(line)
        printed = "".join(lines)
        assert "Serving a Cilium 1.18 on http://127.0.0.1:" in printed
        conf = tmp_path / "conf.yaml"
        conf.write_text(printed[printed.index("init_config:") :])
        config = yaml.safe_load(conf.read_text())
        assert set(config["instances"][0]) == {c.option for c in served}
        done = cilium_check("check", "-c", str(conf), "--json")
        assert done.returncode == 0, done.stderr
        (instance,) = json.loads(done.stdout)
        assert instance["runner"]["LastError"] == ""
        health = [sc for sc in instance["aggregator"]["service_checks"] if sc["check"] == "cilium.openmetrics.health"]
        assert [sc["status"] for sc in health] == [0] * len(served)
    finally:
        serve.terminate()
        serve.wait(timeout=10)
