"""`cilium-check doctor`: the shipped monitors judged on a live Cilium, findings in words, and the cost.

The check scrapes every configured endpoint twice, an interval apart, exactly as the Agent runs it
(candidate URLs, recognition, limits); every monitor of `assets/monitors/` is then evaluated on
those two runs with its own thresholds (`monitors.judge`), and the series are counted per
component, family and label to say what collecting them costs. Nothing is sent anywhere.

Exit status: 0 healthy, 1 warnings, 2 critical findings, 3 an endpoint could not be scraped (or no
configuration could be loaded).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from . import monitors
from .agent_sim.runner import InstanceResult, run_instance
from .components import BY_NAME, COMPONENTS, HUBBLE
from .mapping import load_table
from .queries import Evaluator
from .tags import COMPONENT_TAG

HEALTHY, WARNING, CRITICAL, UNSCRAPED = 0, 1, 2, 3
SEVERITY = {"critical": CRITICAL, "warning": WARNING}
HEALTH_CHECKS = ("cilium.openmetrics.health", "cilium.prometheus.health")
# Components that run on every node (a DaemonSet) rather than as a few replicas: `--nodes N`
# multiplies their cost by N.
PER_NODE = {"agent", "hubble", "standalone-dns-proxy"}
# Hubble's context options (`hubble.metrics.enabled` `sourceContext=`/`destinationContext=`, and
# `labelsContext=`), with what multiplies a family's contexts when one is added.
CONTEXT_OPTIONS = (
    ("sourceContext=pod (or destinationContext=pod)", "endpoints"),
    ("sourceContext=identity (or destinationContext=identity)", "identities"),
    ("labelsContext=source_pod,destination_pod", "endpoint pairs"),
    ("labelsContext=source_ip,destination_ip", "endpoint pairs"),
)


@dataclass
class Cost:
    """What one component's series cost: contexts, by family and (for Hubble) by label."""

    contexts: int = 0
    dropped: int = 0
    limit: int = 0
    families: Counter[str] = field(default_factory=Counter)
    label_values: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # family -> label -> values


@dataclass
class Report:
    """Everything `doctor` found, ready to print as text or JSON."""

    interval: float
    endpoints: dict[str, str] = field(default_factory=dict)  # component -> URL
    failures: list[str] = field(default_factory=list)  # the check's own words for what failed
    findings: dict[str, list[monitors.Finding]] = field(default_factory=dict)  # component -> findings
    quiet: dict[str, int] = field(default_factory=dict)  # component -> monitors judged and quiet
    unjudged: list[tuple[str, str]] = field(default_factory=list)  # (monitor key, why)
    verdicts: dict[str, str] = field(default_factory=dict)  # monitor key -> fired | quiet | no data | not judged
    costs: dict[str, Cost] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)  # endpoints, identities per node
    nodes: int = 1

    @property
    def status(self) -> int:
        if self.failures:
            return UNSCRAPED
        levels = [SEVERITY[f.level] for found in self.findings.values() for f in found]
        return max(levels, default=HEALTHY)


def monitor_components(monitor: monitors.Monitor) -> set[str]:
    """The components whose metrics a monitor's query reads."""
    names = set(monitors.metrics_of(monitor))
    return {row.component for row in load_table() for s in row.submissions() if s.name in names}


def diagnose(instance: dict[str, Any], init_config: dict[str, Any] | None = None, interval: float = 15.0) -> Report:
    """Run the check twice on one instance and judge every shipped monitor on what it sent."""
    # The monitors are written for the current names: a legacy-mode instance is diagnosed in V2.
    instance = {**instance, "use_openmetrics": True}
    result = run_instance(_check_class(), "cilium", init_config or {}, instance, times=2, pause=interval)
    report = Report(interval)
    if not result.loaded:
        report.failures.append(result.load_error or "the configuration could not be loaded")
        return report
    _health(result, report)
    first, last = result.runs[0], result.runs[-1]
    series = [on_scraped_host(s) for s in last.flush.series]
    evaluator = Evaluator(series, max(last.started - first.started, 1e-3), [on_scraped_host(s) for s in first.flush.series])
    checks = [[on_scraped_host(sc, "host_name") for sc in run.flush.service_checks] for run in result.runs]
    scraped = set(report.endpoints)
    for monitor in monitors.load():
        judgement = monitors.judge(monitor, evaluator, checks)
        # a monitor of the check's own health (the service check, dropped contexts) watches every endpoint
        owners = (monitor_components(monitor) or scraped) & scraped
        if not owners:
            continue  # a monitor of a component this instance does not scrape
        if judgement.unknown and judgement.unknown != "no data":
            report.unjudged.append((monitor.key, judgement.unknown))
        report.verdicts[monitor.key] = (
            "fired" if judgement.findings else judgement.unknown if judgement.values is None else "quiet"
        )
        by_url = {url: name for name, url in report.endpoints.items()}
        for finding in judgement.findings:
            owner = finding.group.get(COMPONENT_TAG) or by_url.get(finding.group.get("endpoint", "")) or sorted(owners)[0]
            # tags the Agent's tagger adds (`kube_cluster_name`) are absent here: the place is the rest
            where = {k: v for k, v in finding.group.items() if v != "N/A"}
            report.findings.setdefault(owner, []).append(replace(finding, group=where))
        if not judgement.findings and judgement.values is not None:
            for owner in owners:
                report.quiet[owner] = report.quiet.get(owner, 0) + 1
    for found in report.findings.values():
        found.sort(key=lambda f: (-SEVERITY[f.level], f.monitor.title, sorted(f.group.items())))
    _costs(series, instance, report)
    return report


def on_scraped_host(item: dict[str, Any], key: str = "host") -> dict[str, Any]:
    """A series (or service check) whose `host` is the node it was scraped from, the host of its
    `endpoint` tag, rather than the machine doctor runs on: `by {host}` then names the node."""
    endpoint = next((t[len("endpoint:") :] for t in item.get("tags", ()) if t.startswith("endpoint:")), "")
    host = urlsplit(endpoint).hostname if endpoint else None
    return {**item, key: host} if host else item


def _check_class() -> type:
    from datadog_checks.cilium import CiliumCheck

    return CiliumCheck


def _health(result: InstanceResult, report: Report) -> None:
    for sc in result.runs[-1].flush.service_checks:
        if sc["check"] not in HEALTH_CHECKS:
            continue
        tags = dict(t.split(":", 1) for t in sc["tags"] if ":" in t)
        component = tags.get(COMPONENT_TAG, "unknown")
        report.endpoints[component] = tags.get("endpoint", "")
        if sc["status"] == 2:
            report.failures.append(sc["message"] or f"{component}: CRITICAL")
    if result.runs[-1].error and not report.failures:
        report.failures.append(_error_message(result.runs[-1].error))


def _error_message(error: str) -> str:
    try:
        return "; ".join(item["message"] for item in json.loads(error))
    except (ValueError, TypeError, KeyError):
        return error


def _costs(series: list[dict[str, Any]], instance: dict[str, Any], report: Report) -> None:
    family_of = {(row.component, s.name): row.wire_name for row in load_table() for s in row.submissions()}
    limits = instance.get("max_contexts")
    for s in series:
        tags = dict(t.split(":", 1) for t in s["tags"] if ":" in t)
        component = tags.get(COMPONENT_TAG)
        if component not in BY_NAME:
            continue
        cost = report.costs.setdefault(component, Cost())
        if s["metric"] == "cilium.check.contexts_dropped":
            cost.dropped += int(s["points"][-1][1])
            continue
        if s["metric"].startswith("cilium.check."):
            continue
        cost.contexts += 1
        family = family_of.get((component, s["metric"]), s["metric"])
        cost.families[family] += 1
        if component == HUBBLE.name:
            labels = cost.label_values.setdefault(family, defaultdict(set))
            for key, value in tags.items():
                if key not in (COMPONENT_TAG, "endpoint", "upper_bound", "quantile"):
                    labels[key].add(value)
        if s["metric"] == "cilium.endpoint.state":
            report.estimates["endpoints"] = report.estimates.get("endpoints", 0) + s["points"][-1][1]
        if s["metric"] == "cilium.identity.count":
            report.estimates["identities"] = report.estimates.get("identities", 0) + s["points"][-1][1]
    for name, cost in report.costs.items():
        if isinstance(limits, int):
            cost.limit = limits
        elif isinstance(limits, dict) and name in limits:
            cost.limit = int(limits[name])
        else:
            cost.limit = BY_NAME[name].max_contexts


# --- output -----------------------------------------------------------------------------------


COLOURS = {"critical": "\033[31m", "warning": "\033[33m", "ok": "\033[32m", "dim": "\033[2m", "end": "\033[0m"}


def print_text(report: Report, out: TextIO, colour: bool | None = None) -> None:
    colour = out.isatty() if colour is None else colour

    def paint(kind: str, text: str) -> str:
        return f"{COLOURS[kind]}{text}{COLOURS['end']}" if colour else text

    verdict = {HEALTHY: ("ok", "healthy"), WARNING: ("warning", "warnings"), CRITICAL: ("critical", "critical")}
    out.write(f"cilium-check doctor: two scrapes {report.interval:g} s apart\n\n")
    for failure in report.failures:
        out.write(paint("critical", "could not scrape: ") + failure + "\n")
    if report.failures:
        out.write("\n")
    for component in [c.name for c in COMPONENTS if c.name in report.endpoints]:
        url = report.endpoints[component]
        found = report.findings.get(component, [])
        if not found:
            quiet = report.quiet.get(component, 0)
            judged = f"{quiet} monitors quiet" if quiet else "no shipped monitor watches it; scraped fine"
            out.write(f"{component:<22} {paint('ok', 'healthy')}  {url}  ({judged})\n")
            continue
        worst = max(SEVERITY[f.level] for f in found)
        kind, word = verdict[worst]
        out.write(f"{component:<22} {paint(kind, word)}  {url}\n")
        for f in found:
            where = ", ".join(f"{k} {v}" for k, v in f.group.items() if k not in (COMPONENT_TAG,)) or "the cluster"
            out.write(
                f"  {paint(f.level, f.level.upper())} {f.monitor.title}: {where}: "
                f"{_number(f.value)} against {_comparator(f)} {_number(f.threshold)}\n"
            )
            for step in f.first_checks[:2]:
                out.write(f"      check first: {step}\n")
    for key, why in report.unjudged:
        out.write(paint("dim", f"  (not judged: {key}: {why})") + "\n")
    _print_costs(report, out)


def _comparator(finding: monitors.Finding) -> str:
    return finding.monitor.parsed().comparator if finding.monitor.type == "query alert" else ">="


def _number(value: float) -> str:
    if value != value or math.isinf(value):
        return str(value)
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _print_costs(report: Report, out: TextIO) -> None:
    if not report.costs:
        return
    out.write("\nCost (contexts: one per metric name and tag set, what Datadog bills as custom metrics)\n")
    total = 0
    for component in [c.name for c in COMPONENTS if c.name in report.costs]:
        cost = report.costs[component]
        factor = report.nodes if component in PER_NODE else 1
        total += cost.contexts * factor
        per = f", {cost.contexts * factor:,} for {report.nodes:,} nodes" if report.nodes > 1 and factor > 1 else ""
        limit = f"max_contexts {cost.limit:,}" if cost.limit else "no max_contexts"
        dropped = f", {cost.dropped:,} over it, dropped" if cost.dropped else ""
        out.write(f"  {component:<22} {cost.contexts:>7,} contexts{per} ({limit}{dropped})\n")
        for family, n in cost.families.most_common(3):
            out.write(f"      {n:>7,}  {family}\n")
    if report.nodes > 1:
        out.write(f"  cluster total: {total:,} contexts\n")
    hubble = report.costs.get(HUBBLE.name)
    if hubble:
        out.write("\nHubble: the labels that multiply its series most\n")
        for family, label, n in dominant_labels(hubble)[:5]:
            out.write(f"  {family}: {label} ({n} values)\n")
        out.write("What each context option of `hubble.metrics.enabled` would add (per node):\n")
        for option, added in context_option_costs(hubble, report.estimates):
            out.write(f"  {option}: up to +{added:,} contexts\n")


def dominant_labels(cost: Cost) -> list[tuple[str, str, int]]:
    """(family, label, distinct values), the most values first."""
    found = [(f, label, len(values)) for f, labels in cost.label_values.items() for label, values in labels.items()]
    return sorted(found, key=lambda item: (-item[2], item[0], item[1]))


def context_option_costs(cost: Cost, estimates: dict[str, float]) -> list[tuple[str, int]]:
    """What each Hubble context option would add: every family's contexts times the values the new
    label takes on a node (its endpoints, the cluster's identities, pairs of endpoints)."""
    endpoints = max(1, int(estimates.get("endpoints", 0)))
    identities = max(1, int(estimates.get("identities", 0)))
    factor = {"endpoints": endpoints, "identities": identities, "endpoint pairs": endpoints * endpoints}
    return [(option, cost.contexts * (factor[kind] - 1)) for option, kind in CONTEXT_OPTIONS]


def as_json(report: Report) -> dict[str, Any]:
    """The report as data, for CI and scripts."""
    return {
        "status": report.status,
        "interval": report.interval,
        "failures": report.failures,
        "components": {
            name: {
                "endpoint": report.endpoints.get(name, ""),
                "monitors_quiet": report.quiet.get(name, 0),
                "findings": [
                    {
                        "level": f.level,
                        "monitor": f.monitor.key,
                        "title": f.monitor.title,
                        "where": f.group,
                        "value": f.value,
                        "threshold": f.threshold,
                        "check_first": f.first_checks,
                    }
                    for f in report.findings.get(name, [])
                ],
                "contexts": report.costs[name].contexts if name in report.costs else 0,
                "contexts_per_cluster": (report.costs[name].contexts if name in report.costs else 0)
                * (report.nodes if name in PER_NODE else 1),
                "max_contexts": report.costs[name].limit if name in report.costs else 0,
                "contexts_dropped": report.costs[name].dropped if name in report.costs else 0,
                "families": dict(report.costs[name].families.most_common()) if name in report.costs else {},
            }
            for name in [c.name for c in COMPONENTS if c.name in report.endpoints]
        },
        "not_judged": [{"monitor": k, "why": why} for k, why in report.unjudged],
        "monitors": report.verdicts,
        "hubble": {
            "dominant_labels": [
                {"family": f, "label": label, "values": n} for f, label, n in dominant_labels(report.costs[HUBBLE.name])
            ]
            if HUBBLE.name in report.costs
            else [],
            "context_options": dict(context_option_costs(report.costs[HUBBLE.name], report.estimates))
            if HUBBLE.name in report.costs
            else {},
        },
        "nodes": report.nodes,
    }


def print_json(report: Report, out: TextIO = sys.stdout) -> None:
    json.dump(as_json(report), out, indent=2, sort_keys=True)
    out.write("\n")


# --- command ----------------------------------------------------------------------------------


def add_arguments(parser: Any) -> None:
    """The options of `cilium-check doctor`."""
    parser.add_argument("-c", "--config", help="a conf.d-style YAML file: every instance is diagnosed")
    for component in COMPONENTS:
        parser.add_argument(
            f"--{component.name}",
            action="append",
            metavar="URL",
            dest=component.option,
            help=f"the {component.name}'s metrics URL (repeat for candidates tried in order)",
        )
    parser.add_argument(
        "--metrics", action="append", metavar="URL", dest="metrics_endpoint", help="a URL of any component, recognised"
    )
    parser.add_argument("--interval", type=float, default=15.0, metavar="S", help="seconds between the two scrapes (default 15)")
    parser.add_argument("--nodes", type=int, default=1, metavar="N", help="the cluster's node count, for the cost per cluster")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the text report")


def default_instance() -> dict[str, Any]:
    """Every component on this host at its default and older ports, each optional: what answers is diagnosed."""
    instance: dict[str, Any] = {
        c.option: [f"http://localhost:{port}/metrics" for port in (c.port, *c.legacy_ports)] for c in COMPONENTS
    }
    instance["optional_components"] = [c.name for c in COMPONENTS]
    return instance


def instances_of(args: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    given = {c.option: getattr(args, c.option) for c in COMPONENTS if getattr(args, c.option, None)}
    if getattr(args, "metrics_endpoint", None):
        given["metrics_endpoint"] = args.metrics_endpoint
    if args.config:
        from .cli import load_config

        init_config, instances = load_config(Path(args.config))
        return init_config, [{**instance, **given} for instance in instances]
    return {}, [given or default_instance()]


def command_doctor(args: Any) -> int:
    from .cli import ConfigFileError

    if args.interval <= 0 or args.nodes < 1:
        print("Error: --interval must be positive and --nodes at least 1", file=sys.stderr)
        return UNSCRAPED
    try:
        init_config, instances = instances_of(args)
    except ConfigFileError as e:
        print(f"Error: {e}", file=sys.stderr)
        return UNSCRAPED
    reports = []
    for instance in instances:
        report = diagnose(instance, init_config, args.interval)
        report.nodes = args.nodes
        if not report.endpoints and not report.failures:
            report.failures.append("no Cilium component answered at any of the URLs tried")
        reports.append(report)
    if args.json:
        payload = [as_json(r) for r in reports]
        json.dump(payload[0] if len(payload) == 1 else payload, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        colour = {"always": True, "never": False}.get(args.color)
        for i, report in enumerate(reports):
            if i:
                sys.stdout.write("\n")
            print_text(report, sys.stdout, colour)
    return max(r.status for r in reports)
