"""Agreement with the real Prometheus server: what Prometheus stores from a payload is what the
check submits from it, name mapping aside (same label sets, same values), for every fixture payload.

One Prometheus (Debian's `prometheus` package, see `cilium_dev.prometheus`) scrapes every fixture
payload of FIXTURE_CASES (each component in each fixture release it exists in) from one fixture server, each payload static
(the same bytes on every request) and scraped by its own job. Its stored series are read once,
then the check (fast path and stock OpenMetrics V2 path) scrapes the same URLs, and each payload's
submissions are compared both ways:

- every series Prometheus stored, of a family the check maps, was submitted by the check under
  its Datadog name with the same tags (the label set, with the check's reserved-label renames,
  `le` as `upper_bound` in canonical form) and the same value;
- every metric the check submitted (its own `cilium.check.*` aside) is a series Prometheus stored.

Where they differ by design, the difference is classified and counted, not ignored:
- `+Inf` buckets: the check does not submit them (they equal `.count`, which is asserted);
- metadata families (`*_version` info gauges): submitted as check metadata, not as metrics;
- superseded families: a release exposing a renamed family under both names gets the
  successor's series only from the check (`openmetrics_map.superseded_families`); no fixture
  version does, so Cilium 1.17's agent payload (`agent-1.17`) is scraped too;
- NaN and +/-Inf values: Prometheus stores them, the check skips them. The fixture payloads have
  none, so a payload of its own (`agent-1.20+nonfinite`) puts some in, and the disagreements are
  asserted to be exactly those samples.

Run with `-s` for a summary line per payload. The module is skipped where `prometheus` and
`promtool` are not installed, except in CI (`CI=true`), where it fails instead: `.ci/run` installs
them.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
from cilium_dev.prometheus import PrometheusServer, Series, find_binaries, prometheus_version

from datadog_checks.cilium import CiliumCheck
from cilium_check.components import BY_NAME
from cilium_dev.fixtures.payloads import FIXTURE_CASES, render
from cilium_dev.fixtures.server import FixtureServer
from cilium_check.mapping import MetricRow, parse_version, rows_for
from cilium_check.openmetrics_map import superseded_families
from cilium_check.tags import COMPONENT_TAG, RESERVED_LABEL_RENAMES

PROMETHEUS, PROMTOOL = find_binaries()
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
MISSING = [name for name, path in (("prometheus", PROMETHEUS), ("promtool", PROMTOOL)) if path is None]
MISSING_REASON = (
    f"{' and '.join(MISSING)} not installed: install Debian's `prometheus` package "
    "(apt-get install prometheus; .ci/run does) to compare the check with the real Prometheus"
)
if MISSING and not IN_CI:
    pytest.skip(MISSING_REASON, allow_module_level=True)

# The check's own tags on every metric of an endpoint; not labels of the payload.
CHECK_TAG_KEYS = (COMPONENT_TAG, "endpoint")
SELF_METRIC_PREFIX = "cilium.check."
# A static payload: the 5th scrape, so counters and histograms are well past their base values.
SCRAPE = 5
NONFINITE = ("agent", "1.20", "nonfinite")
# Cilium 1.17 exposes a renamed agent family under both names (not a fixture version of its own).
RENAMED = ("agent", "1.17", "")
# The non-finite values the text format has.
NONFINITE_VALUES = ("NaN", "+Inf", "-Inf")


def job_name(component: str, version: str, variant: str = "") -> str:
    return f"{component}-{version}" + (f"+{variant}" if variant else "")


def payload_path(component: str, version: str, variant: str = "") -> str:
    """Where the fixture server serves a payload: a component's own route, or beside it for a variant."""
    return f"/{component}/{version}/metrics" if not variant else f"/{component}/{version}/{variant}/metrics"


def with_nonfinite_values(payload: str) -> tuple[str, int]:
    """`payload` with the values of some gauge and counter samples replaced by NaN, +Inf and -Inf."""
    lines, replaced, kinds = payload.splitlines(), 0, {}
    for i, line in enumerate(lines):
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            kinds[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        # Every 7th gauge or counter sample (histograms keep their buckets consistent).
        if kinds.get(name) in ("gauge", "counter") and i % 7 == 0:
            series = line.rsplit(" ", 1)[0]
            lines[i] = f"{series} {NONFINITE_VALUES[replaced % len(NONFINITE_VALUES)]}"
            replaced += 1
    return "\n".join(lines) + "\n", replaced


# ---------------------------------------------------------------------------------------------
# Prometheus scrapes every payload once, for the whole module


@dataclass
class Scraped:
    """One payload: its URL on the fixture server and the series Prometheus stored from it."""

    component: str
    version: str
    url: str
    series: list[Series]
    samples: int  # sample lines in the payload


@pytest.fixture(scope="module")
def scraped():
    if MISSING:
        pytest.fail(f"{MISSING_REASON} (CI=true: not skipped)", pytrace=False)
    started = time.monotonic()
    with FixtureServer() as server:
        payloads: dict[tuple[str, str, str], str] = {}
        for component, version in FIXTURE_CASES:
            payloads[(component, version, "")] = render(component, version, SCRAPE)
        payloads[RENAMED] = render(RENAMED[0], RENAMED[1], SCRAPE)
        text, replaced = with_nonfinite_values(render(NONFINITE[0], NONFINITE[1], SCRAPE))
        assert replaced > 10, "the non-finite payload has too few non-finite samples"
        payloads[NONFINITE] = text
        # Static payloads: every request, Prometheus' or the check's, gets the same bytes.
        urls = {key: server.set_payload(payload_path(*key), text) for key, text in payloads.items()}

        result: dict[str, Scraped] = {}
        with PrometheusServer({job_name(*key): url for key, url in urls.items()}) as prom:
            prom.wait_for_scrapes(timeout=45)
            for key, text in payloads.items():
                samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
                result[job_name(*key)] = Scraped(key[0], key[1], urls[key], prom.series(job_name(*key)), samples)
        print(
            f"\n{prometheus_version(PROMETHEUS)}: {len(result)} payloads, "
            f"{sum(len(s.series) for s in result.values())} series scraped and read in "
            f"{time.monotonic() - started:.1f}s"
        )
        yield result


# ---------------------------------------------------------------------------------------------
# Prometheus' series as the check should submit them


@dataclass(frozen=True)
class Part:
    """What one sample name of a row is submitted as."""

    row: MetricRow
    kind: str  # counter | gauge | bucket | sum | count | quantile | metadata
    datadog_name: str


def sample_names(component: str, version: str) -> dict[str, Part]:
    """`{sample name as Prometheus stores it: Part}` for every row of the component.

    Rows of the payload's release come first; rows of other releases fill in the rest, as the
    check maps every family of the component whatever the release.
    """
    v = parse_version(version)
    rows = sorted(rows_for(component), key=lambda row: not row.in_version(v))
    names: dict[str, Part] = {}
    for row in rows:
        subs = [s.name for s in row.submissions()]
        if row.type == "metadata":
            parts = {row.wire_name: ("metadata", "")}
        elif row.type == "gauge":
            parts = {row.wire_name: ("gauge", subs[0])}
        elif row.type == "counter":
            parts = {row.wire_name: ("counter", subs[0])}
        elif row.type == "histogram":
            parts = {
                f"{row.wire_name}_bucket": ("bucket", subs[0]),
                f"{row.wire_name}_sum": ("sum", subs[1]),
                f"{row.wire_name}_count": ("count", subs[2]),
            }
        else:  # summary
            parts = {
                row.wire_name: ("quantile", subs[0]),
                f"{row.wire_name}_sum": ("sum", subs[1]),
                f"{row.wire_name}_count": ("count", subs[2]),
            }
        for name, (kind, datadog_name) in parts.items():
            names.setdefault(name, Part(row, kind, datadog_name))
    return names


def canonical_number(text: str) -> str:
    """A bound as the check tags it (OpenMetrics V2's canonical form: `1` -> `1.0`, no `-0.0`)."""
    return str(float(text) or 0)


def tags_of(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(sorted(f"{RESERVED_LABEL_RENAMES.get(name, name)}:{value}" for name, value in labels.items()))


Key = tuple[str, tuple[str, ...]]  # (Datadog name, sorted tags)


@dataclass
class Expected:
    """Prometheus' series of one payload, sorted by how the check should submit them."""

    metrics: dict[Key, tuple[float, Series]] = field(default_factory=dict)
    inf_buckets: list[tuple[Series, Key]] = field(default_factory=list)  # +Inf bucket and its `.count` key
    metadata: list[Series] = field(default_factory=list)
    unmapped: list[Series] = field(default_factory=list)
    superseded: dict[Key, Series] = field(default_factory=dict)
    collisions: list[Series] = field(default_factory=list)  # two series on one Datadog context


def expected_submissions(component: str, version: str, series: list[Series]) -> Expected:
    names = sample_names(component, version)
    present_families = {names[s.name].row.family for s in series if s.name in names}
    superseded = {old: new for old, new in superseded_families(component).items() if new in present_families}
    out = Expected()
    for s in series:
        part = names.get(s.name)
        if part is None:
            out.unmapped.append(s)
            continue
        if part.kind == "metadata":
            out.metadata.append(s)
            continue
        labels = s.label_dict
        if part.kind == "bucket":
            le = labels.pop("le")
            if math.isinf(float(le)) and float(le) > 0:
                out.inf_buckets.append((s, (part.row.submissions()[2].name, tags_of(labels))))
                continue
            labels["upper_bound"] = canonical_number(le)
        elif part.kind == "quantile":
            labels["quantile"] = canonical_number(labels["quantile"])
        key = (part.datadog_name, tags_of(labels))
        if part.row.family in superseded:
            out.superseded[key] = s
            continue
        if key in out.metrics:
            out.collisions.append(s)
            continue
        out.metrics[key] = (s.value, s)
    return out


# ---------------------------------------------------------------------------------------------
# what the check submits


@dataclass
class Submitted:
    metrics: dict[Key, list[float]] = field(default_factory=lambda: defaultdict(list))
    empty_label_tags: int = 0  # submissions with a tag `name:` for a label Prometheus dropped as empty
    tag_problems: list[str] = field(default_factory=list)


def check_submissions(aggregator, component: str, url: str) -> Submitted:
    """What the check's last run submitted, keyed as `Expected.metrics` (the check's own tags removed)."""
    out = Submitted()
    own_tags = sorted([f"{COMPONENT_TAG}:{component}", f"endpoint:{url}"])
    for name, stubs in aggregator._metrics.items():
        if name.startswith(SELF_METRIC_PREFIX):
            continue
        for stub in stubs:
            own = sorted(t for t in stub.tags if t.split(":", 1)[0] in CHECK_TAG_KEYS)
            if own != own_tags:
                out.tag_problems.append(f"{name} {stub.tags}: expected {own_tags} once each")
            tags = [t for t in stub.tags if t.split(":", 1)[0] not in CHECK_TAG_KEYS]
            # Prometheus drops a label whose value is empty (empty and absent are one in its data
            # model); the check submits it as a tag with an empty value (`error:`).
            empty = [t for t in tags if t.endswith(":") and t.count(":") == 1]
            if empty:
                out.empty_label_tags += 1
                tags = [t for t in tags if t not in empty]
            out.metrics[(name, tuple(sorted(tags)))].append(stub.value)
    return out


# ---------------------------------------------------------------------------------------------
# the comparison


@dataclass
class Comparison:
    compared: int = 0  # series Prometheus stored that the check should submit
    agreements: int = 0  # ...that it submitted with the same tags and value
    missing: list[str] = field(default_factory=list)  # stored by Prometheus, not submitted
    differing: list[str] = field(default_factory=list)  # submitted with another value
    extra: list[str] = field(default_factory=list)  # submitted, not stored by Prometheus
    duplicates: list[str] = field(default_factory=list)  # one context submitted several times
    nonfinite: list[Series] = field(default_factory=list)  # NaN/Inf stored by Prometheus, skipped by the check
    superseded_submitted: list[str] = field(default_factory=list)
    inf_bucket_mismatches: list[str] = field(default_factory=list)


def compare(expected: Expected, submitted: Submitted) -> Comparison:
    result = Comparison()
    for key, (value, s) in expected.metrics.items():
        result.compared += 1
        values = submitted.metrics.get(key)
        where = f"{s.name}{dict(s.labels)} = {s.value!r} -> {key[0]} {list(key[1])}"
        if not math.isfinite(value):
            if values:
                result.differing.append(f"{where}: the check submitted {values} for a non-finite value")
            else:
                result.nonfinite.append(s)
        elif not values:
            result.missing.append(where)
        elif len(values) > 1:
            result.duplicates.append(f"{where}: submitted {len(values)} times: {values}")
        elif values[0] != value:
            result.differing.append(f"{where}: the check submitted {values[0]!r}")
        else:
            result.agreements += 1
    for key, values in submitted.metrics.items():
        if key in expected.metrics:
            continue
        shown = f"{key[0]} {list(key[1])} = {values}"
        (result.superseded_submitted if key in expected.superseded else result.extra).append(shown)
    for s, count_key in expected.inf_buckets:
        count = expected.metrics.get(count_key)
        if count is None or count[0] != s.value and not (math.isnan(s.value) and math.isnan(count[0])):
            result.inf_bucket_mismatches.append(f"{s.name}{dict(s.labels)} = {s.value} but the count is {count}")
    return result


def summary(job: str, fast_path: bool, payload: Scraped, expected: Expected, submitted: Submitted, result: Comparison):
    disagreements = len(result.missing) + len(result.differing) + len(result.extra) + len(result.duplicates)
    exported = sum(1 for s in payload.series if s.exported)
    return (
        f"{job:27} {'fast' if fast_path else 'stock'}: {len(payload.series):5} series, compared {result.compared:5}, "
        f"agree {result.agreements:5} | +Inf buckets {len(expected.inf_buckets):3}, metadata {len(expected.metadata)}, "
        f"superseded {len(expected.superseded)}, exported_job {exported:2}, empty labels "
        f"{submitted.empty_label_tags:2}, NaN/Inf {len(result.nonfinite):2} | other disagreements {disagreements}"
    )


def run_check(aggregator, dd_run_check, component: str, url: str, fast_path: bool) -> None:
    check = CiliumCheck("cilium", {}, [{BY_NAME[component].option: url, "fast_path": fast_path}])
    dd_run_check(check)
    # The second run flushes counters: read the raw values that run submitted.
    aggregator.reset()
    dd_run_check(check)


def _shown(items: list[str], limit: int = 15) -> str:
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n  " + "\n  ".join(items[:limit]) + more


PAYLOADS = [(c, v, "") for c, v in FIXTURE_CASES] + [RENAMED, NONFINITE]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "stock"])
@pytest.mark.parametrize("component, version, variant", PAYLOADS, ids=[job_name(*p) for p in PAYLOADS])
def test_check_agrees_with_prometheus(component, version, variant, fast_path, scraped, aggregator, dd_run_check):
    job = job_name(component, version, variant)
    payload = scraped[job]
    # Prometheus stored one series per sample line: nothing was dropped or merged on the way in.
    assert len(payload.series) == payload.samples, (job, len(payload.series), payload.samples)

    expected = expected_submissions(component, version, payload.series)
    run_check(aggregator, dd_run_check, component, payload.url, fast_path)
    submitted = check_submissions(aggregator, component, payload.url)
    result = compare(expected, submitted)
    print("\n" + summary(job, fast_path, payload, expected, submitted, result), end="")

    assert not submitted.tag_problems, "the check's own tags:" + _shown(submitted.tag_problems)
    assert not expected.unmapped, "series of families the table does not map:" + _shown(
        [f"{s.name}{dict(s.labels)}" for s in expected.unmapped]
    )
    assert not expected.collisions, "series that map to one Datadog context:" + _shown(
        [f"{s.name}{dict(s.labels)}" for s in expected.collisions]
    )
    assert not result.missing, "stored by Prometheus, not submitted by the check:" + _shown(result.missing)
    assert not result.differing, "submitted with another value than Prometheus stored:" + _shown(result.differing)
    assert not result.duplicates, "one context submitted several times:" + _shown(result.duplicates)
    assert not result.extra, "submitted by the check, not stored by Prometheus:" + _shown(result.extra)
    assert not result.superseded_submitted, "superseded series submitted:" + _shown(result.superseded_submitted)
    assert not result.inf_bucket_mismatches, "+Inf bucket differs from the count:" + _shown(
        result.inf_bucket_mismatches
    )

    # NaN/Inf values are the only disagreements left, and they are exactly the non-finite
    # samples Prometheus stored (of the families the check submits as metrics).
    assert result.compared == result.agreements + len(result.nonfinite) > 0
    stored_nonfinite = [s for key, (value, s) in expected.metrics.items() if not math.isfinite(value)]
    assert result.nonfinite == stored_nonfinite
    if (component, version, variant) == RENAMED:
        assert expected.superseded, "Cilium 1.17 exposes no renamed family under both names any more"
    if variant == "nonfinite":
        kinds = Counter(repr(s.value) for s in result.nonfinite)
        assert set(kinds) == {"nan", "inf", "-inf"}, kinds
    else:
        assert not result.nonfinite, "a fixture payload has NaN/Inf values: compare them apart"
