"""Catalog acceptance: every family Cilium's catalog lists, of all seven components, served alone.

The expositions are built from `tests/data/cilium-metrics-catalog.csv` (Cilium's own facts: name,
type, labels), not from the mapping table, so a row the table lacks or types differently shows up
as a family the check does not submit. Each family gets its own endpoint and its own instance, with
the component's endpoint option; a family whose name other components share (`cilium_hive_status`,
the relay's unprefixed `process_*`) is served beside two families of the component's own, as a
real endpoint always has them, so the check still recognises whose endpoint it is.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from cilium_check.components import BY_NAME, COMPONENTS
from cilium_check.mapping import load_table
from cilium_check.openmetrics_map import metadata_name
from cilium_check.tags import COMPONENT_TAG
from cilium_dev.fixtures import FixtureServer
from datadog_checks.cilium import CiliumCheck

ROOT = Path(__file__).resolve().parents[1]
with open(Path(__file__).parent / "data" / "cilium-metrics-catalog.csv") as f:
    CATALOG = list(csv.DictReader(f))
with open(ROOT / "metadata.csv") as f:
    METADATA = {row["metric_name"]: row["metric_type"] for row in csv.DictReader(f)}

# Families whose only content is the release in a `version` label: they become version metadata.
VERSION_FAMILIES = {f"{c}_version" for c in ("cilium", "cilium_operator", "cilium_clustermesh_apiserver", "cilium_kvstoremesh")}
AGGREGATOR_TYPES = {0: "gauge", 1: "rate", 2: "count", 3: "count", 4: "count", 5: "count"}  # monotonic_count is 3


def exposition(fact: dict) -> list[str]:
    """The lines of one catalog family, one series with the catalog's labels (two runs apart by 10)."""
    name, kind = fact["metric"], fact["type"]
    labels = ",".join(f'{label}="{label}-value"' for label in fact["labels"].split())
    brace = "{" + labels + "}" if labels else ""
    if name in VERSION_FAMILIES:
        return [f"# TYPE {name} gauge", f'{name}{{version="1.20.3",revision="abc",arch="amd64"}} 1']
    lines = [f"# HELP {name} {fact['description']}", f"# TYPE {name} {kind}"]
    def with_label(name: str, value: str) -> str:
        return "{" + ",".join(filter(None, [labels, '%s="%s"' % (name, value)])) + "}"

    if kind == "histogram":
        for le, n in (("0.1", 2), ("1", 5), ("+Inf", 7)):
            lines.append(f"{name}_bucket{with_label('le', le)} {n}")
        lines += [f"{name}_sum{brace} 3.5", f"{name}_count{brace} 7"]
    elif kind == "summary":
        lines.append(f"{name}{with_label('quantile', '0.5')} 0.2")
        lines += [f"{name}_sum{brace} 3.5", f"{name}_count{brace} 7"]
    else:
        lines.append(f"{name}{brace} 42")
    return lines


def own_prefixed(component: str, but: str) -> list[dict]:
    """Two catalog families with a name only this component serves (none for the agent)."""
    prefixes = BY_NAME[component].family_prefixes
    if not prefixes:
        return []
    own = [f for f in CATALOG if f["component"] == component and f["metric"].startswith(prefixes) and f["metric"] != but]
    return own[:2]


def expected_names(component: str, family: str) -> set[str]:
    """What the table says the check submits for a current family of a component."""
    return {
        s.name
        for row in load_table()
        if row.component == component and row.wire_name == family and row.until is None
        for s in row.submissions()
    }


@pytest.fixture(scope="module")
def served():
    with FixtureServer() as server:
        yield server


def run_family(server, aggregator, datadog_agent, fact: dict) -> dict[str, set[str]]:
    component = fact["component"]
    lines = exposition(fact)
    own = BY_NAME[component].family_prefixes
    if own and not fact["metric"].startswith(own):
        for beside in own_prefixed(component, fact["metric"]):
            lines += exposition(beside)
    url = server.set_payload(f"/catalog/{component}/{fact['metric']}/metrics", "\n".join(lines) + "\n")
    aggregator.reset()
    datadog_agent.reset()
    check = CiliumCheck("cilium", {}, [{BY_NAME[component].option: url, "use_openmetrics": True}])
    check.check_id = f"catalog:{component}:{fact['metric']}"
    for _ in range(2):
        assert check.run() == "", f"{component} {fact['metric']}"
    sent: dict[str, set[str]] = {}
    for name in aggregator._metrics:
        for m in aggregator._metrics[name]:
            if name.startswith("cilium.check."):
                continue
            assert f"{COMPONENT_TAG}:{component}" in m.tags, (name, m.tags)
            sent.setdefault(name, set()).add(AGGREGATOR_TYPES[m.type])
    return sent


def test_every_catalog_family_of_every_component_served_alone(served, aggregator, datadog_agent):
    covered: Counter[str] = Counter()
    total: Counter[str] = Counter()
    missing, mistyped = [], []
    for fact in CATALOG:
        component, family = fact["component"], fact["metric"]
        total[component] += 1
        sent = run_family(served, aggregator, datadog_agent, fact)
        if family in VERSION_FAMILIES:
            key = metadata_name(component)
            check_id = f"catalog:{component}:{family}"
            datadog_agent.assert_metadata(check_id, {f"{key}.raw": "1.20.3"})
            covered[component] += 1
            continue
        wanted = expected_names(component, family)
        if not wanted or not wanted <= set(sent):
            missing.append((component, family, sorted(wanted - set(sent)) or "no table row"))
            continue
        wrong = [(n, sent[n], METADATA.get(n)) for n in wanted if sent[n] != {METADATA.get(n)}]
        if wrong:
            mistyped.append((component, family, wrong))
            continue
        covered[component] += 1
    for c in COMPONENTS:
        print(f"{c.name}: {covered[c.name]} of {total[c.name]} catalog families")
    print(f"all: {sum(covered.values())} of {len(CATALOG)}")
    assert missing == []
    assert mistyped == []
    assert sum(covered.values()) == len(CATALOG) == 479
    assert set(total) == {c.name for c in COMPONENTS}
