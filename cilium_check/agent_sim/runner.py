"""Load and run check instances the way `agent check` does, and keep the Agent's runner stats."""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from datadog_checks.base.stubs import aggregator as stub_aggregator
from datadog_checks.base.stubs import datadog_agent
from datadog_checks.base.config import is_affirmative

from .aggregator import AgentAggregator, Flush, SenderStats

DEFAULT_MIN_COLLECTION_INTERVAL = 15  # seconds, the Agent's default check interval
EXECUTION_TIMES_RING = 32  # the Agent keeps the last 32 run durations


def fnv1_64(data: bytes) -> int:
    """FNV-1 64-bit hash, the one Go's `hash/fnv.New64` computes for check IDs."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h ^= byte
    return h


def build_check_id(check_name: str, instance: dict, init_config: dict | None) -> str:
    """`<name>:<16 hex digits>` hashed from the instance then the init_config, like the Agent."""
    # The Agent hashes the YAML bytes it was given; a canonical JSON dump is the stable
    # stand-in when all we have is the parsed mapping.
    payload = "".join(json.dumps(part, sort_keys=True, default=str) for part in (instance, init_config or {}))
    return f"{check_name}:{fnv1_64(payload.encode()):016x}"


def check_version(check_class: type) -> str:
    """The `__version__` of the check's module or one of its packages, else "unversioned"."""
    parts = check_class.__module__.split(".")
    for depth in range(len(parts), 0, -1):
        version = getattr(sys.modules.get(".".join(parts[:depth])), "__version__", None)
        if isinstance(version, str) and version:
            return version
    try:
        version = importlib.import_module(parts[0] + ".__about__").__version__
    except Exception:
        return "unversioned"
    return version if isinstance(version, str) and version else "unversioned"


def collection_interval(instance: dict, init_config: dict | None) -> int:
    """The check interval in seconds: the instance's, else init_config's, else 15."""
    for source in (instance, init_config or {}):
        value = source.get("min_collection_interval")
        if value not in (None, ""):
            try:
                return int(float(value))
            except (TypeError, ValueError):
                pass
    return DEFAULT_MIN_COLLECTION_INTERVAL


class RunnerStats:
    """The Agent's per-instance runner statistics (`pkg/collector/check/stats.Stats`)."""

    def __init__(self, check_name: str, check_id: str, version: str, config_source: str, interval_s: int) -> None:
        self.check_name = check_name
        self.check_id = check_id
        self.version = version
        self.config_source = config_source
        self.interval_ns = interval_s * 1_000_000_000
        self.total_runs = self.total_errors = self.total_warnings = 0
        self.last = SenderStats()
        self.totals = SenderStats()
        self.execution_times = [0] * EXECUTION_TIMES_RING
        self.average_execution_time = self.last_execution_time = 0
        self.last_success_date = self.update_timestamp = 0
        self.last_error = ""
        self.last_warnings: list[str] = []

    def add(self, duration_ms: int, error: str, warnings: list[str], sender: SenderStats, now: float) -> None:
        """Account for one run, as `Stats.Add` does."""
        self.last_execution_time = duration_ms
        self.execution_times[self.total_runs % EXECUTION_TIMES_RING] = duration_ms
        self.total_runs += 1
        filled = min(self.total_runs, EXECUTION_TIMES_RING)
        self.average_execution_time = sum(self.execution_times[:filled]) // filled
        if error:
            self.total_errors += 1
            self.last_error = error
        else:
            self.last_error = ""
            self.last_success_date = int(now)
        self.last_warnings = list(warnings)
        self.total_warnings += len(warnings)
        self.update_timestamp = int(now)
        # The Agent only overwrites a "last run" count when the run submitted something, so
        # a run that sent nothing still shows the previous run's figure.
        for name in ("metric_samples", "events", "service_checks", "histogram_buckets"):
            value = getattr(sender, name)
            if value > 0:
                setattr(self.last, name, value)
                setattr(self.totals, name, getattr(self.totals, name) + value)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object `agent check --json` prints under "runner" (Go field order)."""
        return {
            "CheckName": self.check_name,
            "CheckVersion": self.version,
            "CheckConfigSource": self.config_source,
            "CheckLoader": "python",
            "CheckID": self.check_id,
            "Interval": self.interval_ns,
            "LongRunning": False,
            "Cancelling": False,
            "TotalRuns": self.total_runs,
            "TotalErrors": self.total_errors,
            "TotalWarnings": self.total_warnings,
            "MetricSamples": self.last.metric_samples,
            "Events": self.last.events,
            "ServiceChecks": self.last.service_checks,
            "HistogramBuckets": self.last.histogram_buckets,
            "TotalMetricSamples": self.totals.metric_samples,
            "TotalEvents": self.totals.events,
            "TotalServiceChecks": self.totals.service_checks,
            "TotalHistogramBuckets": self.totals.histogram_buckets,
            "EventPlatformEvents": {},
            "TotalEventPlatformEvents": {},
            "ExecutionTimes": list(self.execution_times),
            "AverageExecutionTime": self.average_execution_time,
            "LastExecutionTime": self.last_execution_time,
            "LastSuccessDate": self.last_success_date,
            "LastError": self.last_error,
            "LastDelay": 0,
            "LastWarnings": list(self.last_warnings),
            "UpdateTimestamp": self.update_timestamp,
            "Telemetry": False,
        }


@dataclass
class RunRecord:
    """One `check.run()`: when it ran, how long it took, what it returned and what was flushed."""

    started: float
    duration_ms: int
    error: str
    warnings: list[str]
    flush: Flush


@dataclass
class InstanceResult:
    """Everything `agent check` reports about one configured instance."""

    check_name: str
    check_id: str
    instance: dict
    config_source: str
    stats: dict[str, Any] = field(default_factory=dict)
    series: list[dict] = field(default_factory=list)
    sketches: list[dict] = field(default_factory=list)
    service_checks: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    inventory: dict[str, Any] = field(default_factory=dict)  # metadata the check set (version.*, ...)
    runs: list[RunRecord] = field(default_factory=list)
    load_error: str | None = None  # set when the check class could not be instantiated
    load_traceback: str = ""

    @property
    def loaded(self) -> bool:
        return self.load_error is None

    @property
    def config_metadata(self) -> dict[str, str]:
        """What `check.GetMetadata` adds to the "Metadata" section: config hash and source."""
        provider, _, source = self.config_source.partition(":")
        return {"config.hash": self.check_id, "config.provider": provider, "config.source": source or "unknown"}


def _drop_metadata(check_id: str) -> None:
    # The stub is process-wide: forget what an earlier run with the same ID recorded.
    for key in [k for k in datadog_agent._metadata if k[0] == check_id]:
        del datadog_agent._metadata[key]


def _metadata_for(check_id: str) -> dict[str, Any]:
    return {name: value for (cid, name), value in sorted(datadog_agent._metadata.items()) if cid == check_id}


def _warnings_of(check: Any) -> list[str]:
    getter = getattr(check, "get_warnings", None)
    if callable(getter):
        return [str(w) for w in getter()]
    warnings, check.warnings = list(getattr(check, "warnings", [])), []
    return [str(w) for w in warnings]


def run_instance(
    check_class: type,
    check_name: str,
    init_config: dict | None,
    instance: dict,
    *,
    times: int = 1,
    pause: float = 1.0,
    config_source: str | None = None,
) -> InstanceResult:
    """Instantiate the check for one instance, run it `times` times and aggregate each run."""
    init_config = init_config or {}
    config_source = config_source or f"file:conf.d/{check_name}.d/conf.yaml"
    check_id = build_check_id(check_name, instance, init_config)
    result = InstanceResult(check_name, check_id, instance, config_source)
    stub_aggregator.reset()
    _drop_metadata(check_id)
    try:
        check = check_class(check_name, init_config, [instance])
    except Exception as exc:
        # The Agent reports a constructor failure as a loader error and never runs the check.
        result.load_error = str(exc) or type(exc).__name__
        # Start the traceback in the check's code, as the Agent's loader error does.
        result.load_traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
        return result
    check.check_id = check_id
    aggregator = AgentAggregator(empty_default_hostname=is_affirmative(instance.get("empty_default_hostname")))
    stats = RunnerStats(
        check_name, check_id, check_version(check_class), config_source, collection_interval(instance, init_config)
    )
    for index in range(max(1, times)):
        if index:
            time.sleep(pause)
        started = time.time()
        t0 = time.monotonic()
        error = check.run() or ""
        duration_ms = int((time.monotonic() - t0) * 1000)
        warnings = _warnings_of(check)
        now = time.time()
        flush = aggregator.flush(now)
        stats.add(duration_ms, error, warnings, flush.sender_stats, now)
        result.runs.append(RunRecord(started, duration_ms, error, warnings, flush))
    last = result.runs[-1].flush
    result.series, result.sketches = last.series, last.sketches
    result.service_checks, result.events = last.service_checks, last.events
    result.stats = stats.as_dict()
    result.inventory = _metadata_for(check_id)
    return result


def run_instances(
    check_class: type,
    check_name: str,
    init_config: dict | None,
    instances: list[dict],
    *,
    times: int = 1,
    rate: bool = False,
    pause: float = 1.0,
    config_source: str | None = None,
) -> list[InstanceResult]:
    """Run every instance like `agent check <name> [--check-rate] [-t N]`, one result each.

    `rate=True` forces two runs, as `--check-rate` does; `pause` is the sleep between runs.
    A check class whose constructor raises (e.g. `ConfigurationError`) gives a result with
    `load_error` set instead of stats. The stubs are process-wide: the aggregator stub is
    drained, and metadata is read from `datadog_agent` under each instance's check ID.
    """
    runs = 2 if rate else times
    return [
        run_instance(
            check_class, check_name, init_config, instance, times=runs, pause=pause, config_source=config_source
        )
        for instance in instances
    ]


def exit_code(results: list[InstanceResult]) -> int:
    """The command's exit status: non-zero only when no instance could be loaded.

    `agent check` fails with "no valid check found" when nothing loads; a check run that
    returns an error is still reported, and the command itself succeeds.
    """
    return 0 if any(r.loaded for r in results) else 1
