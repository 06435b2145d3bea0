"""Scrape benchmark: the check's fast path against stock OpenMetrics V2 scraping with the same mapping.

    python -m benchmarks.scrape [--runs N] [--scenario NAME ...] [--skip-memory]

For each scenario of `benchmarks.payloads` one fixture server serves the pre-rendered payloads,
and two checks with identical instances but for `fast_path: true` / `fast_path: false` scrape it,
alternately, in this process. Reported per scenario: the series served, the median CPU time of
the calling thread per `check.run()`, the ratio fast/stock, the submissions and service checks
per run of each side (which must be equal), and, from a child process per scenario and side,
the peak RSS over 5 runs and the tracemalloc peak of a fresh check's cold and warm runs.

Submissions go to `CountingAggregator` on both sides, so neither side pays for the test stub's
bookkeeping. Exits 1 when the two sides submit differently, when a run fails, or when anything
reached the stub aggregator during the timed runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datadog_checks.base.checks import base as checks_base
from datadog_checks.base.errors import ConfigurationError
from datadog_checks.base.stubs.aggregator import AggregatorStub

from cilium_check.components import HUBBLE
from datadog_checks.cilium import CiliumCheck
from cilium_dev.fixtures.server import FixtureServer

from .payloads import SCENARIOS, Scenario, scenario

DEFAULT_RUNS = 7
MIN_RUNS = 5
WARMUP_RUNS = 2
MEMORY_RUNS = 5  # untraced runs for the peak RSS
# Traced runs: the first (cold: the caches are built) and one warm run. The later warm runs
# allocate what the second did, and tracemalloc makes a run several times slower (over 10x
# for the fast path's cold run), so more of them would push `make bench` past its 3 minutes.
TRACED_RUNS = 2
VARIANTS = ("fast", "stock")
MIB = 2**20
_ROOT = Path(__file__).resolve().parent.parent
_CHILD_MARKER = "MEMORY-RESULT "


class BenchError(Exception):
    """The benchmark cannot give a valid result; the message says why."""


class CountingAggregator:
    """Stands in for the Agent's aggregator: counts what a check submits and keeps none of it.

    Installed as `check._discovery_aggregator`, which `AgentCheck._aggregator()` prefers over the
    module-level aggregator for every submission. It must stay truthy (no `__len__`/`__bool__`):
    `_aggregator()` falls back to the stub with `or`.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.metrics = 0
        self.buckets = 0
        self.service_checks = 0
        self.events = 0
        self.platform_events = 0

    @property
    def submissions(self) -> int:
        """Everything submitted but service checks: metrics, histogram buckets, events."""
        return self.metrics + self.buckets + self.events + self.platform_events

    def submit_metric(self, *_args: Any, **_kwargs: Any) -> None:
        self.metrics += 1

    def submit_metric_e2e(self, *_args: Any, **_kwargs: Any) -> None:
        self.metrics += 1

    def submit_histogram_bucket(self, *_args: Any, **_kwargs: Any) -> None:
        self.buckets += 1

    def submit_histogram_bucket_multi(self, *_args: Any, **_kwargs: Any) -> None:
        self.buckets += 1

    def submit_service_check(self, *_args: Any, **_kwargs: Any) -> None:
        self.service_checks += 1

    def submit_event(self, *_args: Any, **_kwargs: Any) -> None:
        self.events += 1

    def submit_event_platform_event(self, *_args: Any, **_kwargs: Any) -> None:
        self.platform_events += 1


def stub_submissions() -> int:
    """How many submissions the stock test stub aggregator holds (what `_aggregator()` falls back to)."""
    stub = checks_base.aggregator
    if not isinstance(stub, AggregatorStub):
        raise BenchError(f"the check's fallback aggregator is {type(stub).__name__}, not the test stub")
    return (
        sum(map(len, stub._metrics.values()))
        + sum(map(len, stub._histogram_buckets.values()))
        + sum(map(len, stub._service_checks.values()))
        + len(stub._events)
        + sum(map(len, stub._event_platform_events.values()))
    )


# ---------------------------------------------------------------------------------------------
# building the two sides


def serve(server: FixtureServer, scn: Scenario) -> dict[str, str]:
    """Serve the scenario's payloads on `server`; returns `{instance option: URL}`."""
    return {endpoint.option: server.set_payload(endpoint.path, endpoint.text) for endpoint in scn.endpoints}


def make_instance(urls: dict[str, str], fast_path: bool | None) -> dict[str, Any]:
    """The instance both sides use; `fast_path` None leaves the option out."""
    # The same work on both sides: no context budget (the default Hubble one, 10,000, would cut the
    # 100k payload short), and no label summed away (Hubble's unbounded labels all kept: summing
    # holds a family's samples back on the fast path, see the README). timeout 300: under
    # tracemalloc a run is ten times slower, and a scrape cut at the default 10 s would measure a
    # cache still being filled.
    instance: dict[str, Any] = {
        **urls,
        "max_contexts": 0,
        "hubble_unbounded_labels": list(HUBBLE.unbounded_labels),
        "timeout": 300,
    }
    if fast_path is not None:
        instance["fast_path"] = fast_path
    return instance


@dataclass
class Side:
    """One side of the comparison: its check, its counting aggregator and what its runs measured."""

    variant: str  # fast | stock
    check: CiliumCheck | None  # dropped once timed, so its caches do not weigh on the next scenario
    aggregator: CountingAggregator
    scrapers: str = ""  # the check's scraper classes
    warnings: list[str] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # seconds of the calling thread per timed run
    wall: list[float] = field(default_factory=list)
    submissions: list[int] = field(default_factory=list)
    service_checks: list[int] = field(default_factory=list)


def build_sides(urls: dict[str, str], variants: tuple[str, ...] = VARIANTS) -> tuple[dict[str, Side], list[str]]:
    """The checks of `variants`, each with its own counting aggregator, and notes on what `fast_path` did.

    When the check rejects `fast_path` (it predates the fast path), all are built without it.
    """
    notes: list[str] = []
    try:
        checks = {variant: _new_check(make_instance(urls, variant == "fast")) for variant in variants}
    except ConfigurationError as e:
        notes.append(f"NOTE: the check rejects `fast_path` ({e}); both sides are built without it: both are stock")
        checks = {variant: _new_check(make_instance(urls, None)) for variant in variants}
    else:
        ignored = [w for c in checks.values() for w in c.warnings if "fast_path" in w]
        if ignored:
            notes.append(f"NOTE: the check ignores `fast_path` ({ignored[0]}): both sides are stock")
    sides = {}
    for variant, check in checks.items():
        aggregator = CountingAggregator()
        check._discovery_aggregator = aggregator
        sides[variant] = Side(variant, check, aggregator)
    return sides, notes


def _new_check(instance: dict[str, Any]) -> CiliumCheck:
    return CiliumCheck("cilium", {}, [instance])


def run_once(side: Side) -> tuple[float, float]:
    """Run the side's check once; returns (CPU seconds of this thread, wall seconds). Raises on a failed run."""
    side.aggregator.reset()
    # Start every run from a collected heap, so neither side pays for the other's garbage.
    gc.collect()
    wall = time.perf_counter()
    cpu = time.thread_time()
    error = side.check.run()
    cpu = time.thread_time() - cpu
    wall = time.perf_counter() - wall
    if error != "":
        raise BenchError(f"the {side.variant} check's run failed: {_run_error(error)}")
    return cpu, wall


def _run_error(report: str) -> str:
    try:
        return "; ".join(item["message"] for item in json.loads(report))
    except (ValueError, TypeError, KeyError):
        return report


def cache_stats(check: CiliumCheck) -> dict[str, int] | None:
    """The fast path's cache size summed over the check's scrapers, or None when no scraper has one."""
    total, found = {"entries": 0, "bytes": 0}, False
    for scraper in check.scrapers.values():
        stats = getattr(scraper, "cache_stats", None)
        if stats is None:
            continue
        found = True
        for key, value in stats().items():
            total[key] = total.get(key, 0) + value
    return total if found else None


# ---------------------------------------------------------------------------------------------
# CPU


@dataclass
class ScenarioResult:
    """What one scenario measured, ready for the table."""

    scn: Scenario
    sides: dict[str, Side]
    notes: list[str]
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)  # by variant, from `memory_child`
    prometheus_ms: float | None = None  # the Prometheus server's CPU per scrape of the same payloads

    def median_ms(self, variant: str) -> float:
        return statistics.median(self.sides[variant].cpu) * 1000

    @property
    def ratio(self) -> float:
        return self.median_ms("fast") / self.median_ms("stock")

    def per_run(self, variant: str, what: str) -> str:
        """The submissions (or service checks) per run of a side: one number, or the range if runs differed."""
        values = getattr(self.sides[variant], what)
        return str(values[0]) if min(values) == max(values) else f"{min(values)}..{max(values)}"

    @property
    def mismatches(self) -> list[str]:
        """How the two sides' submissions or service checks per run differ; empty when they agree."""
        fast, stock = self.sides["fast"], self.sides["stock"]
        problems = []
        if sorted(set(fast.submissions)) != sorted(set(stock.submissions)):
            problems.append(
                f"submissions per run differ: fast {self.per_run('fast', 'submissions')}, "
                f"stock {self.per_run('stock', 'submissions')}"
            )
        if sorted(set(fast.service_checks)) != sorted(set(stock.service_checks)):
            problems.append(
                f"service checks per run differ: fast {self.per_run('fast', 'service_checks')}, "
                f"stock {self.per_run('stock', 'service_checks')}"
            )
        return problems


def bench_scenario(name: str, runs: int) -> ScenarioResult:
    """Time the two sides on one scenario: warm-ups, then `runs` alternating rounds."""
    scn = scenario(name)
    with FixtureServer() as server:
        sides, notes = build_sides(serve(server, scn))
        order = [sides[v] for v in VARIANTS]
        # The first run finds the endpoints (one extra fetch) and fills the scrapers' caches.
        for _ in range(WARMUP_RUNS):
            for side in order:
                run_once(side)
        before = stub_submissions()
        for _ in range(runs):
            for side in order:
                cpu, wall = run_once(side)
                side.cpu.append(cpu)
                side.wall.append(wall)
                side.submissions.append(side.aggregator.submissions)
                side.service_checks.append(side.aggregator.service_checks)
        leaked = stub_submissions() - before
    if leaked:
        raise BenchError(f"{scn.title}: the stub aggregator received {leaked} submissions during the timed runs")
    for variant, side in sides.items():
        side.scrapers = ", ".join(sorted({type(s).__name__ for s in side.check.scrapers.values()}))
        notes.extend(f"{variant} check warned: {w}" for w in side.check.warnings if "fast_path" not in w)
        side.check = None
    return ScenarioResult(scn, sides, notes)


# ---------------------------------------------------------------------------------------------
# memory, each side in its own process


def memory_child(name: str, variant: str) -> dict[str, Any]:
    """Measure one side's memory in this (fresh) process; returns what the parent reports.

    Phase 1 runs a check `MEMORY_RUNS` times untraced for the peak RSS; phase 2 runs a fresh
    check `TRACED_RUNS` times under tracemalloc: the peak of its first (cold) run, and the peak of
    a warm run above what was allocated when it started (what one run needs on top of what the
    check keeps between runs), and what the check keeps after a run. The `fast-nocache` variant
    is the fast path with its series cache off: the difference of its RSS is what the cache costs.
    """
    scn = scenario(name)  # rendered before any measurement: the payload text is not the check's
    if variant == "fast-nocache":
        from cilium_check.fast import scraper as fast_scraper

        fast_scraper.MAX_CACHED_SERIES = 0
    built = "fast" if variant == "fast-nocache" else variant
    with FixtureServer() as server:
        urls = serve(server, scn)
        base_rss = _maxrss()
        side = build_sides(urls, (built,))[0][built]
        for _ in range(MEMORY_RUNS):
            run_once(side)
        # Read before tracemalloc runs: its own bookkeeping would count in the RSS.
        maxrss = _maxrss()
        stats = cache_stats(side.check)
        del side
        side = build_sides(urls, (built,))[0][built]
        gc.collect()
        # Started after the payloads were rendered and served; it does count the server
        # thread's per-request gzip output, a small fraction of the payload.
        tracemalloc.start()
        try:
            run_once(side)
            peak = tracemalloc.get_traced_memory()[1]
            run_peak = 0
            for _ in range(TRACED_RUNS - 1):
                tracemalloc.reset_peak()
                start = tracemalloc.get_traced_memory()[0]
                run_once(side)
                run_peak = max(run_peak, tracemalloc.get_traced_memory()[1] - start)
            kept = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    return {
        "peak": peak,
        "run_peak": run_peak,
        "kept": kept,
        "maxrss": maxrss,
        "base_rss": base_rss,
        "cache": stats,
        "series": scn.series,
    }


def _maxrss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def measure_memory(names: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Run `memory_child` for every scenario and side, two child processes at a time.

    Call it while this process is small: Linux carries the parent's peak RSS into a child's
    `ru_maxrss` at exec, so a child spawned after the timed runs would report the parent's peak.
    """
    # Largest scenarios first (SCENARIOS grows), so the longest child does not start last.
    jobs = [
        (name, variant)
        for name in sorted(names, key=SCENARIOS.index, reverse=True)
        for variant in ("stock", "fast", "fast-nocache")
    ]
    # Memory is per process, so running two at once does not change what each measures.
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda job: _run_child(*job), jobs))
    return dict(zip(jobs, outcomes))


def _run_child(name: str, variant: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scrape", "--memory-child", name, variant],
        cwd=_ROOT,
        capture_output=True,
        check=False,  # a failing child is reported below, with its stderr
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_CHILD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"the memory child for {name} ({variant}) failed with exit code {proc.returncode}:\n{proc.stderr.strip()}"
        )
    return json.loads(lines[-1][len(_CHILD_MARKER) :])


# ---------------------------------------------------------------------------------------------
# what users would run instead: the Prometheus server, where Debian's `prometheus` is installed

PROMETHEUS_SECONDS = 15.0  # scraping every second: about 15 scrapes of each endpoint


def _process_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prometheus_cpu_ms(name: str) -> float | None:
    """The Prometheus server's CPU per scrape of a scenario's payloads (every endpoint once), or None
    where `prometheus` is not installed. What the server spends between scrapes (head compaction,
    its own metrics) is in it too, as it is in what a user's Prometheus costs."""
    from cilium_dev.prometheus import PrometheusServer, find_binaries

    if None in find_binaries():
        return None
    scn = scenario(name)
    with FixtureServer() as server:
        urls = serve(server, scn)
        with PrometheusServer({f"e{i}": url for i, url in enumerate(urls.values())}, scrape_interval="1s") as prom:
            prom.wait_for_scrapes(timeout=60)
            paths = {endpoint.path for endpoint in scn.endpoints}

            def scraped() -> int:
                return sum(1 for request in server.requests if request.path in paths)

            cpu, count = _process_cpu(prom.process.pid), scraped()
            time.sleep(PROMETHEUS_SECONDS)
            cpu, count = _process_cpu(prom.process.pid) - cpu, scraped() - count
    rounds = count / len(scn.endpoints)
    return cpu / rounds * 1000 if rounds else None


# ---------------------------------------------------------------------------------------------
# profile: where a fast-path run's time goes

# (category, test on (file, function)) in order: a function's own time goes to the first that matches.
# Built-in calls show as `~` files in cProfile; the per-line work the loop does inline (slicing,
# comparisons) is the loop's own time.
PROFILE_CATEGORIES: tuple[tuple[str, Any], ...] = (
    ("submit: aggregator calls", lambda f, fn: fn == "submit_metric" and "benchmarks" in f),
    ("body: read and gunzip", lambda f, fn: any(p in f for p in ("urllib3", "http/client", "socket", "ssl", "gzip"))
        or fn in ("<method 'read1' of '_io.BufferedReader' objects>", "<method 'decompress' of 'zlib.Decompress' objects>",
                  "<method 'recv_into' of '_socket.socket' objects>", "<method 'readinto' of '_io.BufferedReader' objects>")),
    ("body: decode and split", lambda f, fn: "cilium_check/body.py" in f or "codecs" in f
        or fn in ("<built-in method _codecs.utf_8_decode>", "<method 'split' of 'str' objects>")),
    ("line: strip and find", lambda f, fn: fn in ("<method 'strip' of 'str' objects>", "<method 'rfind' of 'str' objects>",
        "<method 'find' of 'str' objects>", "<method 'rsplit' of 'str' objects>", "<method 'rpartition' of 'str' objects>")),
    ("line: series lookup", lambda f, fn: fn == "<method 'get' of 'dict' objects>"),
    ("line: value parsing", lambda f, fn: fn in ("<built-in method builtins.float>",) or fn == "parse_value"),
    ("line: context budget (set)", lambda f, fn: fn in ("<method 'add' of 'set' objects>",)),
    ("line: the loop itself (inline work)", lambda f, fn: f.endswith("cilium_check/fast/scraper.py") and fn == "consume"),
    ("`#` lines: HELP and TYPE", lambda f, fn: fn in ("_split_quoted", "_next_unquoted_char", "_unquote_unescape",
        "_is_valid_legacy_metric_name", "comment")),
    ("new series: resolve and tag", lambda f, fn: f.endswith("cilium_check/fast/scraper.py")
        and fn in ("resolve", "submissions", "summing", "family", "label_block_end") or "prometheus_client" in f),
    ("held-back families (stock transformers)", lambda f, fn: f.endswith("cilium_check/fast/scraper.py") and fn == "finish"
        or "openmetrics/v2/transformers" in f or "transformers.py" in f),
    ("per run: sweep, guard, restarts", lambda f, fn: f.endswith(("cilium_check/fast/scraper.py", "cardinality.py",
        "restarts.py")) and fn in ("sweep", "cache_stats", "<genexpr>") or f.endswith(("cardinality.py", "restarts.py"))),
    ("per run: HTTP request (requests)", lambda f, fn: "requests" in f or "http.py" in f),
    ("per run: check, scrapers, self-metrics", lambda f, fn: "datadog_checks" in f or "cilium_check" in f),
)


def profile_scenario(name: str, runs: int) -> list[str]:
    """cProfile of `runs` warm fast-path runs of a scenario, by what the time is spent on."""
    import cProfile
    import pstats

    scn = scenario(name)
    with FixtureServer() as server:
        sides, _ = build_sides(serve(server, scn), ("fast",))
        side = sides["fast"]
        for _ in range(WARMUP_RUNS):
            run_once(side)
        profiler = cProfile.Profile(time.thread_time)  # CPU of this thread: waiting for the socket is not work
        gc.collect()
        profiler.enable()
        for _ in range(runs):
            side.check.run()
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    spent: dict[str, float] = {title: 0.0 for title, _ in PROFILE_CATEGORIES}
    spent["other"] = 0.0

    def category(filename: str, function: str) -> str:
        return next((t for t, test in PROFILE_CATEGORIES if test(filename, function)), "other")

    for (filename, _, function), (_, _, own, _, callers) in stats.items():
        title = category(filename, function)
        if filename == "~" and title == "other" and callers:
            # A built-in (len, isinstance, ...) counts for what called it.
            for (caller_file, _, caller_function), (_, _, caller_own, _) in callers.items():
                spent[category(caller_file, caller_function)] += caller_own
            continue
        spent[title] += own
    total = sum(spent.values())
    lines = [f"== profile of the fast path, {scn.title}: {runs} warm runs under cProfile, {scn.series} lines per run"]
    for title, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds <= 0:
            continue
        per_run = seconds / runs * 1000
        per_line = seconds / runs / scn.series * 1e9
        lines.append(f"   {title:<42} {per_run:8.1f} ms/run  {per_line:7.0f} ns/line  {seconds / total:6.1%}")
    lines.append("   (cProfile's own overhead inflates every call; compare the shares, not the absolute times)")
    return lines


# ---------------------------------------------------------------------------------------------
# report

COLUMNS = (
    ("scenario", "<", 18),
    ("series", ">", 7),
    ("fast ms", ">", 8),
    ("stock ms", ">", 8),
    ("ratio", ">", 6),
    ("subs/run fast", ">", 13),
    ("subs/run stock", ">", 14),
    ("svc/run", ">", 7),
    ("run peak MiB fast", ">", 17),
    ("run peak MiB stock", ">", 18),
    ("RSS MiB fast", ">", 12),
    ("RSS MiB stock", ">", 13),
    ("cache RSS B/series", ">", 18),
    ("prometheus ms", ">", 13),
)


def format_table(results: list[ScenarioResult]) -> str:
    """The final table: one row per scenario."""

    def row(cells: list[str]) -> str:
        return "  ".join(f"{cell:{align}{width}}" for cell, (_, align, width) in zip(cells, COLUMNS)).rstrip()

    lines = [row([title for title, _, _ in COLUMNS])]
    for r in results:
        mem = r.memory
        svc = r.per_run("fast", "service_checks")
        if svc != r.per_run("stock", "service_checks"):
            svc += "/" + r.per_run("stock", "service_checks")
        cache_rss = (
            f"{(mem['fast']['maxrss'] - mem['fast-nocache']['maxrss']) / r.scn.series:.0f}"
            if "fast" in mem and "fast-nocache" in mem
            else "-"
        )
        lines.append(
            row(
                [
                    r.scn.title,
                    str(r.scn.series),
                    f"{r.median_ms('fast'):.1f}",
                    f"{r.median_ms('stock'):.1f}",
                    f"{r.ratio:.2f}",
                    r.per_run("fast", "submissions"),
                    r.per_run("stock", "submissions"),
                    svc,
                    _mib(mem.get("fast"), "run_peak"),
                    _mib(mem.get("stock"), "run_peak"),
                    _mib(mem.get("fast"), "maxrss"),
                    _mib(mem.get("stock"), "maxrss"),
                    cache_rss,
                    f"{r.prometheus_ms:.1f}" if r.prometheus_ms is not None else "-",
                ]
            )
        )
    return "\n".join(lines)


def _mib(measured: dict[str, Any] | None, key: str) -> str:
    return f"{measured[key] / MIB:.1f}" if measured else "-"


def describe(r: ScenarioResult) -> list[str]:
    """Detail lines of one scenario: payloads, every run's CPU, notes, and memory."""
    lines = [f"== {r.scn.title}: " + ", ".join(f"{e.option} {e.series} series" for e in r.scn.endpoints)]
    lines.extend(f"   {note}" for note in dict.fromkeys(r.notes))
    for variant, side in r.sides.items():
        lines.append(
            f"   {variant:<5} CPU ms per run {' '.join(f'{c * 1000:.0f}' for c in side.cpu)}"
            f" (median {r.median_ms(variant):.1f}, wall median {statistics.median(side.wall) * 1000:.1f});"
            f" scrapers: {side.scrapers}"
        )
    for variant, mem in r.memory.items():
        cache = mem.get("cache")
        cache_text = (
            f"; cache {cache['entries']} entries, {cache['bytes'] / MIB:.1f} MiB, {cache['bytes'] / r.scn.series:.0f} B/series"
            if cache
            else "; no fast-path cache stats"
        )
        lines.append(
            f"   {variant:<5} max RSS {mem['maxrss'] / MIB:.1f} MiB (before the runs {mem['base_rss'] / MIB:.1f} MiB);"
            f" tracemalloc: cold run peak {mem['peak'] / MIB:.1f} MiB, a warm run's peak above its start"
            f" {mem['run_peak'] / MIB:.1f} MiB, kept between runs {mem['kept'] / MIB:.1f} MiB{cache_text}"
        )
    for problem in r.mismatches:
        lines.append(f"   !!! MISMATCH: {problem}")
    return lines


# ---------------------------------------------------------------------------------------------
# entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"timed rounds per scenario (at least {MIN_RUNS})"
    )
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only this scenario (repeatable; default: all)"
    )
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument(
        "--profile", action="store_true", help="also profile the fast path: where its time per line and per run goes"
    )
    parser.add_argument("--skip-prometheus", action="store_true", help="do not time a Prometheus server on the payloads")
    parser.add_argument("--memory-child", nargs=2, metavar=("SCENARIO", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS} (a median of fewer runs is noise)")
    if args.memory_child and (
        args.memory_child[0] not in SCENARIOS or args.memory_child[1] not in (*VARIANTS, "fast-nocache")
    ):
        parser.error(f"--memory-child takes a scenario ({', '.join(SCENARIOS)}) and a variant ({', '.join(VARIANTS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; 0 if both sides submitted the same, 1 otherwise."""
    args = parse_args(argv)
    # The check logs `fast_path` as an unknown option until the fast path lands; the report says so once.
    logging.getLogger().setLevel(logging.ERROR)
    if args.memory_child:
        try:
            result = memory_child(*args.memory_child)
        except BenchError as e:
            print(f"memory child: {e}", file=sys.stderr)
            return 1
        print(_CHILD_MARKER + json.dumps(result), flush=True)
        return 0

    started = time.perf_counter()
    names = args.scenario or list(SCENARIOS)
    results: list[ScenarioResult] = []
    memory: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        if not args.skip_memory:
            # First, while this process has rendered nothing: see `measure_memory`.
            print(
                f"measuring memory: {2 * len(names)} child processes, one per scenario and side, two at a time ...",
                flush=True,
            )
            memory = measure_memory(names)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        for name in names:
            print(
                f"timing {name}: {WARMUP_RUNS} warm-up runs per side, then {args.runs} alternating rounds ...",
                flush=True,
            )
            result = bench_scenario(name, args.runs)
            if not args.skip_prometheus:
                result.prometheus_ms = prometheus_cpu_ms(name)
            if memory:
                result.memory = {variant: memory[name, variant] for variant in (*VARIANTS, "fast-nocache")}
            results.append(result)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    except BenchError as e:
        print(f"BENCH FAILED: {e}", file=sys.stderr)
        return 1

    print()
    for r in results:
        print("\n".join(describe(r)))
    if args.profile:
        for name in names:
            print("\n".join(profile_scenario(name, args.runs)))
    print("stub aggregator: received 0 submissions during the timed runs (all went to the counting stand-ins)")
    print()
    print(format_table(results))
    print()
    print(
        f"CPU: median of {args.runs} runs of the calling thread (time.thread_time) per check.run(); ratio = fast/stock."
    )
    print(
        f"RSS MiB: ru_maxrss of a process running the check {MEMORY_RUNS} times (payloads and fixture server included);"
    )
    print(
        "run peak MiB: tracemalloc peak of a warm run above what the check held when it started; each side in its own"
        " process (the cold run's peak and what is kept between runs are in the detail lines)."
    )
    print(
        "cache RSS B/series: the fast path's max RSS minus that of the fast path with its cache off, per series."
    )
    print("prometheus ms: CPU (utime+stime from /proc) of a Prometheus server per scrape of the same payloads.")
    mismatched = [r for r in results if r.mismatches]
    for r in mismatched:
        for problem in r.mismatches:
            print(f"!!! MISMATCH in {r.scn.title}: {problem}", file=sys.stderr)
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
