"""The shipped monitors (`assets/monitors/*.json`) as data: loaded, and judged on two runs of the check.

A monitor file is the single source: its query, thresholds, "what to check first" and the Cilium
releases it covers (the description's "Covers Cilium 1.15 and later." or "Covers Cilium 1.14 to
1.19.") are read from it, so a new monitor is judged without a code change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .mapping import parse_version
from .queries import TERM, Evaluator, Group, MonitorQuery, NeedsHistory, QueryError, parse_monitor_query

COVERS = re.compile(r"Covers Cilium (?P<since>\d+\.\d+)(?: to (?P<until>\d+\.\d+)| and later)")
SERVICE_CHECK = re.compile(
    r'^"(?P<check>[^"]+)"\.over\((?P<over>[^)]*)\)\.by\((?P<by>[^)]*)\)\.last\((?P<last>\d+)\)\.count_by_status\(\)$'
)
LEVELS = ("critical", "warning")


@dataclass(frozen=True)
class Monitor:
    """One recommended monitor."""

    key: str  # the file name without `.json`
    title: str
    description: str
    name: str
    type: str
    query: str
    message: str
    thresholds: dict[str, float]
    covers: tuple[tuple[int, int], tuple[int, int] | None] | None  # (since, until or None), if stated

    @property
    def first_checks(self) -> list[str]:
        """The numbered steps of the message's "What to check first"."""
        _, _, rest = self.message.partition("check first")
        return [m.group(1).strip() for m in re.finditer(r"^\d+\.\s*(.+)$", rest, re.MULTILINE)]

    def parsed(self) -> MonitorQuery:
        return parse_monitor_query(self.query)


def metrics_of(monitor: Monitor) -> list[str]:
    """The metric names a monitor's query reads (none for a service check monitor)."""
    return [m["metric"] for m in TERM.finditer(monitor.query)] if monitor.type == "query alert" else []


def monitors_dir() -> Path:
    """Where the monitors are: `assets/monitors/` in a checkout, the package's copy in the wheel."""
    checkout = Path(__file__).resolve().parents[1] / "assets" / "monitors"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files(__package__) / "monitors"))


def load(directory: Path | None = None) -> list[Monitor]:
    """Every monitor of a directory, sorted by file name."""
    out = []
    for path in sorted((directory or monitors_dir()).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        definition = data["definition"]
        m = COVERS.search(data["description"])
        covers = None
        if m:
            covers = (parse_version(m["since"]), parse_version(m["until"]) if m["until"] else None)
        out.append(
            Monitor(
                key=path.stem,
                title=data["title"],
                description=data["description"],
                name=definition["name"],
                type=definition["type"],
                query=definition["query"],
                message=definition["message"],
                thresholds={k: float(v) for k, v in definition["options"].get("thresholds", {}).items()},
                covers=covers,
            )
        )
    return out


@dataclass(frozen=True)
class Finding:
    """A monitor crossing a threshold for one group (a node, a map, a remote cluster...)."""

    monitor: Monitor
    level: str  # critical | warning
    group: dict[str, str]
    value: float
    threshold: float

    @property
    def first_checks(self) -> list[str]:
        """The monitor's "what to check first", with its `{{tag.name}}` variables filled in."""
        return [fill(step, self.group) for step in self.monitor.first_checks]


def fill(text: str, group: dict[str, str]) -> str:
    """A monitor message's `{{tag.name}}` template variables replaced by the group's values."""
    return re.sub(r"\{\{\s*([a-z_]+)\.name\s*\}\}", lambda m: group.get(m.group(1), f"<{m.group(1)}>"), text)


@dataclass
class Judgement:
    """What one monitor says about two runs: its findings, or why it could not say."""

    monitor: Monitor
    findings: list[Finding] = field(default_factory=list)
    values: dict[Group, float] | None = None
    unknown: str = ""  # set when the monitor could not be judged (no data, needs history)


def judge(monitor: Monitor, evaluator: Evaluator, service_checks: list[list[dict[str, Any]]] = ()) -> Judgement:
    """The monitor's verdict on the evaluator's data (`service_checks`: the service checks of each run)."""
    result = Judgement(monitor)
    if monitor.type == "service check":
        return _judge_service_check(result, service_checks)
    if monitor.type != "query alert":
        result.unknown = f"a {monitor.type} monitor is not judged from metrics"
        return result
    try:
        query = monitor.parsed()
        values = evaluator.monitor(query)
    except NeedsHistory as e:
        result.unknown = str(e)
        return result
    except QueryError as e:
        result.unknown = f"query not understood: {e}"
        return result
    result.values = values
    if values is None:
        result.unknown = "no data"
        return result
    for group, value in sorted(values.items()):
        for level in LEVELS:
            threshold = monitor.thresholds.get(level)
            if threshold is not None and query.crosses(value, threshold):
                result.findings.append(Finding(monitor, level, _group(group), value, threshold))
                break
    return result


def _group(group: Group) -> dict[str, str]:
    return dict(part.split(":", 1) for part in group)


def _judge_service_check(result: Judgement, runs: list[list[dict[str, Any]]]) -> Judgement:
    m = SERVICE_CHECK.match(result.monitor.query)
    if not m:
        result.unknown = f"service check query not understood: {result.monitor.query}"
        return result
    by = [b.strip().strip('"') for b in m["by"].split(",") if b.strip()]
    last = list(runs)[-int(m["last"]) :]
    counts: dict[Group, dict[int, int]] = {}
    for run in last:
        for sc in run:
            if sc["check"] != m["check"]:
                continue
            tags = dict(t.split(":", 1) for t in sc["tags"] if ":" in t)
            if sc.get("host_name"):
                tags.setdefault("host", sc["host_name"])
            key = tuple(f"{b}:{tags.get(b, 'N/A')}" for b in by)
            counts.setdefault(key, {}).setdefault(sc["status"], 0)
            counts[key][sc["status"]] += 1
    if not counts:
        result.unknown = "no data"
        return result
    result.values = {}
    for key, by_status in sorted(counts.items()):
        for level, status in (("critical", 2), ("warning", 1)):
            threshold = result.monitor.thresholds.get(level)
            if threshold is not None and by_status.get(status, 0) >= threshold:
                result.findings.append(Finding(result.monitor, level, _group(key), by_status[status], threshold))
                break
        result.values[key] = float(max(by_status))
    return result
