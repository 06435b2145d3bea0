"""Turn what a check submitted in one run into what the Agent would flush.

The `datadog_checks.base.stubs.aggregator` stub only records raw submissions. The Agent's
check sampler (`pkg/aggregator/check_sampler.go`, `pkg/metrics/*.go`) keeps per-context
state between runs and flushes series, sketches and service checks; `AgentAggregator`
reproduces that for one check instance so a local run prints what `agent check` prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from datadog_checks.base.stubs import aggregator as stub_aggregator
from datadog_checks.base.stubs import datadog_agent

# The Agent tags every series coming from a check with this source type.
SOURCE_TYPE_NAME = "System"

GAUGE, RATE, COUNT, MONOTONIC_COUNT, COUNTER, HISTOGRAM, HISTORATE = range(7)

# The Agent's default `histogram_aggregates` and `histogram_percentiles` (0.95).
HISTOGRAM_AGGREGATES = ("max", "median", "avg", "count")
HISTOGRAM_PERCENTILES = (95,)


@dataclass
class SenderStats:
    """How many raw submissions a run made, as the Agent's sender counts them."""

    metric_samples: int = 0
    events: int = 0
    service_checks: int = 0
    histogram_buckets: int = 0


@dataclass
class Flush:
    """What the aggregator emitted after one run, in the Agent's JSON shapes."""

    timestamp: int
    series: list[dict[str, Any]] = field(default_factory=list)
    sketches: list[dict[str, Any]] = field(default_factory=list)
    service_checks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    sender_stats: SenderStats = field(default_factory=SenderStats)


# Each state class mirrors the Go type of the same name: add() takes one sample, flush()
# returns [(name_suffix, value, api_type)] and resets what is per-flush.


class _Gauge:
    def __init__(self) -> None:
        self.value: float | None = None

    def add(self, value: float, ts: float, flush_first_value: bool) -> None:
        self.value = value

    def flush(self, ts: float) -> list[tuple[str, float, str]]:
        value, self.value = self.value, None
        return [] if value is None else [("", value, "gauge")]


class _Count:
    def __init__(self, api_type: str = "count") -> None:
        self.api_type = api_type
        self.value = 0.0
        self.sampled = False

    def add(self, value: float, ts: float, flush_first_value: bool) -> None:
        self.value += value
        self.sampled = True

    def flush(self, ts: float) -> list[tuple[str, float, str]]:
        value, sampled = self.value, self.sampled
        self.value, self.sampled = 0.0, False
        # A check's Counter is normalised over an interval of 1 s, so its value is the sum.
        return [("", value, self.api_type)] if sampled else []


class _Rate:
    def __init__(self) -> None:
        self.prev_value = self.prev_ts = 0.0
        self.value = self.ts = 0.0

    def add(self, value: float, ts: float, flush_first_value: bool) -> None:
        if self.ts:
            self.prev_value, self.prev_ts = self.value, self.ts
        self.value, self.ts = value, ts

    def flush(self, ts: float) -> list[tuple[str, float, str]]:
        if not self.prev_ts or not self.ts or self.ts == self.prev_ts:
            return []
        rate = (self.value - self.prev_value) / (self.ts - self.prev_ts)
        self.prev_value, self.prev_ts = self.value, self.ts
        self.value = self.ts = 0.0
        # The Agent drops a negative rate (counter reset) and sends a rate as a gauge.
        return [] if rate < 0 else [("", rate, "gauge")]


class _MonotonicCount:
    def __init__(self) -> None:
        self.previous = self.current = self.value = 0.0
        self.sampled_since_flush = False
        self.has_previous = False
        self.flush_first_value = False

    def add(self, value: float, ts: float, flush_first_value: bool) -> None:
        if not self.sampled_since_flush:
            self.current = value
            self.sampled_since_flush = True
        else:
            self.previous, self.current = self.current, value
            self.has_previous = True
        self.flush_first_value = flush_first_value
        diff = self.current - self.previous
        if (self.has_previous or flush_first_value) and diff >= 0:
            self.value += diff
        elif flush_first_value:
            # With flush_first_value a drop means the counter restarted from 0: the new raw
            # value is what accumulated since. Without it the drop adds nothing, and the new
            # value becomes the base (the Agent then flushes a 0 count).
            self.value = self.current

    def flush(self, ts: float) -> list[tuple[str, float, str]]:
        if not self.sampled_since_flush or not (self.has_previous or self.flush_first_value):
            # The first sample of a context is only a base; the state stays as it is, so the
            # next run's sample is diffed against it.
            return []
        value = self.value
        self.previous, self.current, self.value = self.current, 0.0, 0.0
        self.has_previous = True
        self.sampled_since_flush = False
        self.flush_first_value = False
        return [("", value, "count")]


class _Histogram:
    def __init__(self) -> None:
        self.samples: list[float] = []

    def add(self, value: float, ts: float, flush_first_value: bool) -> None:
        self.samples.append(value)

    def flush(self, ts: float) -> list[tuple[str, float, str]]:
        samples, self.samples = sorted(self.samples), []
        if not samples:
            return []
        count = len(samples)
        values = {
            "max": samples[-1],
            "median": samples[(count - 1) // 2],
            "avg": sum(samples) / count,
            "count": float(count),  # normalised over the 1 s interval checks use
        }
        out = [("." + agg, values[agg], "rate" if agg == "count" else "gauge") for agg in HISTOGRAM_AGGREGATES]
        for pct in HISTOGRAM_PERCENTILES:
            out.append((f".{pct}percentile", samples[min(count - 1, (pct * count - 1) // 100)], "gauge"))
        return out


class _Historate:
    """A histogram of the per-second rates between consecutive samples."""

    def __init__(self) -> None:
        self.histogram = _Histogram()
        self.previous: tuple[float, float] | None = None

    def add(self, value: float, ts: float, flush_first_value: bool) -> None:
        if self.previous is not None and ts > self.previous[1]:
            self.histogram.add((value - self.previous[0]) / (ts - self.previous[1]), ts, False)
        self.previous = (value, ts)

    def flush(self, ts: float) -> list[tuple[str, float, str]]:
        return self.histogram.flush(ts)


_STATE_FOR_TYPE: dict[int, Callable[[], Any]] = {
    GAUGE: _Gauge,
    RATE: _Rate,
    COUNT: _Count,
    MONOTONIC_COUNT: _MonotonicCount,
    COUNTER: lambda: _Count("rate"),
    HISTOGRAM: _Histogram,
    HISTORATE: _Historate,
}


def _sorted_tags(tags: Any) -> tuple[str, ...]:
    # The Agent deduplicates a context's tags; sorting makes the context key order-free.
    return tuple(sorted(set(tags or ())))


class AgentAggregator:
    """Per-instance emulation of the Agent's check sampler.

    Call `flush()` after every `check.run()`: it drains the stub's raw records (then resets
    the stub) and returns the series, sketches, service checks and events the Agent would
    have flushed for that run. Contexts (name, sorted tags, resolved host) keep their state
    across flushes, which is what makes monotonic counts and rates need two runs.
    """

    def __init__(self, *, empty_default_hostname: bool = False, stub: Any = None) -> None:
        self.empty_default_hostname = empty_default_hostname
        self.stub = stub if stub is not None else stub_aggregator
        self._metrics: dict[tuple, Any] = {}
        self._buckets: dict[tuple, int] = {}

    def default_hostname(self) -> str:
        """The host the Agent puts on a submission made without one."""
        return "" if self.empty_default_hostname else datadog_agent.get_hostname()

    def _host(self, hostname: str | None) -> str:
        return hostname or self.default_hostname()

    def flush(self, timestamp: float | None = None) -> Flush:
        """Aggregate everything the stub recorded since the last flush, then reset the stub."""
        ts = time.time() if timestamp is None else timestamp
        result = Flush(timestamp=int(ts))
        self._flush_metrics(ts, result)
        self._flush_buckets(ts, result)
        self._flush_service_checks(ts, result)
        self._flush_events(ts, result)
        self.stub.reset()
        return result

    def _flush_metrics(self, ts: float, result: Flush) -> None:
        sampled = set()
        for stubs in self.stub._metrics.values():
            for m in stubs:
                result.sender_stats.metric_samples += 1
                # The type is part of the key so a name reused with another type is not lost.
                key = (m.name, _sorted_tags(m.tags), self._host(m.hostname), m.type)
                state = self._metrics.get(key)
                if state is None:
                    state = self._metrics[key] = _STATE_FOR_TYPE[m.type]()
                state.add(float(m.value), ts, bool(m.flush_first_value))
                sampled.add(key)
        for key in sorted(sampled):
            name, tags, host, _ = key
            for suffix, value, api_type in self._metrics[key].flush(ts):
                result.series.append(
                    {
                        "metric": name + suffix,
                        "points": [[int(ts), value]],
                        "tags": list(tags),
                        "host": host,
                        "type": api_type,
                        "interval": 0,
                        "source_type_name": SOURCE_TYPE_NAME,
                    }
                )

    def _flush_buckets(self, ts: float, result: Flush) -> None:
        for stubs in self.stub._histogram_buckets.values():
            for b in stubs:
                result.sender_stats.histogram_buckets += 1
                tags, host = _sorted_tags(b.tags), self._host(b.hostname)
                value = int(b.value)
                if value <= 0 or b.upper_bound < b.lower_bound:
                    continue
                if b.monotonic:
                    key = (b.name, tags, host, b.lower_bound, b.upper_bound)
                    last = self._buckets.get(key)
                    self._buckets[key] = value
                    if last is None and not b.flush_first_value:
                        continue  # the first raw value is a base, not a delta
                    # A negative delta (reset) is discarded below; the base has moved already.
                    value -= last or 0
                if value <= 0:
                    continue
                result.sketches.append(
                    {
                        "metric": b.name,
                        "tags": list(tags),
                        "host": host,
                        "lower_bound": b.lower_bound,
                        "upper_bound": b.upper_bound,
                        "value": value,
                        "timestamp": int(ts),
                    }
                )
        result.sketches.sort(key=lambda s: (s["metric"], s["tags"], s["host"], s["lower_bound"], s["upper_bound"]))

    def _flush_service_checks(self, ts: float, result: Flush) -> None:
        for stubs in self.stub._service_checks.values():
            for sc in stubs:
                result.sender_stats.service_checks += 1
                result.service_checks.append(
                    {
                        "check": sc.name,
                        "host_name": self._host(sc.hostname),
                        "timestamp": int(ts),
                        "status": int(sc.status),
                        "message": sc.message or "",
                        "tags": list(sc.tags or []),
                    }
                )

    def _flush_events(self, ts: float, result: Flush) -> None:
        for event in self.stub._events:
            result.sender_stats.events += 1
            event = dict(event)
            event.setdefault("timestamp", int(ts))
            event["host"] = self._host(event.get("host"))
            event["tags"] = list(event.get("tags") or [])
            result.events.append(event)
