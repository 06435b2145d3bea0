"""`cilium-check demo`: the check against the embedded fixture server, summarised for a person."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TextIO

from . import CiliumCheck
from .agent_sim.runner import InstanceResult, run_instances
from .components import COMPONENTS
from .fixtures.payloads import CURRENT
from .fixtures.server import FixtureServer
from .mapping import parse_version, rows_for
from .openmetrics_map import metadata_name
from .tags import COMPONENT_TAG

STATUS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _tag(tags: list[str], key: str) -> str | None:
    prefix = f"{key}:"
    return next((t[len(prefix) :] for t in tags if t.startswith(prefix)), None)


def summarise(result: InstanceResult, version: str, out: TextIO) -> None:
    """What was collected, per component: health, release, and series per metric."""
    series_by_component: dict[str, Counter[str]] = defaultdict(Counter)
    for series in result.series:
        series_by_component[_tag(series["tags"], COMPONENT_TAG) or "?"][series["metric"]] += 1
    health = {_tag(sc["tags"], "endpoint"): sc for sc in result.service_checks}
    v = parse_version(version)

    out.write(f"Cilium {version} on 127.0.0.1, scraped {result.stats['TotalRuns']} times by the cilium check\n\n")
    for component in COMPONENTS:
        url = result.instance.get(component.option)
        if not url:
            continue
        counts = series_by_component.get(component.name, Counter())
        expected = {s.name for row in rows_for(component.name) if row.in_version(v) for s in row.submissions()}
        check = health.get(url)
        status = STATUS[check["status"]] if check else "not scraped"
        release = result.inventory.get(f"{metadata_name(component.name)}.raw", "unknown")
        out.write(f"{component.name}  {url}\n")
        out.write(f"  health: {status}{' - ' + check['message'] if check and check['message'] else ''}\n")
        out.write(f"  Cilium version: {release}\n")
        out.write(
            f"  {sum(counts.values())} series in {len(counts)} metrics "
            f"({len(counts.keys() & expected)} of the {len(expected)} the mapping expects for Cilium {version})\n"
        )
        for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:12]:
            out.write(f"    {n:4d}  {name}\n")
        if len(counts) > 12:
            out.write(f"    ... and {len(counts) - 12} more metrics\n")
        out.write("\n")
    error = result.stats.get("LastError")
    out.write(f"Last run: {'error: ' + error if error else 'OK'}\n")
    out.write("Run `cilium-check check -c <conf.yaml> --check-rate` against a real Cilium to see every series.\n")


def run_demo(out: TextIO, version: str | None = None) -> int:
    version = version or CURRENT
    with FixtureServer() as server:
        instance = {c.option: server.url(c.name, version) for c in COMPONENTS}
        (result,) = run_instances(CiliumCheck, "cilium", {}, [instance], rate=True, pause=0.2)
    if not result.loaded:
        out.write(f"The check could not be loaded: {result.load_error}\n")
        return 1
    summarise(result, version, out)
    return 0 if not result.stats.get("LastError") else 1
