"""Files derived from the mapping table: `metadata.csv`, `docs/metrics.md`, README blocks.

`make generate` (or `python -m cilium_check.generate`) rewrites them; a test fails when the
committed copies differ from what this module renders, so they never drift from the table.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from cilium_check.mapping import MetricRow, Submission, format_version, load_table
from cilium_check import monitors
from cilium_check.components import COMPONENTS
from cilium_check.self_metrics import SELF_METRICS
from cilium_check.tags import RESERVED_LABEL_RENAMES

INTEGRATION = "cilium"
METADATA_COLUMNS = (
    "metric_name",
    "metric_type",
    "interval",
    "unit_name",
    "per_unit_name",
    "description",
    "orientation",
    "integration",
    "short_name",
    "curated_metric",
)


def _rank(row: MetricRow) -> tuple:
    # Several rows can submit one name (a family renamed between releases): describe it with
    # the newest row, whose description is the one that applies to current Cilium.
    return (row.until is None, row.until or (0, 0), row.since)


def _by_name(rows: Iterable[MetricRow], submissions) -> dict[str, Submission]:
    chosen: dict[str, tuple[tuple, Submission]] = {}
    for row in rows:
        for submission in submissions(row):
            current = chosen.get(submission.name)
            if current is None or _rank(row) > current[0]:
                chosen[submission.name] = (_rank(row), submission)
    return {name: submission for name, (_, submission) in chosen.items()}


def legacy_type_conflicts(rows: Iterable[MetricRow] | None = None) -> dict[str, tuple[str, str]]:
    """`{name: (type in metadata.csv, type in legacy mode)}` for the names both modes submit with
    other types: a histogram's `.sum` and `.count`, counts in the current mode and gauges in
    legacy mode, as the bundled check sends them. metadata.csv records the current mode's."""
    rows = tuple(rows if rows is not None else load_table())
    current = _by_name(rows, MetricRow.submissions)
    legacy = _by_name(rows, MetricRow.legacy_submissions)
    return {
        name: (current[name].metadata_type, submission.metadata_type)
        for name, submission in sorted(legacy.items())
        if name in current and current[name].metadata_type != submission.metadata_type
    }


def metadata_submissions(rows: Iterable[MetricRow] | None = None) -> dict[str, Submission]:
    """Every metric the check can submit, in either mode, by name, with its metadata."""
    rows = tuple(rows if rows is not None else load_table())
    # A name both modes submit is described by the current mode.
    result = {**_by_name(rows, MetricRow.legacy_submissions), **_by_name(rows, MetricRow.submissions)}
    for submission in SELF_METRICS:
        result[submission.name] = submission
    return dict(sorted(result.items()))


def render_metadata_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(METADATA_COLUMNS)
    for s in metadata_submissions().values():
        writer.writerow(
            [s.name, s.metadata_type, "", s.unit, s.per_unit, s.description, s.orientation, INTEGRATION, "", ""]
        )
    return out.getvalue()


def _releases(row: MetricRow) -> str:
    since = format_version(row.since)
    return f"{since} to {format_version(row.until)}" if row.until else f"{since}+"


def _submitted(row: MetricRow, legacy: bool = False) -> str:
    if row.type == "metadata":
        return "version metadata"
    submissions = row.legacy_submissions() if legacy else row.submissions()
    return "<br>".join(f"`{s.name}` ({s.metadata_type})" for s in submissions)


def render_metrics_doc() -> str:
    """The metric list of the documentation, one table per component."""
    rows = load_table()
    lines = [
        "# Metrics",
        "",
        "Generated from `cilium_check/metrics.csv` by `make generate`; do not edit by hand.",
        "Each Cilium family, the Datadog metrics it is submitted as, and the Cilium releases that expose it.",
        "Histograms are shown with the default settings (`.bucket`, `.sum`, `.count`). The last but one column is",
        "what legacy mode (`use_openmetrics: false`, the bundled check's OpenMetrics V1 names) submits instead.",
        "",
    ]
    for component in COMPONENTS:
        selected = [row for row in rows if row.component == component.name]
        if not selected:
            continue
        lines += [
            f"## {component.name}",
            "",
            "| Cilium family | Datadog metric | Cilium | Labels | Legacy mode | Description |",
            "|---|---|---|---|---|---|",
        ]
        for row in selected:
            labels = " ".join(label.name for label in row.labels)
            lines.append(
                f"| `{row.wire_name}` | {_submitted(row)} | {_releases(row)} | {labels} "
                f"| {_submitted(row, legacy=True)} | {row.description} |"
            )
        lines.append("")
    lines += ["## check self-metrics", "", "| Datadog metric | Type | Description |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {s.metadata_type} | {s.description} |" for s in SELF_METRICS]
    return "\n".join(lines) + "\n"


def render_deviations() -> str:
    """The README's list of names that differ from the bundled check's."""
    lines = ["| Cilium family | Bundled check sends | This check sends |", "|---|---|---|"]
    for row in load_table():
        if row.bundled_name:
            # `bundled_name` is the bundled check's base name: its V2 mode adds the type's suffixes.
            ours = ", ".join(f"`{s.name}`" for s in row.submissions())
            theirs = ", ".join(f"`{row.bundled_name}{s.name[len(row.full_name):]}`" for s in row.submissions())
            lines.append(f"| `{row.wire_name}` ({row.component}) | {theirs} | {ours} |")
    return "\n".join(lines)


def render_legacy_exceptions() -> str:
    """The README's list of legacy names that do not follow the V1 rule (the `legacy_name` column)."""
    lines = ["| Cilium family | Legacy mode sends | The V1 rule would give |", "|---|---|---|"]
    for row in load_table():
        if row.legacy_name:
            rule = row.datadog_name + (".total" if row.wire_name.endswith("_total") else "")
            lines.append(f"| `{row.wire_name}` ({row.component}) | `cilium.{row.legacy_name}` | `cilium.{rule}` |")
    return "\n".join(lines)


def render_tag_renames() -> str:
    """The README's list of Cilium labels renamed because Datadog reserves their names."""
    lines = ["| Cilium label | Datadog tag |", "|---|---|"]
    lines += [f"| `{label}` | `{tag}` |" for label, tag in RESERVED_LABEL_RENAMES.items()]
    return "\n".join(lines)


def render_ports() -> str:
    """The README's table of endpoint options and ports."""
    lines = ["| Option | Component | Port | Since | Other ports | Turned on by |", "|---|---|---|---|---|---|"]
    for c in COMPONENTS:
        others = ", ".join(str(p) for p in c.legacy_ports)
        lines.append(f"| `{c.option}` | {c.name} | {c.port} | {c.port_since} | {others} | `{c.helm_value}` |")
    return "\n".join(lines)


def render_monitors(root: Path | None = None) -> str:
    """The README's list of recommended monitors, from `assets/monitors/`."""
    root = root or Path(__file__).resolve().parents[1]
    lines = ["| Monitor | Query | Thresholds | Cilium |", "|---|---|---|---|"]
    for monitor in monitors.load(root / "assets" / "monitors"):
        shown = ", ".join(f"{k} {v:g}" for k, v in monitor.thresholds.items() if k in ("critical", "warning"))
        query = monitor.query.replace("|", "\\|")
        since, until = monitor.covers or (None, None)
        covers = "" if since is None else format_version(since) + (f" to {format_version(until)}" if until else "+")
        link = f"assets/monitors/{monitor.key}.json"
        lines.append(f"| [{monitor.title}]({link}) | `{query}` | {shown} | {covers} |")
    return "\n".join(lines)


README_BLOCKS = {
    "deviations": render_deviations,
    "legacy-exceptions": render_legacy_exceptions,
    "tag-renames": render_tag_renames,
    "ports": render_ports,
    "monitors": render_monitors,
}
_BLOCK = re.compile(r"(<!-- begin: (?P<name>[a-z-]+) -->\n)(?:.*?\n)??(<!-- end: (?P=name) -->)", re.S)


def render_readme(text: str) -> str:
    """The README with each generated block rewritten from its source."""
    return _BLOCK.sub(lambda m: m.group(1) + README_BLOCKS[m.group("name")]() + "\n" + m.group(3), text)


GENERATED = {
    "metadata.csv": lambda current: render_metadata_csv(),
    "docs/metrics.md": lambda current: render_metrics_doc(),
    "README.md": render_readme,
}


def main(root: Path | None = None) -> int:
    root = root or Path.cwd()
    for relative, render in GENERATED.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        path.write_text(render(current), encoding="utf-8")
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
