"""The mapping table turned into OpenMetrics V2 `metrics` entries, one map per component and mode.

In the current mode each family gets the stock transformer of its type. In legacy mode
(`use_openmetrics: false`) it gets the transformer of `cilium_check.transformers`, which submits what
the bundled check's OpenMetrics V1 mode submits, under the family's legacy name.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from .mapping import MetricRow, rows_for


def metadata_name(component: str) -> str | None:
    """The metadata key of a component's release (`version` for the agent, as the bundled check)."""
    return next((row.datadog_name for row in rows_for(component) if row.type == "metadata"), None)


# The legacy transformer of each type (a gauge is the same in both modes).
LEGACY_TYPES = {
    "counter": "legacy_counter",
    "gauge": "gauge",
    "histogram": "legacy_histogram",
    "summary": "legacy_summary",
}


def transformer_config(rows: list[MetricRow], legacy: bool = False) -> dict[str, Any]:
    """The V2 transformer for one wire family, from the table rows that describe it."""
    first = rows[0]
    if first.type == "metadata":
        return {"name": first.datadog_name, "type": "metadata", "label": "version"}
    types = {row.type for row in rows}
    names = {row.legacy_base if legacy else row.datadog_name for row in rows}
    if len(names) > 1:
        raise ValueError(f"{first.component} family {first.wire_name} has several Datadog names: {sorted(names)}")
    # A family whose type changed between releases (a histogram that became a gauge) follows
    # the type each endpoint declares among the table's (`table_dynamic`); all others get the
    # table's type, so that a missing or wrong `# TYPE` line cannot change what is submitted.
    if len(types) == 1:
        kind = types.pop()
        return {"name": names.pop(), "type": LEGACY_TYPES[kind] if legacy else kind}
    newest = max(rows, key=lambda row: (row.until is None, row.until or (0, 0), row.since))
    return {"name": names.pop(), "type": "table_dynamic", "types": sorted(types), "fallback": newest.type, "legacy": legacy}


@cache
def component_metrics(component: str, legacy: bool = False) -> dict[str, dict[str, Any]]:
    """`{family: transformer config}` for every family of the component in any Cilium release."""
    by_family: dict[str, list[MetricRow]] = {}
    for row in rows_for(component):
        by_family.setdefault(row.family, []).append(row)
    metrics = {family: transformer_config(rows, legacy) for family, rows in by_family.items()}
    # An exposition without `# TYPE` lines keeps a counter's `_total` in the family name.
    for row in rows_for(component):
        if row.family != row.wire_name:
            metrics.setdefault(row.wire_name, metrics[row.family])
    return metrics


def _overlap(a: MetricRow, b: MetricRow) -> bool:
    return a.since <= (b.until or (99, 99)) and b.since <= (a.until or (99, 99))


@cache
def superseded_families(component: str) -> dict[str, str]:
    """`{old family: new family}` for renamed families that one release exposes side by side.

    Both map to one Datadog name; when a scrape has both, only the successor is submitted, so
    the series is not counted twice during the release that deprecates the old name.
    """
    rows = [row for row in rows_for(component) if row.type != "metadata"]
    result: dict[str, str] = {}
    for old in rows:
        for new in rows:
            if (
                old.datadog_name == new.datadog_name
                and old.type == new.type
                and old.family != new.family
                and old.since < new.since
                and _overlap(old, new)
            ):
                result[old.family] = new.family
    return result
