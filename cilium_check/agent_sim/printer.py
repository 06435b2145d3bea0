"""Print run results in the layouts of `agent check`, `agent check --table` and `--json`."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TextIO

from .runner import InstanceResult

SINGLE_RUN_HINT = (
    "Check has run only once, if some metrics are missing you can try again with --check-rate argument"
)
SERVICE_CHECK_STATUS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _go_number(value: Any) -> Any:
    # Go prints a float64 that holds an integer without a fraction ("5", not "5.0").
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def _go_values(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _go_values(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_go_values(v) for v in obj]
    return _go_number(obj)


def go_json(obj: Any, *, sort_keys: bool = False) -> str:
    """Indented JSON as Go's `json.MarshalIndent(v, "", "  ")` writes it."""
    text = json.dumps(_go_values(obj), indent=2, ensure_ascii=False, sort_keys=sort_keys)
    # encoding/json escapes these for safe embedding in HTML.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain_float(value: float) -> str:
    # strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def series_table(series: list[dict]) -> str:
    """The series as an aligned table with the Metric, Type, Value and Tags columns."""
    ordered = sorted(series, key=lambda s: (s["metric"], s["points"][0][0], ", ".join(s["tags"])))
    rows = [[s["metric"], s["type"], _plain_float(float(s["points"][0][1])), ", ".join(s["tags"])] for s in ordered]
    return _table(["Metric", "Type", "Value", "Tags"], rows)


def service_checks_table(service_checks: list[dict]) -> str:
    """The service checks as an aligned table, like `agent check --table`."""
    ordered = sorted(service_checks, key=lambda c: (c["check"], c["timestamp"], ", ".join(c["tags"])))
    rows = [
        [c["check"], c["host_name"], str(c["timestamp"]), SERVICE_CHECK_STATUS.get(c["status"], "")]
        + [c["message"], ", ".join(c["tags"])]
        for c in ordered
    ]
    return _table(["Check", "Hostname", "Timestamp", "Status", "Message", "Tags"], rows)


def format_unix_time(seconds: int) -> str:
    """The collector template's date: local time, the UTC time too when they differ, and ms."""
    local = datetime.fromtimestamp(seconds).astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S %Z")
    if local.utcoffset():
        text += " / " + datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{text} ({seconds * 1000})"


def go_duration_ms(ms: int) -> str:
    """A millisecond count as Go's `time.Duration.String()` writes it ("12ms", "1.5s", "1m2s")."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    seconds, rest_ms = divmod(ms, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    fraction = f".{rest_ms:03d}".rstrip("0") if rest_ms else ""
    return f"{text}{seconds}{fraction}s"


def _go_value(value: Any) -> str:
    # fmt's %v spells booleans in lower case.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _last_error_parts(last_error: str) -> tuple[str, str]:
    """The message and indented traceback the template shows for a run() error string."""
    try:
        first = json.loads(last_error)[0]
        message, tb = first.get("message", last_error), first.get("traceback", "")
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        return last_error, "No traceback"
    return message, tb.replace("\n", "\n      ").rstrip("\n\t ")


def collector_block(result: InstanceResult) -> list[str]:
    """The "Collector / Running Checks" status lines for one loaded instance."""
    s = result.stats
    version = s["CheckVersion"]
    title = f"{result.check_name} ({version})" if version else result.check_name
    if s["LastError"]:
        status = "[ERROR]"
    elif s["LastWarnings"]:
        status = "[WARNING]"
    else:
        status = "[OK]"
    last_success = format_unix_time(s["LastSuccessDate"]) if s["LastSuccessDate"] else "Never"
    lines = [
        "=========",
        "Collector",
        "=========",
        "",
        "  Running Checks",
        "  ==============",
        "",
        f"    {title}",
        "    " + "-" * len(title),
        f"      Instance ID: {s['CheckID']} {status}",
        f"      Configuration Source: {s['CheckConfigSource']}",
        f"      Total Runs: {s['TotalRuns']:,}",
        f"      Metric Samples: Last Run: {s['MetricSamples']:,}, Total: {s['TotalMetricSamples']:,}",
        f"      Events: Last Run: {s['Events']:,}, Total: {s['TotalEvents']:,}",
        f"      Service Checks: Last Run: {s['ServiceChecks']:,}, Total: {s['TotalServiceChecks']:,}",
        f"      Histogram Buckets: Last Run: {s['HistogramBuckets']:,}, Total: {s['TotalHistogramBuckets']:,}",
        f"      Average Execution Time : {go_duration_ms(s['AverageExecutionTime'])}",
        f"      Last Execution Date : {format_unix_time(s['UpdateTimestamp'])}",
        f"      Last Successful Execution Date : {last_success}",
    ]
    if result.inventory:
        lines.append("      metadata:")
        lines += [f"        {key}: {_go_value(value)}" for key, value in sorted(result.inventory.items())]
    if s["LastError"]:
        message, tb = _last_error_parts(s["LastError"])
        lines += [f"      Error: {message}", f"      {tb}"]
    else:
        lines.append("")
    for warning in s["LastWarnings"]:
        lines += [f"      Warning: {warning}", ""]
    return [line.rstrip() for line in lines]


def metadata_block(result: InstanceResult) -> list[str]:
    """The "Metadata" section: the config hash and source, then what the check set."""
    lines = ["  Metadata", "  ========"]
    lines += [f"    {key}: {value}" for key, value in sorted(result.config_metadata.items())]
    lines += [f"    {key}: {_go_value(value)}" for key, value in sorted(result.inventory.items())]
    return lines


def load_error_block(result: InstanceResult) -> list[str]:
    """How `agent check` reports a check instance its Python loader could not create."""
    name = result.check_name
    detail = (
        f"could not configure check instance for python check {name}: could not invoke '{name}' python check "
        f"constructor. New constructor API returned:\n{result.load_traceback.rstrip() or result.load_error}"
    )
    return ["", f"Error: could not load {name}:", f"* Python Check Loader: {detail}"]


def _write(out: TextIO, lines: list[str]) -> None:
    out.write("\n".join(lines) + "\n")


def print_text(results: list[InstanceResult], out: TextIO, *, table: bool = False) -> None:
    """Print results as `agent check [--table]` does: aggregator output, then the status block."""
    loaded = [r for r in results if r.loaded]
    for failed in (r for r in results if not r.loaded):
        _write(out, load_error_block(failed))
    if not loaded:
        _write(out, ["Error: no valid check found"])
        return
    if len(loaded) > 1:
        _write(out, ["Multiple check instances found, running each of them"])
    for result in loaded:
        lines = ["=== Series ===", series_table(result.series) if table else go_json(result.series)]
        if result.sketches:
            lines += ["=== Sketches ===", go_json(result.sketches)]
        lines += [
            "=== Service Checks ===",
            service_checks_table(result.service_checks) if table else go_json(result.service_checks),
        ]
        if result.events:
            lines += ["=== Events ===", go_json(result.events)]
        lines += collector_block(result) + metadata_block(result)
        _write(out, lines)
    if all(r.stats["TotalRuns"] < 2 for r in loaded):
        _write(out, [SINGLE_RUN_HINT])


def _populate_device(series: dict) -> dict:
    # The --json path moves a `device:` tag into the series' own `device` field.
    moved = dict(series)
    devices = [t for t in moved["tags"] if t.startswith("device:")]
    if devices:
        moved["tags"] = [t for t in moved["tags"] if not t.startswith("device:")]
        moved["device"] = devices[-1][len("device:"):]
    return moved


def json_payload(results: list[InstanceResult]) -> list[dict[str, Any]]:
    """The objects `agent check --json` prints, one per loaded instance."""
    return [
        {
            "aggregator": {
                # Each series goes through a Go map on this path, hence the sorted keys.
                "metrics": [dict(sorted(_populate_device(s).items())) for s in r.series],
                "sketches": r.sketches,
                "service_checks": r.service_checks,
                "events": r.events,
            },
            "runner": r.stats,
            "inventories": {r.check_id: dict(r.inventory)},
        }
        for r in results
        if r.loaded
    ]


def print_json(results: list[InstanceResult], out: TextIO, *, err: TextIO | None = None) -> None:
    """Print results as `agent check --json` does; load errors go to `err` (stderr by default)."""
    err = err if err is not None else sys.stderr
    for failed in (r for r in results if not r.loaded):
        _write(err, load_error_block(failed))
    if not any(r.loaded for r in results):
        _write(err, ["Error: no valid check found"])
        return
    _write(out, [go_json(json_payload(results))])
