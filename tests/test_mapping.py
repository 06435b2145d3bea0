"""The mapping table against the facts it is built from, and the files derived from it."""

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from cilium_dev import generate
from cilium_check.mapping import MappingError, load_table, parse_version, read_table
from cilium_check.openmetrics_map import superseded_families

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
TABLE = load_table()
SUPPORTED = [(1, minor) for minor in range(10, 21)]

with open(DATA / "datadog-units.txt") as f:
    UNITS = {line.strip() for line in f if line.strip() and not line.startswith("#")}

with open(DATA / "cilium-metrics-catalog.csv") as f:
    CATALOG = list(csv.DictReader(f))

with open(DATA / "bundled-cilium-check-names.csv") as f:
    BUNDLED = list(csv.DictReader(f))

VERSION_FAMILIES = {
    "cilium_version",
    "cilium_operator_version",
    "cilium_clustermesh_apiserver_version",
    "cilium_kvstoremesh_version",
}
NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def test_every_catalog_family_has_a_current_row_of_its_type():
    current = {(row.component, row.wire_name): row.type for row in TABLE if row.until is None}
    missing, mistyped = [], []
    for fact in CATALOG:
        key = (fact["component"], fact["metric"])
        expected = "metadata" if fact["metric"] in VERSION_FAMILIES else fact["type"]
        if key not in current:
            missing.append(key)
        elif current[key] != expected:
            mistyped.append((key, current[key], expected))
    assert missing == []
    assert mistyped == []


def bundled_component(row):
    if row["raw_metric"].startswith("cilium_operator_") or row["datadog_base_name"].startswith("cilium.operator."):
        return "operator"
    return "agent"


def test_bundled_names_are_kept_or_the_deviation_is_recorded():
    ours = defaultdict(set)
    recorded = defaultdict(set)
    for row in TABLE:
        ours[(row.component, row.wire_name)].add(row.full_name)
        if row.bundled_name:
            recorded[(row.component, row.wire_name)].add(row.bundled_name)
    lost = []
    for fact in BUNDLED:
        key = (bundled_component(fact), fact["raw_metric"])
        name = fact["datadog_base_name"]
        if name not in ours[key] and name not in recorded[key]:
            lost.append((key, name, sorted(ours[key])))
    assert lost == []


def test_recorded_deviations_are_real():
    bundled = defaultdict(set)
    for fact in BUNDLED:
        bundled[(bundled_component(fact), fact["raw_metric"])].add(fact["datadog_base_name"])
    for row in TABLE:
        if row.bundled_name:
            assert row.bundled_name in bundled[(row.component, row.wire_name)], row
            assert row.bundled_name != row.full_name, row


def test_the_counter_cut_bug_is_fixed():
    names = {row.full_name for row in TABLE if row.wire_name == "cilium_k8s_client_api_calls_counter"}
    assert names == {"cilium.k8s_client.api_calls"}


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.component}:{r.wire_name}:{r.since}")
def test_row_is_well_formed(row):
    assert NAME.match(row.datadog_name), row.datadog_name
    assert "_._" not in row.full_name and ".." not in row.full_name
    assert row.unit in UNITS | {""}, row.unit
    assert row.per_unit in UNITS | {""}, row.per_unit
    assert row.orientation in (-1, 0, 1)
    assert row.description and row.description.isascii() and "|" not in row.description
    assert len(row.description) <= 300
    assert row.until is None or row.until >= row.since
    if row.type == "counter" and not row.family.endswith("_count"):
        assert not row.datadog_name.endswith(".count"), "V2 adds .count to counters"


def test_submitted_names_have_one_type():
    types = defaultdict(set)
    for row in TABLE:
        for submission in row.submissions():
            types[submission.name].add(submission.metadata_type)
    assert {name: t for name, t in types.items() if len(t) > 1} == {}


@pytest.mark.parametrize("version", SUPPORTED, ids=lambda v: f"{v[0]}.{v[1]}")
def test_no_two_families_of_one_release_share_a_name(version):
    """Unless the check keeps only the successor of a renamed pair (see superseded_families)."""
    owners = defaultdict(set)
    for row in TABLE:
        if row.in_version(version):
            for submission in row.submissions():
                owners[(row.component, submission.name)].add(row.family)
    for (component, name), families in owners.items():
        if len(families) > 1:
            successors = superseded_families(component)
            assert all(successors.get(f) in families for f in families if f in successors), (name, families)
            assert len([f for f in families if f not in successors]) == 1, (name, families)


def test_renamed_families_keep_one_series():
    by_name = defaultdict(list)
    for row in TABLE:
        by_name[(row.component, row.full_name)].append(row)
    # The 1.15-1.16 LB-IPAM gauges kept `_total`; 1.17 dropped it. One name covers both.
    lbipam = by_name[("operator", "cilium.operator.lbipam.ips.available")]
    assert {r.wire_name for r in lbipam} >= {
        "cilium_operator_lbipam_ips_available_total",
        "cilium_operator_lbipam_ips_available",
    }
    assert {r.type for r in lbipam} == {"gauge"}


def test_metadata_csv_is_generated_from_the_table():
    assert (ROOT / "metadata.csv").read_text() == generate.render_metadata_csv(), "run `make generate`"


def test_metrics_doc_is_generated_from_the_table():
    assert (ROOT / "docs" / "metrics.md").read_text() == generate.render_metrics_doc(), "run `make generate`"


def test_metadata_csv_follows_datadog_rules():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    prefix = manifest["assets"]["integration"]["metrics"]["prefix"]
    with open(ROOT / "metadata.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(generate.METADATA_COLUMNS)
    names = [r["metric_name"] for r in rows]
    assert len(names) == len(set(names))
    for r in rows:
        assert r["metric_name"].startswith(prefix)
        assert r["metric_type"] in ("count", "gauge", "rate")
        assert r["orientation"] in ("-1", "0", "1")
        assert r["integration"] == "cilium"
        assert r["unit_name"] in UNITS | {""}
        assert len(r["description"]) <= 400


def test_manifest_declares_the_assets():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    integration = manifest["assets"]["integration"]
    assert (ROOT / integration["metrics"]["metadata_path"]).is_file()
    checks = json.loads((ROOT / integration["service_checks"]["metadata_path"]).read_text())
    assert [c["check"] for c in checks] == ["cilium.openmetrics.health", "cilium.prometheus.health"]
    assert integration["metrics"]["check"] in {r["metric_name"] for r in csv.DictReader(open(ROOT / "metadata.csv"))}


def test_bad_table_rows_are_reported_with_their_line():
    header = ",".join(
        "component wire_name type datadog_name unit per_unit orientation since until labels bundled_name legacy_name"
        " description".split()
    )
    with pytest.raises(MappingError, match=r"metrics.csv:2: type 'counterr'"):
        read_table([header, "agent,x,counterr,x,,,0,1.1,,,,,d"])
    with pytest.raises(MappingError, match=r"metrics.csv:2: not a Cilium release: 'one'"):
        read_table([header, "agent,x,gauge,x,,,0,one,,,,,d"])
    assert parse_version("v1.16.3") == (1, 16)


def test_readme_blocks_are_generated():
    text = (ROOT / "README.md").read_text()
    for name in generate.README_BLOCKS:
        assert f"<!-- begin: {name} -->" in text, name
    assert text == generate.render_readme(text), "run `make generate`"
