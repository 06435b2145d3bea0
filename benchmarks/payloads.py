"""The payloads the scrape benchmark serves: one set of Prometheus expositions per scenario.

    agent+operator     the fixture agent and operator of Cilium 1.20, as two endpoints
    agent+hubble-20k   the fixture agent, and a Hubble endpoint of about 20,000 series
    agent+hubble-100k  the fixture agent, and a Hubble endpoint of about 100,000 series

The Hubble payloads are what one node serves with context options on
(`hubble.metrics.enabled={dns:sourceContext=workload-name|...;destinationContext=..., drop:...,
tcp:..., flow:..., port-distribution:..., httpV2:..., policy:...}`): every flow family is split
by `source` and `destination` workload, `namespace/workload-name`. Everything is deterministic:
the same scenario is the same text in every process and on every machine.

`python -m benchmarks.payloads` prints the series count of each scenario's payloads.
"""

from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from functools import cache

from cilium_dev.fixtures.payloads import render

VERSION = "1.20"
HUBBLE_20K = 20_000
HUBBLE_100K = 100_000


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of a scenario: the instance option that points at it, its path on the fixture server, its text."""

    option: str
    path: str
    text: str

    @property
    def series(self) -> int:
        return count_series(self.text)


@dataclass(frozen=True)
class Scenario:
    """A benchmark scenario: what the fixture server serves, one endpoint per scraper of the check."""

    name: str  # as given to `--scenario`
    title: str  # as printed in the report
    endpoints: tuple[Endpoint, ...]

    @property
    def series(self) -> int:
        return sum(endpoint.series for endpoint in self.endpoints)


# name -> (title, builder of its endpoints); kept lazy because the 100k payload takes a moment.
_SCENARIOS = {
    "agent+operator": (
        "agent+operator",
        lambda: (_agent(), Endpoint("operator_endpoint", "/operator/metrics", render("operator", VERSION))),
    ),
    "agent+hubble-20k": ("agent+hubble 20k", lambda: (_agent(), _hubble(HUBBLE_20K))),
    "agent+hubble-100k": ("agent+hubble 100k", lambda: (_agent(), _hubble(HUBBLE_100K))),
}
SCENARIOS: tuple[str, ...] = tuple(_SCENARIOS)


@cache
def scenario(name: str) -> Scenario:
    """The scenario called `name` (one of `SCENARIOS`), its payloads rendered."""
    try:
        title, build = _SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}") from None
    return Scenario(name, title, build())


def count_series(text: str) -> int:
    """The sample lines of an exposition (every histogram bucket, sum and count is one)."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _agent() -> Endpoint:
    return Endpoint("agent_endpoint", "/agent/metrics", render("agent", VERSION))


def _hubble(target: int) -> Endpoint:
    return Endpoint("hubble_endpoint", f"/hubble-{target // 1000}k/metrics", hubble_payload(target))


# ---------------------------------------------------------------------------------------------
# Hubble with context options

# fmt: off
NAMESPACES = (
    "shop", "payments", "checkout", "catalog", "search", "identity", "ledger", "ads",
    "media", "notify", "analytics", "billing", "inventory", "shipping", "reviews", "platform",
)
STEMS = (
    "cart", "order", "user", "price", "stock", "session", "profile", "invoice", "coupon", "report",
    "export", "import", "feed", "index", "render", "thumbnail", "mailer", "audit", "ledger", "quote",
)
# fmt: on
ROLES = ("api", "worker", "frontend", "gateway", "consumer", "scheduler", "cache", "db")
# 16 namespaces x 20 workloads: the "few hundred workloads" of a mid-size cluster.
WORKLOADS = tuple(
    f"{ns}/{stem}-{ROLES[(n + j) % len(ROLES)]}" for n, ns in enumerate(NAMESPACES) for j, stem in enumerate(STEMS)
)
COREDNS = "kube-system/coredns"
# About a third of the workloads have a pod on the node being scraped; every flow has one of them on one side.
LOCAL = tuple(w for w in WORKLOADS if zlib.crc32(f"local\x1f{w}".encode()) % 10 < 3)
LOCAL_SET = frozenset(LOCAL)

SECONDS_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10")
_BUCKET_MIDS = (0.0025, 0.0075, 0.0175, 0.0375, 0.075, 0.175, 0.375, 0.75, 1.75, 3.75, 7.5)
TCP_PORTS = ("443", "5432", "6379", "9092", "3306", "27017", "50051", "8443")
UDP_PORTS = ("8125", "5353", "123", "4789")

# family -> (type, help, label names): HELP texts as Cilium's Hubble metrics handlers register them.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "hubble_dns_queries_total": (
        "counter",
        "Number of DNS queries observed",
        ("destination", "ips_returned", "qtypes", "rcode", "source"),
    ),
    "hubble_dns_responses_total": (
        "counter",
        "Number of DNS responses observed",
        ("destination", "ips_returned", "qtypes", "rcode", "source"),
    ),
    "hubble_drop_total": ("counter", "Number of drops", ("destination", "protocol", "reason", "source")),
    "hubble_flows_processed_total": (
        "counter",
        "Total number of flows processed",
        ("destination", "protocol", "source", "subtype", "type", "verdict"),
    ),
    "hubble_http_request_duration_seconds": (
        "histogram",
        "Quantiles of HTTP request duration in seconds",
        ("destination", "method", "reporter", "source"),
    ),
    "hubble_http_requests_total": (
        "counter",
        "Count of HTTP requests",
        ("destination", "method", "protocol", "reporter", "source", "status"),
    ),
    "hubble_lost_events_total": ("counter", "Number of lost events", ("source",)),
    "hubble_policy_verdicts_total": (
        "counter",
        "Count of policy verdicts by policy match type, traffic direction and action",
        ("action", "destination", "direction", "match", "source"),
    ),
    "hubble_port_distribution_total": (
        "counter",
        "Numbers of packets distributed by destination port",
        ("destination", "port", "protocol", "source"),
    ),
    "hubble_tcp_flags_total": ("counter", "TCP flag occurrences", ("destination", "family", "flag", "source")),
}
HISTOGRAM_LINES = len(SECONDS_BUCKETS) + 3  # the buckets, +Inf, _sum and _count


def _u(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for a key (Python's `hash` is salted per process)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) / 2**32


def _pairs():
    """(source, destination, kind) of the node's flows in a fixed order: DNS first, then services.

    kind: dns | http | tcp | udp. Each pair appears once; one side is always a local workload.
    """
    for local in LOCAL:
        yield local, COREDNS, "dns"
    seen: set[tuple[str, str]] = set()
    k = 0
    while True:
        k += 1
        local = LOCAL[k % len(LOCAL)]
        remote = WORKLOADS[int(_u("peer", k) * len(WORKLOADS))]
        if remote == local:
            continue
        pair = (local, remote) if _u("egress", k) < 0.55 else (remote, local)
        if pair in seen:
            continue
        seen.add(pair)
        roll = _u("kind", *pair)
        yield (*pair, "http" if roll < 0.35 else "tcp" if roll < 0.85 else "udp")


class _Families:
    """The series of the Hubble families being built, and how many sample lines they make."""

    def __init__(self) -> None:
        self.series: dict[str, list[tuple[dict[str, str], object]]] = {name: [] for name in FAMILIES}
        self.lines = 0

    def counter(self, family: str, /, **labels: str) -> None:
        key = "\x1f".join(f"{k}={v}" for k, v in sorted(labels.items()))
        u = _u(family, key)
        # Skewed like real traffic: most series are small, a few carry millions of flows.
        self.series[family].append((labels, int(1 + u**4 * 5_000_000)))
        self.lines += 1

    def histogram(self, family: str, /, **labels: str) -> None:
        key = "\x1f".join(f"{k}={v}" for k, v in sorted(labels.items()))
        u, v = _u(family, key), _u(key, family)
        count = int(20 + u**3 * 400_000)
        peak = 1 + int(v * 6)
        weights = [2.0 ** -abs(i - peak) for i in range(len(SECONDS_BUCKETS))]
        total = sum(weights) * 1.02  # a few requests slower than the last bound
        cumulative, acc = [], 0.0
        for weight in weights:
            acc += weight
            cumulative.append(int(count * acc / total))
        # The requests above the last bound (the rest of the count) took about 15s each.
        mean = sum(w * m for w, m in zip(weights, _BUCKET_MIDS)) / total + (1 - acc / total) * 15
        self.series[family].append((labels, (cumulative, round(count * mean, 6), count)))
        self.lines += HISTOGRAM_LINES

    def add_pair(self, src: str, dst: str, kind: str) -> None:
        """Everything a node's Hubble exposes about the flows of one (source, destination) pair."""
        sd = {"source": src, "destination": dst}
        outbound = src in LOCAL_SET
        direction = "egress" if outbound else "ingress"
        if kind == "dns":
            for protocol, type_, subtype in (
                ("UDP", "Trace", "to-endpoint"),
                ("DNS", "L7", "DNS"),
                ("UDP", "PolicyVerdict", ""),
            ):
                self.counter(
                    "hubble_flows_processed_total",
                    protocol=protocol,
                    type=type_,
                    subtype=subtype,
                    verdict="FORWARDED",
                    **sd,
                )
            self.counter("hubble_port_distribution_total", protocol="UDP", port="53", **sd)
            self.counter("hubble_policy_verdicts_total", direction="egress", match="l7/dns", action="forwarded", **sd)
            qtypes = ["A", "AAAA"] + (["SRV"] if _u("srv", src) < 0.2 else [])
            for qtype in qtypes:
                self.counter("hubble_dns_queries_total", rcode="", qtypes=qtype, ips_returned="0", **sd)
            answers = [("No Error", "A", "1"), ("No Error", "AAAA", "0")]
            if _u("multi", src) < 0.4:
                answers.append(("No Error", "A", "3"))
            if _u("nx", src) < 0.5:
                answers += [("Non-Existent Domain", "A", "0"), ("Non-Existent Domain", "AAAA", "0")]
            if "SRV" in qtypes:
                answers.append(("No Error", "SRV", "2"))
            for rcode, qtype, ips in answers:
                self.counter("hubble_dns_responses_total", rcode=rcode, qtypes=qtype, ips_returned=ips, **sd)
            return

        drops = _u("drop", src, dst) < 0.12
        if kind == "udp":
            port = UDP_PORTS[int(_u("port", dst) * len(UDP_PORTS))]
            for type_, subtype in (("Trace", "to-endpoint"), ("PolicyVerdict", "")):
                self.counter(
                    "hubble_flows_processed_total",
                    protocol="UDP",
                    type=type_,
                    subtype=subtype,
                    verdict="FORWARDED",
                    **sd,
                )
            self.counter("hubble_port_distribution_total", protocol="UDP", port=port, **sd)
            self.counter("hubble_policy_verdicts_total", direction=direction, match="l3-l4", action="forwarded", **sd)
            return

        http = kind == "http"
        port = (
            ("8080" if _u("http-port", dst) < 0.6 else "80")
            if http
            else TCP_PORTS[int(_u("port", dst) * len(TCP_PORTS))]
        )
        flows = [
            ("TCP", "Trace", "to-endpoint", "FORWARDED"),
            ("TCP", "Trace", "to-stack", "FORWARDED"),
            ("TCP", "PolicyVerdict", "", "FORWARDED"),
        ]
        if http:
            flows.append(("HTTP", "L7", "HTTP", "FORWARDED"))
        if drops:
            flows.append(("TCP", "Drop", "", "DROPPED"))
        for protocol, type_, subtype, verdict in flows:
            self.counter(
                "hubble_flows_processed_total", protocol=protocol, type=type_, subtype=subtype, verdict=verdict, **sd
            )
        families = ["IPv4"] + (["IPv6"] if _u("dual-stack", src, dst) < 0.2 else [])
        flags = ["SYN", "SYN-ACK", "FIN"] + (["RST"] if _u("rst", src, dst) < 0.4 else [])
        for family in families:
            for flag in flags:
                self.counter("hubble_tcp_flags_total", flag=flag, family=family, **sd)
        self.counter("hubble_port_distribution_total", protocol="TCP", port=port, **sd)
        self.counter(
            "hubble_policy_verdicts_total",
            direction=direction,
            match="l7/http" if http else "l3-l4",
            action="forwarded",
            **sd,
        )
        if drops:
            self.counter("hubble_policy_verdicts_total", direction=direction, match="none", action="dropped", **sd)
            self.counter("hubble_drop_total", reason="POLICY_DENIED", protocol="TCP", **sd)
            if _u("ct-full", src, dst) < 0.3:
                self.counter("hubble_drop_total", reason="CT_MAP_INSERTION_FAILED", protocol="TCP", **sd)
        if not http:
            return
        reporter = "client" if outbound else "server"
        protocol = "HTTP/2" if _u("h2", dst) < 0.3 else "HTTP/1.1"
        methods = (
            ["GET"] + (["POST"] if _u("post", src, dst) < 0.5 else []) + (["PUT"] if _u("put", src, dst) < 0.15 else [])
        )
        for method in methods:
            statuses = ["200"]
            if method == "GET" and _u("404", src, dst) < 0.4:
                statuses.append("404")
            if _u("5xx", method, src, dst) < 0.2:
                statuses.append("503")
            for status in statuses:
                self.counter(
                    "hubble_http_requests_total",
                    method=method,
                    protocol=protocol,
                    status=status,
                    reporter=reporter,
                    **sd,
                )
            self.histogram("hubble_http_request_duration_seconds", method=method, reporter=reporter, **sd)

    def text(self) -> str:
        """The exposition: families by name, each family's series ordered by label values as client_golang does."""
        out: list[str] = []
        for family in sorted(self.series):
            kind, help_text, names = FAMILIES[family]
            entries = self.series[family]
            if not entries:
                continue
            out.append(f"# HELP {family} {help_text}")
            out.append(f"# TYPE {family} {kind}")
            entries.sort(key=lambda entry: tuple(entry[0][n] for n in names))
            for labels, value in entries:
                pairs = ",".join(f'{n}="{labels[n]}"' for n in names)
                if kind == "counter":
                    out.append(f"{family}{{{pairs}}} {value}")
                    continue
                cumulative, total, count = value
                for bound, n in zip(SECONDS_BUCKETS, cumulative):
                    out.append(f'{family}_bucket{{{pairs},le="{bound}"}} {n}')
                out.append(f'{family}_bucket{{{pairs},le="+Inf"}} {count}')
                out.append(f"{family}_sum{{{pairs}}} {total!r}")
                out.append(f"{family}_count{{{pairs}}} {count}")
        return "\n".join(out) + "\n"


_LOST_EVENT_SOURCES = ("hubble_ring_buffer", "observer_events_queue", "perf_event_ring_buffer")


@cache
def hubble_payload(target_series: int) -> str:
    """A node's Hubble exposition with about `target_series` sample lines (a little more, never less).

    Flow pairs are added in a fixed order until the count is reached, so a larger target is a
    superset of a smaller one's pairs.
    """
    families = _Families()
    for source in _LOST_EVENT_SOURCES:
        families.counter("hubble_lost_events_total", source=source)
    for src, dst, kind in _pairs():
        if families.lines >= target_series:
            break
        families.add_pair(src, dst, kind)
    return families.text()


def main(argv: list[str] | None = None) -> int:
    """Print the series (sample lines) and size of every scenario's payloads."""
    for name in argv or SCENARIOS:
        s = scenario(name)
        parts = ", ".join(f"{e.option} {e.series} ({len(e.text) / 2**20:.1f} MiB)" for e in s.endpoints)
        print(f"{s.title:<20} {s.series:>7} series: {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
