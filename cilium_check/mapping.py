"""The mapping table: how each Cilium wire family becomes a Datadog metric.

`metrics.csv` beside this module is the single source of truth. The check's scraper
configuration, `metadata.csv`, the README's metric list, the fixture payloads and the tests'
expectations are all derived from the rows loaded here.

Columns of `metrics.csv`:

component      a name of `components.COMPONENTS`: agent | operator | hubble | clustermesh-apiserver |
               kvstoremesh | standalone-dns-proxy | hubble-relay
wire_name      the family exactly as Cilium exposes it (a counter keeps its `_total`;
               a histogram is named without `_bucket`/`_sum`/`_count`)
type           counter | gauge | histogram | summary | metadata, as exposed in [since, until]
datadog_name   the Datadog name without the `cilium.` namespace and without the suffix the type
               adds (`.count` for counters; `.bucket`/`.sum`/`.count` for histograms)
unit, per_unit Datadog unit names (may be empty)
orientation    -1, 0 or 1: whether a higher value is worse, neutral or better
since, until   first and last Cilium minor release that exposes the family (`until` empty:
               still exposed by current Cilium)
labels         space-separated label names; `name>=1.20` or `name<=1.18` limits a label to a
               range of releases
bundled_name   the name the check bundled with the Agent submits, where this one deviates from it
legacy_name    the family's name in legacy mode (`use_openmetrics: false`), where the bundled check's
               legacy map does not follow the V1 rule (the Datadog name, plus `.total` when the wire
               name ends in `_total`); without the namespace, like `datadog_name`
description    what the metric tells a user, in plain ASCII
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Iterable

NAMESPACE = "cilium"

TYPES = ("counter", "gauge", "histogram", "summary", "metadata")


def parse_version(text: str) -> tuple[int, int]:
    """Parse a Cilium minor release such as `1.14` (or a full `1.14.3`) into `(1, 14)`."""
    parts = text.strip().lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a Cilium release: {text!r} (expected MAJOR.MINOR, e.g. 1.16)") from None


def format_version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


@dataclass(frozen=True)
class Label:
    """A label of a wire family, possibly limited to a range of Cilium releases."""

    name: str
    since: tuple[int, int] | None = None
    until: tuple[int, int] | None = None

    @classmethod
    def parse(cls, token: str) -> Label:
        if ">=" in token:
            name, version = token.split(">=", 1)
            return cls(name, since=parse_version(version))
        if "<=" in token:
            name, version = token.split("<=", 1)
            return cls(name, until=parse_version(version))
        return cls(token)

    def in_version(self, version: tuple[int, int]) -> bool:
        return (self.since is None or version >= self.since) and (self.until is None or version <= self.until)


@dataclass(frozen=True)
class Submission:
    """One Datadog metric a row produces, with the type that metadata.csv records for it."""

    name: str  # full name, namespace included
    metadata_type: str  # gauge | count
    unit: str
    per_unit: str
    description: str
    orientation: int


@dataclass(frozen=True)
class MetricRow:
    """One row of the mapping table."""

    component: str
    wire_name: str
    type: str
    datadog_name: str
    unit: str
    per_unit: str
    orientation: int
    since: tuple[int, int]
    until: tuple[int, int] | None
    labels: tuple[Label, ...]
    bundled_name: str
    legacy_name: str
    description: str

    @property
    def family(self) -> str:
        """The family name the Prometheus text parser reports: counters lose `_total`."""
        if self.type == "counter" and self.wire_name.endswith("_total"):
            return self.wire_name[: -len("_total")]
        return self.wire_name

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.datadog_name}"

    @property
    def legacy_base(self) -> str:
        """The name legacy mode submits the family under, without the namespace or a histogram's suffixes.

        The bundled check's legacy (OpenMetrics V1) map names a family by its Datadog name, with
        `.total` where the wire name ends in `_total`; V1 appends nothing for the type. Families that
        map never held follow the same rule; `legacy_name` records where the map departs from it.
        """
        if self.legacy_name:
            return self.legacy_name
        return self.datadog_name + (".total" if self.wire_name.endswith("_total") else "")

    def in_version(self, version: tuple[int, int]) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)

    def labels_in(self, version: tuple[int, int]) -> list[str]:
        return [label.name for label in self.labels if label.in_version(version)]

    def submissions(self) -> list[Submission]:
        """The Datadog metrics this family is submitted as, by the default histogram settings."""
        base, d = self.full_name, self.description
        if self.type == "metadata":
            return []
        if self.type == "gauge":
            return [Submission(base, "gauge", self.unit, self.per_unit, d, self.orientation)]
        if self.type == "counter":
            return [Submission(f"{base}.count", "count", self.unit, self.per_unit, d, self.orientation)]
        if self.type == "histogram":
            return [
                Submission(f"{base}.bucket", "count", "", "", f"{d} (histogram buckets, tagged upper_bound)", 0),
                Submission(f"{base}.sum", "count", self.unit, "", f"{d} (sum of observed values)", 0),
                Submission(f"{base}.count", "count", "", "", f"{d} (number of observations)", 0),
            ]
        if self.type == "summary":
            return [
                Submission(f"{base}.quantile", "gauge", self.unit, "", f"{d} (quantiles, tagged quantile)", 0),
                Submission(f"{base}.sum", "count", self.unit, "", f"{d} (sum of observed values)", 0),
                Submission(f"{base}.count", "count", "", "", f"{d} (number of observations)", 0),
            ]
        raise AssertionError(self.type)

    def legacy_submissions(self) -> list[Submission]:
        """The Datadog metrics this family is submitted as in legacy mode, by V1's default settings:
        counters as monotonic counts under their legacy name, histograms and summaries as gauges
        (a histogram's finite buckets under `.count`, tagged `upper_bound`)."""
        base, d = f"{NAMESPACE}.{self.legacy_base}", f"{self.description} [legacy mode]"
        if self.type == "metadata":
            return []
        if self.type == "gauge":
            return [Submission(base, "gauge", self.unit, self.per_unit, d, self.orientation)]
        if self.type == "counter":
            return [Submission(base, "count", self.unit, self.per_unit, d, self.orientation)]
        if self.type == "summary":
            parts = [("quantile", "quantiles, tagged quantile"), ("sum", "sum of observed values")]
            parts.append(("count", "number of observations"))
        else:
            parts = [("sum", "sum of observed values"), ("count", "number of observations; buckets tagged upper_bound")]
        return [
            Submission(f"{base}.{part}", "gauge", self.unit if part != "count" else "", "", f"{d} ({what})", 0)
            for part, what in parts
        ]


COLUMNS = (
    "component",
    "wire_name",
    "type",
    "datadog_name",
    "unit",
    "per_unit",
    "orientation",
    "since",
    "until",
    "labels",
    "bundled_name",
    "legacy_name",
    "description",
)


class MappingError(ValueError):
    """A row of the mapping table is malformed; the message names the file, line and column."""


def _parse_row(raw: dict[str, str], where: str) -> MetricRow:
    if raw.get("type") not in TYPES:
        raise MappingError(f"{where}: type {raw.get('type')!r} is not one of {', '.join(TYPES)}")
    try:
        orientation = int(raw["orientation"] or 0)
        since = parse_version(raw["since"])
        until = parse_version(raw["until"]) if raw["until"] else None
        labels = tuple(Label.parse(token) for token in raw["labels"].split())
    except ValueError as e:
        raise MappingError(f"{where}: {e}") from None
    return MetricRow(
        component=raw["component"],
        wire_name=raw["wire_name"],
        type=raw["type"],
        datadog_name=raw["datadog_name"],
        unit=raw["unit"],
        per_unit=raw["per_unit"],
        orientation=orientation,
        since=since,
        until=until,
        labels=labels,
        bundled_name=raw["bundled_name"],
        legacy_name=raw["legacy_name"],
        description=raw["description"],
    )


def read_table(lines: Iterable[str], source: str = "metrics.csv") -> tuple[MetricRow, ...]:
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise MappingError(f"{source}: header must be {','.join(COLUMNS)}, found {','.join(reader.fieldnames or ())}")
    return tuple(_parse_row(raw, f"{source}:{reader.line_num}") for raw in reader)


@cache
def load_table() -> tuple[MetricRow, ...]:
    """All rows of the packaged mapping table."""
    text = resources.files(__package__).joinpath("metrics.csv").read_text(encoding="utf-8")
    return read_table(text.splitlines(), "cilium_check/metrics.csv")


def rows_for(component: str) -> tuple[MetricRow, ...]:
    return tuple(row for row in load_table() if row.component == component)
