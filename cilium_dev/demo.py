"""`cilium-check demo`: the check against the embedded fixture server, summarised for a person."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TextIO

from datadog_checks.cilium import CiliumCheck
from cilium_check.agent_sim.runner import InstanceResult, run_instances
from cilium_check.components import COMPONENTS
from cilium_check import doctor

from .fixtures.payloads import CURRENT, serves
from .fixtures.scenarios import SCENARIOS
from .fixtures.server import FixtureServer
from cilium_check.mapping import load_table as rows_for_all
from cilium_check.mapping import parse_version, rows_for
from cilium_check.openmetrics_map import metadata_name
from cilium_check.tags import COMPONENT_TAG

TOP = 10
STATUS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _tag(tags: list[str], key: str) -> str | None:
    prefix = f"{key}:"
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), None)


def _values(result: InstanceResult, metric: str) -> list[tuple[float, list[str]]]:
    return [(s["points"][-1][1], s["tags"]) for s in result.series if s["metric"] == metric]


def highlights(result: InstanceResult) -> list[str]:
    """A few values an operator looks at first, from the agent's series."""
    lines = []
    states = Counter()
    for value, tags in _values(result, "cilium.endpoint.state"):
        states[_tag(tags, "endpoint_state")] += int(value)
    if states:
        lines.append("endpoints: " + ", ".join(f"{n} {state}" for state, n in states.most_common()))
    for value, _ in _values(result, "cilium.unreachable.nodes"):
        lines.append(f"unreachable nodes: {int(value)}")
    drops = Counter()
    for value, tags in _values(result, "cilium.drop_count.count"):
        drops[_tag(tags, "reason")] += value
    if drops:
        top = ", ".join(f"{reason} ({int(n)})" for reason, n in drops.most_common(3))
        lines.append(f"packets dropped since the previous run: {int(sum(drops.values()))}; top reasons: {top}")
    pressure = _values(result, "cilium.bpf.map_pressure")
    if pressure:
        value, tags = max(pressure, key=lambda item: item[0])
        lines.append(f"fullest BPF map: {_tag(tags, 'map_name')} at {value:.0%}")
    return lines


def hubble_highlights(result: InstanceResult) -> list[str]:
    """Flows by verdict and DNS answers by return code, from Hubble's series."""
    lines = []
    verdicts = Counter()
    for value, tags in _values(result, "cilium.hubble.flows_processed.count"):
        verdicts[_tag(tags, "verdict")] += value
    if verdicts:
        lines.append("flows since the previous run: " + ", ".join(f"{int(n)} {v}" for v, n in verdicts.most_common()))
    rcodes = Counter()
    for value, tags in _values(result, "cilium.hubble.dns_responses.count"):
        rcodes[_tag(tags, "rcode")] += value
    if rcodes:
        lines.append("DNS responses by rcode: " + ", ".join(f"{r} {int(n)}" for r, n in rcodes.most_common()))
    return lines


HIGHLIGHTS = {"agent": highlights, "hubble": hubble_highlights}


def summarise(result: InstanceResult, version: str, out: TextIO) -> None:
    """What was collected, per component: health, release, and series per metric."""
    v = parse_version(version)
    family_of = {
        (row.component, s.name): row.wire_name
        for row in rows_for_all()
        if row.in_version(v)
        for s in row.submissions()
    }
    series_by_component: dict[str, Counter[str]] = defaultdict(Counter)
    metrics_by_component: dict[str, set[str]] = defaultdict(set)
    contexts: dict[str, dict[str, float]] = defaultdict(dict)
    for series in result.series:
        component = _tag(series["tags"], COMPONENT_TAG) or "?"
        if series["metric"].startswith("cilium.check."):
            contexts[component][series["metric"]] = series["points"][-1][1]
            continue
        metrics_by_component[component].add(series["metric"])
        series_by_component[component][family_of.get((component, series["metric"]), series["metric"])] += 1
    health = {_tag(sc["tags"], "endpoint"): sc for sc in result.service_checks}

    out.write(f"Cilium {version} on 127.0.0.1, scraped {result.stats['TotalRuns']} times by the cilium check\n\n")
    for component in COMPONENTS:
        url = result.instance.get(component.option)
        if not url:
            continue
        counts = series_by_component.get(component.name, Counter())
        sent = metrics_by_component.get(component.name, set())
        expected = {s.name for row in rows_for(component.name) if row.in_version(v) for s in row.submissions()}
        check = health.get(url)
        status = STATUS[check["status"]] if check else "not scraped"
        key = metadata_name(component.name)
        release = result.inventory.get(f"{key}.raw", "unknown") if key else "not exposed by this component"
        out.write(f"{component.name}  {url}\n")
        out.write(f"  health: {status}{' - ' + check['message'] if check and check['message'] else ''}\n")
        out.write(f"  Cilium version: {release}\n")
        out.write(
            f"  {sum(counts.values())} series of {len(counts)} Cilium families, as {len(sent)} Datadog metrics "
            f"({len(sent & expected)} of the {len(expected)} the mapping expects for Cilium {version})\n"
        )
        guard = contexts.get(component.name, {})
        limit = result.instance.get("max_contexts", {}).get(component.name, component.max_contexts)
        out.write(
            f"  contexts: {int(guard.get('cilium.check.contexts', 0))} submitted, "
            f"{int(guard.get('cilium.check.contexts_dropped', 0))} dropped (max_contexts: {limit or 'no limit'})\n"
        )
        for line in HIGHLIGHTS.get(component.name, lambda result: [])(result):
            out.write(f"  {line}\n")
        out.write("  series per family (largest first):\n")
        for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]:
            out.write(f"    {n:5d}  {name}\n")
        if len(counts) > TOP:
            out.write(f"           ... and {len(counts) - TOP} more families\n")
        out.write("\n")
    error = result.stats.get("LastError")
    out.write(f"Last run: {'error: ' + error if error else 'OK'}\n")
    out.write("Run `cilium-check check -c <conf.yaml> --check-rate` against a real Cilium to see every series.\n")


PAUSE = 0.2  # seconds between the two runs, as `agent check --check-rate` makes two


def fixture_instance(server: FixtureServer, version: str, scenario: str | None = None) -> dict:
    """An instance of every component the fixture server has for `version` (healthy or sick)."""
    return {c.option: server.url(c.name, version, scenario) for c in COMPONENTS if serves(c.name, version)}


def collect(version: str | None = None) -> InstanceResult:
    """Run an instance of every component twice against the fixture server, as the Agent would."""
    version = version or CURRENT
    with FixtureServer() as server:
        (result,) = run_instances(CiliumCheck, "cilium", {}, [fixture_instance(server, version)], rate=True, pause=PAUSE)
    return result


# The sick cluster `make demo` diagnoses after the healthy one, and the seconds between the two
# scrapes of each (the Agent's 15 s would make the demo slow; rates are per second either way).
DEMO_SCENARIO = "conntrack-full"
DOCTOR_INTERVAL = 1.0


def run_doctor(out: TextIO, version: str, scenario: str | None) -> int:
    """`cilium-check doctor` on the fixture server, healthy or in a scenario; its exit status."""
    version = (SCENARIOS[scenario].version or version) if scenario else version
    with FixtureServer() as server:
        report = doctor.diagnose(fixture_instance(server, version, scenario), interval=DOCTOR_INTERVAL)
    doctor.print_text(report, out)
    return report.status


def run_demo(out: TextIO, version: str | None = None, scenario: str = DEMO_SCENARIO) -> int:
    version = version or CURRENT
    result = collect(version)
    if not result.loaded:
        out.write(f"The check could not be loaded: {result.load_error}\n")
        return 1
    summarise(result, version, out)
    out.write(f"\n$ cilium-check doctor   # on this healthy Cilium {version}\n\n")
    healthy = run_doctor(out, version, None)
    out.write(f"\n(exit status {healthy})\n\n$ cilium-check doctor   # on a sick one: {SCENARIOS[scenario].summary}\n\n")
    sick = run_doctor(out, version, scenario)
    out.write(f"\n(exit status {sick}; other scenarios: `cilium-check demo --scenario NAME`, one of {', '.join(SCENARIOS)})\n")
    return 0 if not result.stats.get("LastError") else 1
