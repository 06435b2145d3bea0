"""`make soak`: the check run thousands of times against a churning endpoint, memory watched.

An endpoint on 127.0.0.1 serves a Hubble payload of `--series` series; every scrape replaces
`--churn` of them (new workloads, pods that went away). Each variant runs in its own process, so
that its resident memory is its own:

- `fast, complete`: the fast path, whole scrapes;
- `fast, cut`: the fast path, every scrape cut by `max_body_size` (the cache must still follow the
  live series);
- `fast, failing`: the fast path, one scrape in ten answered 503;
- `stock, complete`: stock OpenMetrics V2 (`fast_path: false`) on the same payloads, the reference.

Every hundred runs each prints its RSS, the series cache's entries and the live series; then the
verdicts of issue 11: with every scrape cut, RSS grows less than 15 MiB after run 100 and the
cache holds at most twice the live series; with complete scrapes, the fast path's RSS is within
5 MiB of stock V2's.

    python -m benchmarks.soak [--runs 3000] [--series 5000] [--churn 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEADER = """\
# HELP hubble_flows_processed_total Total number of flows processed
# TYPE hubble_flows_processed_total counter
"""
HISTOGRAM = """\
# HELP hubble_http_request_duration_seconds Quantiles of HTTP request duration in seconds
# TYPE hubble_http_request_duration_seconds histogram
"""
BOUNDS = ("0.005", "0.05", "0.5", "5", "+Inf")


def payload(scrape: int, series: int, churn: float) -> bytes:
    """The scrape's exposition: a sliding window of series ids, `churn` of it new at each scrape."""
    start = int(scrape * series * churn)
    lines = [HEADER]
    for ident in range(start, start + series):
        source, destination = f"ns{ident % 37}/app-{ident}", f"ns{(ident * 7) % 41}/svc-{ident % 997}"
        verdict = ("FORWARDED", "DROPPED")[ident % 2]
        lines.append(
            f'hubble_flows_processed_total{{destination="{destination}",protocol="TCP",source="{source}",'
            f'subtype="to-endpoint",type="Trace",verdict="{verdict}"}} {ident * 3 + scrape}\n'
        )
    lines.append(HISTOGRAM)
    for ident in range(start // 20, (start + series) // 20):
        labels = f'destination="svc-{ident}",method="GET",protocol="HTTP/1.1",reporter="server",status="200"'
        for i, bound in enumerate(BOUNDS):
            lines.append(f'hubble_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {(i + 1) * (scrape + 1)}\n')
        lines.append(f"hubble_http_request_duration_seconds_sum{{{labels}}} {scrape * 0.25}\n")
        lines.append(f"hubble_http_request_duration_seconds_count{{{labels}}} {len(BOUNDS) * (scrape + 1)}\n")
    return "".join(lines).encode()


def live_series(series: int) -> int:
    """Series per payload: the flows, and each histogram's buckets (+Inf included), sum and count."""
    return series + (series // 20) * (len(BOUNDS) + 2)


class Endpoint:
    """Serves scrape n of the churning payload to the n-th request; `fail_every` answers 503 instead."""

    def __init__(self, series: int, churn: float, fail_every: int = 0):
        self.requests = 0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with endpoint.lock:
                    n = endpoint.requests
                    endpoint.requests += 1
                if fail_every and n % fail_every == fail_every - 1:
                    body, code = b"unavailable\n", 503
                else:
                    body, code = payload(n, series, churn), 200
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a scrape cut by max_body_size hangs up mid-body: expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(args: argparse.Namespace) -> None:
    """Run the check `runs` times; a JSON line every 100 runs (what the parent tabulates)."""
    from datadog_checks.base.stubs import aggregator

    from datadog_checks.cilium import CiliumCheck

    if args.no_cache:
        from cilium_check.fast import scraper as fast_scraper

        fast_scraper.MAX_CACHED_SERIES = 0  # every series resolved at every run: the cache's cost, by difference
    instance = {"hubble_endpoint": args.url, "use_openmetrics": True, "fast_path": args.variant == "fast"}
    if args.max_body_size:
        instance["max_body_size"] = args.max_body_size
    check = CiliumCheck("cilium", {}, [instance])
    for run in range(1, args.runs + 1):
        check.run()
        aggregator.reset()
        if run % 100 == 0:
            cached = sum(getattr(s, "cached", 0) for s in check.scrapers.values())
            print(json.dumps({"run": run, "rss": rss_bytes(), "cache": cached}), flush=True)


def run_variant(args, variant: str, mode: str, runs: int | None = None) -> list[dict]:
    payload_size = len(payload(0, args.series, args.churn))
    endpoint = Endpoint(args.series, args.churn, fail_every=10 if mode == "failing" else 0)
    command = [sys.executable, "-m", "benchmarks.soak", "--child", "--variant", variant, "--url", endpoint.url]
    command += ["--runs", str(runs or args.runs)]
    if mode == "no cache":
        command.append("--no-cache")
    if mode == "cut":
        command += ["--max-body-size", str(int(payload_size * 0.6))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    finally:
        endpoint.close()
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--churn", type=float, default=0.1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="fast", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--max-body-size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    live = live_series(args.series)
    variants = [("fast", "complete"), ("fast", "cut"), ("fast", "failing"), ("stock", "complete")]
    print(f"{args.runs} runs, {live} live series per payload, {args.churn:.0%} of them new at each scrape")
    results = {}
    for variant, mode in variants:
        print(f"  running {variant}, {mode} ...", file=sys.stderr, flush=True)
        results[(variant, mode)] = run_variant(args, variant, mode)

    # The cache's memory, as RSS: the fast path with its cache against the fast path without one,
    # after the same runs on the same payloads.
    print("  running fast, no cache ...", file=sys.stderr, flush=True)
    uncached = run_variant(args, "fast", "no cache", runs=min(args.runs, 300))
    cached = results[("fast", "complete")][len(uncached) - 1]
    per_series = (cached["rss"] - uncached[-1]["rss"]) / max(1, cached["cache"])

    mib = 1024 * 1024
    header = "| run | " + " | ".join(f"{v} {m}: RSS MiB / cache" for v, m in variants) + " |"
    print("\n" + header + "\n|---|" + "---|" * len(variants))
    for i, row in enumerate(results[variants[0]]):
        cells = []
        for key in variants:
            point = results[key][i]
            cache = f" / {point['cache']:,}" if key[0] == "fast" else ""
            cells.append(f"{point['rss'] / mib:.1f}{cache}")
        print(f"| {row['run']:,} | " + " | ".join(cells) + " |")

    def growth(key) -> float:
        points = results[key]
        return (points[-1]["rss"] - points[0]["rss"]) / mib

    cut = results[("fast", "cut")]
    cut_growth = growth(("fast", "cut"))
    most_cached = max(point["cache"] for point in cut)
    fast_rss = results[("fast", "complete")][-1]["rss"] / mib
    stock_rss = results[("stock", "complete")][-1]["rss"] / mib
    verdicts = [
        (f"every scrape cut: RSS grew {cut_growth:.1f} MiB after run 100 (under 15)", cut_growth < 15),
        (f"every scrape cut: the cache held at most {most_cached:,} entries for {live:,} live series "
         f"({most_cached / live:.2f}x, at most 2x)", most_cached <= 2 * live),
        (f"complete scrapes: the fast path's RSS {fast_rss:.1f} MiB, stock V2's {stock_rss:.1f} MiB "
         f"(within 5 MiB: {fast_rss - stock_rss:+.1f})", fast_rss - stock_rss <= 5),
        (f"the cache costs {per_series:,.0f} bytes of RSS per series ({cached['cache']:,} series, "
         f"{(cached['rss'] - uncached[-1]['rss']) / mib:.1f} MiB at run {cached['run']:,})", True),
        (f"one scrape in ten failing: RSS grew {growth(('fast', 'failing')):.1f} MiB after run 100", growth(("fast", "failing")) < 15),
    ]
    print()
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
