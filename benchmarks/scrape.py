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
    # max_contexts 0: the default Hubble budget (10,000) would cut the 100k payload short.
    instance: dict[str, Any] = {**urls, "max_contexts": 0}
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
    check `TRACED_RUNS` times under tracemalloc for the peak of what its runs allocate.
    """
    scn = scenario(name)  # rendered before any measurement: the payload text is not the check's
    with FixtureServer() as server:
        urls = serve(server, scn)
        base_rss = _maxrss()
        side = build_sides(urls, (variant,))[0][variant]
        for _ in range(MEMORY_RUNS):
            run_once(side)
        # Read before tracemalloc runs: its own bookkeeping would count in the RSS.
        maxrss = _maxrss()
        stats = cache_stats(side.check)
        del side
        side = build_sides(urls, (variant,))[0][variant]
        gc.collect()
        # Started after the payloads were rendered and served; it does count the server
        # thread's per-request gzip output, a small fraction of the payload.
        tracemalloc.start()
        try:
            for _ in range(TRACED_RUNS):
                run_once(side)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return {"peak": peak, "maxrss": maxrss, "base_rss": base_rss, "cache": stats, "series": scn.series}


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
        (name, variant) for name in sorted(names, key=SCENARIOS.index, reverse=True) for variant in ("stock", "fast")
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
    ("peak MiB fast", ">", 13),
    ("peak MiB stock", ">", 14),
    ("RSS MiB fast", ">", 12),
    ("RSS MiB stock", ">", 13),
    ("cache B/series", ">", 14),
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
        cache = mem.get("fast", {}).get("cache")
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
                    _mib(mem.get("fast"), "peak"),
                    _mib(mem.get("stock"), "peak"),
                    _mib(mem.get("fast"), "maxrss"),
                    _mib(mem.get("stock"), "maxrss"),
                    f"{cache['bytes'] / r.scn.series:.0f}" if cache else "-",
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
            f" tracemalloc peak {mem['peak'] / MIB:.1f} MiB{cache_text}"
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
    parser.add_argument("--memory-child", nargs=2, metavar=("SCENARIO", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS} (a median of fewer runs is noise)")
    if args.memory_child and (args.memory_child[0] not in SCENARIOS or args.memory_child[1] not in VARIANTS):
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
            if memory:
                result.memory = {variant: memory[name, variant] for variant in VARIANTS}
            results.append(result)
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    except BenchError as e:
        print(f"BENCH FAILED: {e}", file=sys.stderr)
        return 1

    print()
    for r in results:
        print("\n".join(describe(r)))
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
        f"peak MiB: tracemalloc peak of {TRACED_RUNS} runs of a fresh check (cold, warm); each side in its own process."
    )
    mismatched = [r for r in results if r.mismatches]
    for r in mismatched:
        for problem in r.mismatches:
            print(f"!!! MISMATCH in {r.scn.title}: {problem}", file=sys.stderr)
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
