"""Hostile and malformed Prometheus payloads, a server that streams big ones lazily, and the
oracles `test_hostile.py` judges the check with.

    from hostile_gen import BEFORE, AFTER, sandwich, StreamServer, gzip_bomb, run_measured

    body = sandwich('cilium_drop_count_total{reason="unterminated} 1\\n')  # bad input between good families
    with StreamServer() as srv:
        url = srv.serve("/bomb/metrics", gzip_bomb(1 << 30), content_encoding="gzip")
        outcome = run_measured(check, deadline=10, on_overrun=srv.stop)
        outcome.seconds, outcome.peak, outcome.error

The big payloads (a 10 MB line, millions of distinct series, a gzip bomb expanding to 1 GiB,
a body that never ends) are generated as they are sent, so the test process never holds them
and tracemalloc's peak during a run is the check's own memory (plus a few KiB of server chunks).

The hypothesis part: `garbage_lines()` is a strategy of malformed (or accidentally well-formed)
lines, `mix()` inserts them between the lines of a well-formed `exposition_gen` payload, and
`InputOracle` knows every series the mixed payload holds, to tell whether a submission came
from the input.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

from cilium_check.mapping import rows_for
from cilium_check.tags import COMPONENT_TAG, RESERVED_LABEL_RENAMES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

DEFAULT_MAX_LINE_LENGTH = 65536
DEFAULT_MAX_BODY_SIZE = 128 * MiB

HEALTH = "cilium.openmetrics.health"
LINES_SKIPPED = "cilium.check.lines_skipped"
SELF_PREFIX = "cilium.check."

# --------------------------------------------------------------------------------------------
# the well-formed families around the bad input

BEFORE = (
    "# HELP cilium_unreachable_nodes Peer nodes the health checker currently cannot reach.\n"
    "# TYPE cilium_unreachable_nodes gauge\n"
    "cilium_unreachable_nodes 3\n"
)
AFTER = (
    "# HELP cilium_drop_count_total Packets dropped by the datapath.\n"
    "# TYPE cilium_drop_count_total counter\n"
    'cilium_drop_count_total{direction="INGRESS",reason="Policy denied"} 10\n'
    'cilium_drop_count_total{direction="EGRESS",reason="Policy denied"} 20\n'
)
# What BEFORE and AFTER submit: (Datadog name, value, tags without the instance's tags).
BEFORE_SUBMITS = (("cilium.unreachable.nodes", 3.0, ()),)
AFTER_SUBMITS = (
    ("cilium.drop_count.count", 10.0, ("direction:INGRESS", "reason:Policy denied")),
    ("cilium.drop_count.count", 20.0, ("direction:EGRESS", "reason:Policy denied")),
)


def sandwich(bad: str | bytes, before: str = BEFORE, after: str = AFTER) -> bytes:
    """The bad input between two well-formed families, as the bytes of one payload."""
    bad = bad.encode("utf-8") if isinstance(bad, str) else bad
    if bad and not bad.endswith(b"\n"):
        bad += b"\n"
    return before.encode() + bad + after.encode()


def instance_tags(url: str, component: str = "agent") -> list[str]:
    return [f"{COMPONENT_TAG}:{component}", f"endpoint:{url}"]


# --------------------------------------------------------------------------------------------
# reading what the check submitted


@dataclass(frozen=True)
class Submitted:
    name: str
    value: float
    tags: tuple[str, ...]  # sorted, the instance's own tags removed
    mtype: int
    flush_first_value: bool | None


def submissions(aggregator, url: str, component: str = "agent", *, self_metrics: bool = False) -> list[Submitted]:
    """Every metric the stub aggregator holds, without the check's self metrics (unless asked)."""
    own = set(instance_tags(url, component))
    found = []
    for name in sorted(aggregator.metric_names):
        if name.startswith(SELF_PREFIX) != self_metrics:
            continue
        for m in aggregator.metrics(name):
            tags = tuple(sorted(t for t in m.tags if t not in own))
            found.append(Submitted(name, m.value, tags, m.type, m.flush_first_value))
    return found


def lines_skipped(aggregator, url: str, component: str = "agent") -> list[float]:
    own = sorted(instance_tags(url, component))
    return [m.value for m in aggregator.metrics(LINES_SKIPPED) if sorted(m.tags) == own]


def health(aggregator, url: str) -> list:
    """The endpoint's health service checks, in submission order."""
    return [sc for sc in aggregator.service_checks(HEALTH) if f"endpoint:{url}" in sc.tags]


def describe_health(checks) -> str:
    names = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
    return "; ".join(f"{names.get(sc.status, sc.status)} {sc.message!r}" for sc in checks) or "none"


# --------------------------------------------------------------------------------------------
# running the check under a stopwatch and tracemalloc


@dataclass
class Outcome:
    error: str | None  # what run() returned ('' or a JSON error); None while it has not returned
    seconds: float  # wall time until run() returned, or until the deadline
    peak: int  # tracemalloc peak during the run (bytes), allocations of every thread
    finished: bool  # run() returned before the deadline
    raised: BaseException | None = None  # an exception that escaped run() itself

    @property
    def message(self) -> str:
        if not self.error:
            return ""
        return json.loads(self.error)[0]["message"]


def run_measured(
    check,
    *,
    deadline: float,
    trace_memory: bool = True,
    on_overrun: Callable[[], None] | None = None,
    grace: float = 60.0,
) -> Outcome:
    """Run `check.run()` in a thread, with tracemalloc on, and wait at most `deadline` seconds.

    A run still going at the deadline is reported unfinished; `on_overrun` is then called (to
    stop the server feeding it) and the thread is waited for up to `grace` more seconds, so that
    a runaway run does not submit into the next test's aggregator.
    """
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["error"] = check.run()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            result["raised"] = e
        finally:
            result["end"] = time.perf_counter()

    thread = threading.Thread(target=target, name="hostile-check-run", daemon=True)
    if trace_memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        thread.start()
        thread.join(deadline)
        finished = not thread.is_alive()
        seconds = (result.get("end", time.perf_counter()) if finished else time.perf_counter()) - start
        peak = tracemalloc.get_traced_memory()[1] - base if trace_memory else 0
    finally:
        if trace_memory:
            tracemalloc.stop()
    if not finished:
        if on_overrun is not None:
            on_overrun()
        thread.join(grace)
    return Outcome(result.get("error"), seconds, peak, finished, result.get("raised"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# a server whose bodies are generated while they are sent


@dataclass
class _Route:
    chunks: Callable[[threading.Event], Iterable[bytes]]
    length: int | None  # Content-Length, None: chunked transfer encoding
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


class StreamServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving generated bodies.

    `serve(path, chunks, length=...)`: `chunks(stop_event)` yields the body's pieces; with a
    length, the response declares it as Content-Length, else the body goes out in chunked
    transfer encoding (as Go's net/http streams a body of unknown size). `stop()` ends every
    response in flight: generators see the event set, sockets are shut down.
    """

    def __init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[str] = []
        self._conns: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._conns.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                    route = server._routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.close_connection = True
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", CONTENT_TYPE)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    if route.length is not None:
                        self.send_header("Content-Length", str(route.length))
                    else:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for piece in route.chunks(server.stopping):
                        if server.stopping.is_set():
                            return
                        if not piece:
                            continue
                        if route.length is None:
                            self.wfile.write(b"%x\r\n" % len(piece))
                            self.wfile.write(piece)
                            self.wfile.write(b"\r\n")
                        else:
                            self.wfile.write(piece)
                    if route.length is None:
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass  # the client stopped reading: what a bounded check does

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hostile-stream-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the stream server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def serve(
        self,
        path: str,
        chunks: Callable[[threading.Event], Iterable[bytes]] | bytes,
        *,
        length: int | None = None,
        content_encoding: str | None = None,
    ) -> str:
        """Serve a body at `path`; returns its URL. Plain bytes are served with their length."""
        if isinstance(chunks, (bytes, bytearray, memoryview)):
            body = memoryview(chunks)
            length = len(body)
            chunks = _slices(body)
        headers = {"Content-Encoding": content_encoding} if content_encoding else {}
        with self._lock:
            self._routes[path] = _Route(chunks, length, headers)
        return self.base_url + path


def _slices(body: memoryview, size: int = 64 * KiB) -> Callable[[threading.Event], Iterator[memoryview]]:
    def chunks(stop: threading.Event) -> Iterator[memoryview]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return chunks


# --------------------------------------------------------------------------------------------
# big bodies, generated lazily


def long_line_body(line_bytes: int, *, fill: bytes = b"x", piece: int = 64 * KiB) -> tuple[Callable, int]:
    """BEFORE, one line of `line_bytes` bytes (a would-be sample, no newline inside), AFTER.

    Returns (chunks, length) for `StreamServer.serve`.
    """
    head, tail = BEFORE.encode(), AFTER.encode()
    start = b"cilium_hostile_long_line "
    body_len = line_bytes - len(start)

    def chunks(stop: threading.Event) -> Iterator[bytes]:
        yield head
        yield start
        block = fill * piece
        left = body_len
        while left > 0:
            n = min(left, piece)
            yield block if n == piece else block[:n]
            left -= n
        yield b"\n"
        yield tail

    return chunks, len(head) + line_bytes + 1 + len(tail)


def distinct_series_line(i: int) -> bytes:
    """One series of `cilium_drop_count_total`, distinct for every i (all lines the same length)."""
    return b'cilium_drop_count_total{direction="INGRESS",reason="hostile-%09d"} 1\n' % i


DISTINCT_HEAD = BEFORE + "# TYPE cilium_drop_count_total counter\n"


def distinct_series_body(count: int, *, per_chunk: int = 1024) -> tuple[Callable, int]:
    """BEFORE, then `count` distinct counter series. Returns (chunks, length)."""
    head = DISTINCT_HEAD.encode()

    def chunks(stop: threading.Event) -> Iterator[bytes]:
        yield head
        for start in range(0, count, per_chunk):
            if stop.is_set():
                return
            yield b"".join(distinct_series_line(i) for i in range(start, min(count, start + per_chunk)))

    return chunks, len(head) + count * len(distinct_series_line(0))


def endless_body(*, lines_per_chunk: int = 200, pause: float = 0.01) -> Callable:
    """BEFORE, then distinct counter series forever (about 1.3 MB/s), until the server stops."""
    head = DISTINCT_HEAD.encode()

    def chunks(stop: threading.Event) -> Iterator[bytes]:
        yield head
        i = 0
        while not stop.is_set():
            yield b"".join(distinct_series_line(j) for j in range(i, i + lines_per_chunk))
            i += lines_per_chunk
            stop.wait(pause)

    return chunks


BOMB_LINE = b"cilium_hostile_bomb_padding_" + b"a" * 32700 + b" 1\n"  # one series, over and over


@cache
def gzip_bomb(expanded: int = GiB) -> bytes:
    """A gzip member (~2 MB) that expands to BEFORE, about `expanded` bytes of one repeated
    32 KiB sample line of an unmapped family, then AFTER.

    Built without compressing 1 GiB: one 1 MiB block is deflated with a full flush (which
    resets the compressor, so the same compressed segment decodes from any position) and the
    segment is repeated; only the CRC needs a pass over the expanded size.
    """
    block = BOMB_LINE * (MiB // len(BOMB_LINE))
    copies = max(1, (expanded - len(BEFORE) - len(AFTER)) // len(block))

    def segment(data: bytes) -> bytes:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        return deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH)

    head, seg, tail = segment(BEFORE.encode()), segment(block), segment(AFTER.encode())
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    crc = zlib.crc32(BEFORE.encode())
    for _ in range(copies):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(AFTER.encode(), crc)
    size = len(BEFORE) + copies * len(block) + len(AFTER)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = (crc & 0xFFFFFFFF).to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return header + head + seg * copies + tail + end + trailer


def gzip_bomb_expanded_size(expanded: int = GiB) -> int:
    block = len(BOMB_LINE) * (MiB // len(BOMB_LINE))
    return len(BEFORE) + max(1, (expanded - len(BEFORE) - len(AFTER)) // block) * block + len(AFTER)


# --------------------------------------------------------------------------------------------
# documented errors


# What run() may raise with: the spec's non-OK health messages that make a run fail (CRITICAL),
# and the probe's message for a URL that does not serve the component's metrics.
DOCUMENTED_ERRORS = (
    r"connection refused \(nothing listens on that port\)",
    r"the host name does not resolve",
    r"connection timed out after [\d.]+s",
    r"no answer within [\d.]+s",
    r"HTTP \d{3}\b",
    r"too many redirects",
    r"TLS error: ",
    r"the connection broke after \d+ lines",
    r"answered HTTP 200 but served no Prometheus metrics",
    r"answered HTTP 200 with an empty body",
    r"does not serve Cilium (\S+ )?metrics",
    r"found no Cilium (\S+ )?metrics there",
    r"none of the \d+ candidate URLs serves",
    r"the stock parser \(`fast_path: false`\) stopped at a malformed line",
)


def is_documented_error(message: str) -> bool:
    return any(re.search(pattern, message) for pattern in DOCUMENTED_ERRORS)


# --------------------------------------------------------------------------------------------
# garbage for the property-based test


def garbage_lines(names: Iterable[str]):
    """A hypothesis strategy of one garbage line (bytes, no newline), or a `Truncate` marker.

    `names`: family names to build near-misses from (the component's own, so that they do not
    change which component the check recognises).
    """
    from hypothesis import strategies as st

    names = sorted(names)
    no_newline = st.text(max_size=80).map(lambda s: s.replace("\n", " ").encode("utf-8"))
    raw_bytes = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" "))
    punctuation = st.text(alphabet='{}"=,\\ #\t_:abcxyzE019.+-eINnaf\x00\r', max_size=60).map(str.encode)
    name = st.sampled_from(names) if names else st.just("cilium_hostile")
    label = st.sampled_from(("direction", "reason", "le", "quantile", "a", "__name__", "0bad", ""))
    value = st.sampled_from(("1", "-1", "NaN", "+Inf", "-Inf", "1e999", "0x10", "1_000", "", "one", "1 2 3", "\x00"))
    label_value = st.text(max_size=20).map(lambda s: s.replace("\n", ""))
    near_miss = st.builds(
        lambda n, l, lv, v, shape: shape.format(n=n, l=l, lv=lv, v=v).encode("utf-8", "replace"),
        name,
        label,
        label_value,
        value,
        st.sampled_from(
            (
                '{n}{{{l}="{lv}"}} {v}',  # maybe fine, maybe a bad value or label name
                '{n}{{{l}="{lv}}} {v}',  # unterminated label value
                '{n}{{{l}="{lv}" {v}',  # unterminated label set
                "{n}{{{l}={lv}}} {v}",  # unquoted label value
                '{n}{{{l}="{lv}",,}} {v}',
                "{n}}} {v}",
                "{n}{{ {v}",
                "{n} {v} {v}",
                '{n}{{{l}="{lv}"}}',  # no value
                "# TYPE {n} {lv}",  # unknown type
                "# TYPE {n}",  # TYPE without a type
                "# TYPE {n} gauge extra",
                "# HELP {n}",
                '# TYPE "{lv}" counter',
                "{lv}",
            )
        ),
    )
    truncate = st.builds(Truncate, st.floats(0, 1), st.floats(0, 1))
    return st.one_of(no_newline, raw_bytes, punctuation, near_miss, truncate)


@dataclass(frozen=True)
class Truncate:
    """A copy of one line of the payload (at `which`, a fraction of the lines), cut at `where`."""

    which: float
    where: float


def mix(text: str, garbage: list[tuple[float, bytes | Truncate]]) -> tuple[bytes, list[bytes]]:
    """Insert garbage lines between the lines of `text` (each at a fraction of the payload).

    Returns the payload and the garbage lines as inserted (truncated copies resolved).
    """
    lines = [line.encode("utf-8") for line in text.split("\n")]
    if lines and lines[-1] == b"":
        lines.pop()
    inserted: list[tuple[int, bytes]] = []
    for where, item in garbage:
        if isinstance(item, Truncate):
            if not lines:
                continue
            source = lines[min(len(lines) - 1, int(item.which * len(lines)))]
            item = source[: int(item.where * len(source))]
        inserted.append((min(len(lines), int(where * (len(lines) + 1))), item))
    out: list[bytes] = []
    by_position: dict[int, list[bytes]] = {}
    for position, item in inserted:
        by_position.setdefault(position, []).append(item)
    for i in range(len(lines) + 1):
        out.extend(by_position.get(i, ()))
        if i < len(lines):
            out.append(lines[i])
    return b"\n".join(out) + b"\n", [item for _, item in inserted]


class InputOracle:
    """Every series a payload holds, to judge whether a submission came from the input.

    A series is (sample name, labels); the well-formed part of a mixed payload is the series of
    the generated exposition plus any garbage line that prometheus_client reads as a sample on
    its own (a truncated value, a near-miss that happens to be legal).
    """

    def __init__(self, component: str):
        self.component = component
        self.series: dict[str, list[dict[str, str]]] = {}
        self.rows = rows_for(component)

    def add_text(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.series.setdefault(sample.name, []).append(dict(sample.labels))

    def add_garbage(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if not text or text.startswith("#"):
            return
        try:
            self.add_text(text + "\n")
        except Exception:  # noqa: BLE001, S110 - not a sample on its own: no series
            pass

    def datadog_names(self, sample_name: str) -> set[str]:
        """Datadog names a sample of this name can be submitted as (any type its rows have)."""
        bases = {sample_name}
        for suffix in ("_total", "_bucket", "_sum", "_count"):
            if sample_name.endswith(suffix):
                bases.add(sample_name[: -len(suffix)])
        names = set()
        for row in self.rows:
            if row.wire_name in bases or row.family in bases:
                names.update(s.name for s in row.submissions())
        return names

    def explains(self, name: str, tags: Iterable[str]) -> bool:
        """Whether some input series of a matching name carries every one of `tags`."""
        wanted = [tag.split(":", 1) for tag in tags]
        if any(len(pair) != 2 for pair in wanted):
            return False
        for sample_name, label_sets in self.series.items():
            if name not in self.datadog_names(sample_name):
                continue
            for labels in label_sets:
                tag_set = _tags_of(labels)
                if all((key, value) in tag_set for key, value in wanted):
                    return True
        return False


def is_malformed_sample_line(line: bytes) -> bool:
    """Not blank, not a comment, and prometheus_client does not read it as a sample on its own."""
    text = line.decode("utf-8", "replace").strip()
    if not text or text.startswith("#"):
        return False
    try:
        families = list(text_string_to_metric_families(text + "\n"))
    except Exception:  # noqa: BLE001
        return True
    return not any(family.samples for family in families)


def _tags_of(labels: dict[str, str]) -> set[tuple[str, str]]:
    """The (key, value) tags a label set can turn into: renamed, `le` as `upper_bound`, numbers canonical."""
    tags = set()
    for key, value in labels.items():
        tags.add((RESERVED_LABEL_RENAMES.get(key, key), value))
        if key in ("le", "quantile"):
            try:
                canonical = str(float(value) or 0)
            except ValueError:
                continue
            tags.add(("upper_bound" if key == "le" else key, canonical))
    return tags


def finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))
