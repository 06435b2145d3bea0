"""The fixture payloads follow the mapping table, and the fixture server behaves like a (flaky) Cilium endpoint."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import re
import ssl
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cilium_dev.fixtures import (
    CONTENT_TYPE,
    CURRENT,
    FIXTURE_CASES,
    FIXTURE_VERSIONS,
    FixtureServer,
    closed_url,
    render,
    rendered_rows,
)
from cilium_check.mapping import Label, MetricRow, load_table, parse_version, rows_for

CASES = list(FIXTURE_CASES)
# What the Datadog OpenMetrics scraper sends when it asks for the Prometheus text format.
SCRAPER_ACCEPT = "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"
RELEASE_LABELS = {"version", "revision", "arch"}


def expected_families(component: str, version: str) -> dict[str, MetricRow]:
    """Parsed family name -> the table row that should produce it (first row wins, like the renderer)."""
    minor = parse_version(version)
    expected: dict[str, MetricRow] = {}
    for row in rows_for(component):
        if row.in_version(minor):
            expected.setdefault(row.family, row)
    return expected


def parse(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def wire_type(row: MetricRow) -> str:
    return "gauge" if row.type == "metadata" else row.type


def is_release_info(row: MetricRow) -> bool:
    name = row.wire_name
    return row.type == "metadata" and name.endswith("_version") and "kernel" not in name and "kubernetes" not in name


def growing_samples(text: str) -> dict[tuple[str, tuple], float]:
    """The samples that must never decrease: counters and histogram/summary buckets, sums and counts."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.type == "counter" or sample.name.endswith(("_bucket", "_sum", "_count")):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture(scope="module")
def shared_server():
    with FixtureServer() as srv:
        yield srv


@pytest.fixture
def srv():
    with FixtureServer() as server:
        yield server


# payloads


@pytest.mark.parametrize("component,version", CASES)
def test_payload_parses_and_types_follow_the_table(shared_server, component, version):
    response = requests.get(shared_server.url(component, version), timeout=5)
    response.raise_for_status()
    assert response.headers["Content-Type"] == CONTENT_TYPE

    families = parse(response.text)
    expected = expected_families(component, version)
    assert set(families) == set(expected)
    for name, family in families.items():
        assert family.type == wire_type(expected[name]), name
        assert family.samples, name


@pytest.mark.parametrize("component,version", CASES)
def test_samples_carry_the_labels_of_their_version(component, version):
    expected = expected_families(component, version)
    minor = parse_version(version)
    for family in text_string_to_metric_families(render(component, version)):
        row = expected[family.name]
        labels = set(row.labels_in(minor))
        if is_release_info(row):
            labels |= RELEASE_LABELS
        for sample in family.samples:
            assert set(sample.labels) - {"le", "quantile"} == labels, sample
            if is_release_info(row):
                assert sample.labels["version"].startswith(version + "."), sample
                assert sample.value == 1


@pytest.mark.parametrize("component,version", CASES)
def test_histograms_are_cumulative_and_consistent(component, version):
    for family in text_string_to_metric_families(render(component, version, scrape=3)):
        if family.type != "histogram":
            continue
        series: dict[tuple, dict[str, object]] = {}
        for sample in family.samples:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            entry = series.setdefault(key, {"buckets": []})
            if sample.name.endswith("_bucket"):
                entry["buckets"].append((float(sample.labels["le"]), sample.value))
            else:
                entry[sample.name.rsplit("_", 1)[1]] = sample.value
        for key, entry in series.items():
            bounds = [le for le, _ in entry["buckets"]]
            counts = [count for _, count in entry["buckets"]]
            assert bounds == sorted(bounds) and bounds[-1] == float("inf"), key
            assert counts == sorted(counts), key
            assert counts[-1] == entry["count"], key
            assert entry["sum"] >= 0, key


def test_counters_grow_between_scrapes(srv):
    table_has_counters = any(row.type in ("counter", "histogram", "summary") for row in rows_for("agent"))
    url = srv.url("agent", CURRENT)
    first = growing_samples(requests.get(url, timeout=5).text)
    second = growing_samples(requests.get(url, timeout=5).text)
    assert srv.scrapes("agent", CURRENT) == 2
    assert first.keys() == second.keys()
    assert all(second[key] >= value for key, value in first.items())
    if table_has_counters:
        assert any(second[key] > value for key, value in first.items())


def test_render_is_deterministic_and_fast():
    assert render("agent", CURRENT, 7) == render("agent", CURRENT, 7)
    assert render("agent", CURRENT, 7) != render("agent", CURRENT, 8) or not any(
        row.type in ("counter", "histogram", "summary") for row in rows_for("agent")
    )
    timings = []
    for scrape in range(3):
        start = time.perf_counter()
        render("agent", CURRENT, scrape)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05


def test_a_family_in_several_rows_is_rendered_once():
    row = next(iter(rows_for("agent")), None)
    if row is None:
        pytest.skip("the table has no agent rows")
    text = render("agent", CURRENT, rows=[row, row])
    assert text.count(f"# TYPE {row.wire_name} ") == (1 if row.in_version(parse_version(CURRENT)) else 0)


def test_version_filter_follows_the_table():
    name = "cilium_policy_import_errors_total"
    in_114 = any(row.wire_name == name and row.in_version((1, 14)) for row in rows_for("agent"))
    text = render("agent", "1.14")
    assert bool(re.search(rf"^{name}[{{ ]", text, re.MULTILINE)) == in_114

    for version in FIXTURE_VERSIONS:
        minor = parse_version(version)
        exposed = {row.wire_name for row in rendered_rows("agent", version)}
        for row in rows_for("agent"):
            if row.wire_name not in exposed:
                assert not any(r.wire_name == row.wire_name and r.in_version(minor) for r in rows_for("agent"))


def test_well_known_current_families_are_exposed():
    families = parse(render("agent", CURRENT))
    current = parse_version(CURRENT)
    for wire_name in ("cilium_drop_count_total", "cilium_endpoint_state", "cilium_version", "cilium_bpf_map_pressure"):
        row = next((r for r in rows_for("agent") if r.wire_name == wire_name and r.in_version(current)), None)
        if row is not None:
            assert row.family in families, wire_name
    drop = families.get("cilium_drop_count")
    if drop is not None:
        reasons = {sample.labels["reason"] for sample in drop.samples}
        assert "Policy denied" in reasons and any(":" in reason for reason in reasons)
        assert {sample.labels["direction"] for sample in drop.samples} == {"INGRESS", "EGRESS"}
    version = families.get("cilium_version")
    if version is not None:
        assert version.samples[0].labels["version"] == "1.20.2"


def test_label_values_needing_escapes_round_trip():
    row = MetricRow(
        component="agent",
        wire_name="cilium_act_errors",
        type="counter",
        datadog_name="act.errors",
        unit="",
        per_unit="",
        orientation=-1,
        since=(1, 17),
        until=None,
        labels=(Label("msg"),),
        bundled_name="",
        legacy_name="",
        description='Errors of the "ACT" collector \\ per message',
    )
    text = render("agent", CURRENT, rows=[row])
    assert '\\"cilium_lb_act\\"' in text
    (family,) = text_string_to_metric_families(text)
    assert family.documentation == row.description
    assert any('"cilium_lb_act"' in sample.labels["msg"] for sample in family.samples)


def test_bpf_map_pressure_is_a_ratio():
    row = MetricRow("agent", "cilium_bpf_map_pressure", "gauge", "bpf.map_pressure", "fraction", "", -1, (1, 10), None,
                    (Label("map_name"),), "", "", "Map pressure")
    for version in FIXTURE_VERSIONS:
        (family,) = text_string_to_metric_families(render("agent", version, rows=[row]))
        assert family.samples and all(0 <= sample.value <= 1 for sample in family.samples)
        names = {sample.labels["map_name"] for sample in family.samples}
        # policy maps are reported as one `cilium_policy_*` since 1.15, one series per map before
        policy = "cilium_policy_*" if parse_version(version) >= (1, 15) else "cilium_policy_00123"
        assert policy in names and "cilium_ct4_global" in names


# server: encoding and routing


def test_gzip_only_when_accepted(srv):
    url = srv.url("agent", CURRENT)
    zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5)
    assert zipped.headers["Content-Encoding"] == "gzip"
    raw = zipped.raw.read(decode_content=False)
    assert raw[:2] == b"\x1f\x8b"
    parse(gzip.decompress(raw).decode("utf-8"))

    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, stream=True, timeout=5)
    assert "Content-Encoding" not in plain.headers
    body = plain.raw.read(decode_content=False)
    assert body[:2] != b"\x1f\x8b"
    assert set(parse(body.decode("utf-8"))) == set(expected_families("agent", CURRENT))


def test_requests_are_recorded_with_their_headers(srv):
    requests.get(srv.url("operator", "1.16"), headers={"Accept": SCRAPER_ACCEPT}, timeout=5)
    path, headers = srv.requests[-1]
    assert path == "/operator/1.16/metrics"
    assert headers["Accept"] == SCRAPER_ACCEPT
    assert "gzip" in headers["accept-encoding"]


def test_unknown_paths_answer_404(srv):
    for path in ("/metrics", "/envoy/1.20/metrics", "/agent/latest/metrics", "/agent/1.20"):
        assert requests.get(srv.url_for(path), timeout=5).status_code == 404, path


def test_custom_payload(srv):
    url = srv.set_payload("/custom/metrics", "# TYPE x gauge\nx 1\n", content_type="application/openmetrics-text")
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/openmetrics-text"
    assert response.text == "# TYPE x gauge\nx 1\n"
    # a custom payload overrides a generated route
    srv.set_payload(srv.url("agent", CURRENT), "")
    assert requests.get(srv.url("agent", CURRENT), timeout=5).text == ""


def test_server_renders_given_rows():
    row = MetricRow("hubble", "hubble_lost_events_total", "counter", "hubble.lost_events", "event", "", -1, (1, 14),
                    None, (Label("source"),), "", "", "Lost events")
    with FixtureServer(rows=[row]) as server:
        families = parse(requests.get(server.url("hubble", "1.16"), timeout=5).text)
    assert {sample.labels["source"] for sample in families["hubble_lost_events"].samples} >= {"hubble_ring_buffer"}


# server: faults


def test_status_fault(srv):
    url = srv.set_fault(srv.url("agent", CURRENT), "status", code=500, body="boom\n")
    response = requests.get(url, timeout=5)
    assert response.status_code == 500 and response.text == "boom\n"
    with pytest.raises(requests.HTTPError):
        response.raise_for_status()
    srv.clear_fault(url)
    requests.get(url, timeout=5).raise_for_status()


def test_slow_fault_times_out(srv):
    url = srv.set_fault(srv.url("agent", CURRENT), "slow", seconds=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=(2, 0.2))


def test_slow_fault_answers_eventually(srv):
    url = srv.set_fault(srv.url("operator", CURRENT), "slow", seconds=0.2)
    start = time.monotonic()
    requests.get(url, timeout=5).raise_for_status()
    assert time.monotonic() - start >= 0.2


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_reset_fault(srv, encoding):
    url = srv.set_fault(srv.url("agent", CURRENT), "reset")
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        requests.get(url, headers={"Accept-Encoding": encoding}, timeout=5)


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_truncate_fault(srv, encoding):
    url = srv.set_fault(srv.url("agent", CURRENT), "truncate", fraction=0.3)
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.get(url, headers={"Accept-Encoding": encoding}, timeout=5)


def test_fault_for_a_number_of_requests(srv):
    url = srv.set_fault(srv.url("agent", CURRENT), "status", code=503, times=2)
    assert [requests.get(url, timeout=5).status_code for _ in range(3)] == [503, 503, 200]


def test_faults_are_validated(srv):
    with pytest.raises(ValueError):
        srv.set_fault("/x", "explode")
    with pytest.raises(TypeError):
        srv.set_fault("/x", "slow", minutes=1)


def test_closed_url_refuses_connections(srv):
    for url in (closed_url(), srv.closed_url("/agent/1.20/metrics")):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, timeout=2)


# server: more faults (real socket behaviour on 127.0.0.1)

STATIC = render("agent", CURRENT).encode("utf-8")


def static_url(server: FixtureServer, name: str) -> str:
    return server.set_payload(f"/static/{name}/metrics", STATIC)


def wait_for_threads(before: set[threading.Thread], timeout: float = 2.0) -> set[threading.Thread]:
    """The threads started since `before` still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        extra = {t for t in set(threading.enumerate()) - before if t.is_alive()}
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.02)


def test_hang_fault_never_answers_and_lets_go_when_the_client_does(srv):
    url = srv.set_fault(static_url(srv, "hang"), "hang")
    before = set(threading.enumerate())
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=(2, 0.3))
    assert 0.3 <= time.monotonic() - start < 1.5
    # the connection was accepted (a read timeout, not a connect timeout) and the request was read
    assert srv.requests[-1].path == "/static/hang/metrics"
    # the server thread ends once the client hangs up, not after `seconds`
    assert wait_for_threads(before) == set()


def test_hang_fault_is_bounded_by_seconds(srv):
    url = srv.set_fault(static_url(srv, "hang-bounded"), "hang", seconds=0.3)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError, match="RemoteDisconnected|closed connection"):
        requests.get(url, timeout=5)
    assert 0.3 <= time.monotonic() - start < 2


def test_trickle_fault_is_a_body_that_never_ends(srv):
    url = srv.set_fault(static_url(srv, "trickle"), "trickle", interval=0.02)
    start = time.monotonic()
    with requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=(2, 1)) as response:
        assert time.monotonic() - start < 0.5, "the headers come at once"
        assert response.status_code == 200 and response.headers["Content-Type"] == CONTENT_TYPE
        assert "Content-Length" not in response.headers and "Content-Encoding" not in response.headers
        received = b""
        for chunk in response.iter_content(chunk_size=1):
            received += chunk
            if time.monotonic() - start > 0.6:
                break
    # a read timeout of 1 s never fires: bytes keep coming, one by one
    assert 10 <= len(received) <= 0.6 / 0.02 + 5
    assert STATIC.startswith(received)


def test_trickle_fault_sends_a_fraction_first_then_goes_on_after_the_payload(srv):
    small = b"# TYPE cilium_x gauge\ncilium_x 1\n"
    url = srv.set_payload("/static/trickle-fraction/metrics", small)
    srv.set_fault(url, "trickle", interval=0.01, fraction=0.5)
    with requests.get(url, stream=True, timeout=(2, 1)) as response:
        chunks = response.iter_content(chunk_size=1024)
        first = next(chunks)
        received = first
        for chunk in chunks:
            received += chunk
            if len(received) > len(small) + 30:
                break
    assert first == small[: len(small) // 2], "the fraction comes at once"
    assert received.startswith(small) and received[len(small):].startswith(b"# still streaming\n# still")


def test_trickle_fault_is_bounded_by_seconds(srv):
    url = srv.set_fault(static_url(srv, "trickle-bounded"), "trickle", interval=0.01, seconds=0.3)
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=(2, 1))
    assert 0.3 <= time.monotonic() - start < 1.5


def test_status_fault_with_a_reason_phrase(srv):
    url = srv.set_fault(static_url(srv, "reason"), "status", code=503, reason="Draining")
    response = requests.get(url, timeout=5)
    assert response.status_code == 503 and response.reason == "Draining"
    srv.set_fault(url, "status", code=429)
    assert requests.get(url, timeout=5).reason == "Too Many Requests"


def test_redirect_loop_fault(srv):
    url = srv.set_fault(static_url(srv, "redirect"), "redirect_loop")
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 302 and response.headers["Location"] == "/static/redirect/metrics"
    with pytest.raises(requests.exceptions.TooManyRedirects):
        requests.get(url, timeout=5)


@pytest.mark.parametrize(
    "kind, content_type, first_line",
    [
        ("html", "text/html; charset=utf-8", b"<!DOCTYPE html>"),
        ("json", "application/json", b'{"status": "ok"'),
        ("text", "text/plain; charset=utf-8", b"Welcome to the Cilium agent."),
    ],
)
def test_200_faults_that_are_not_metrics(srv, kind, content_type, first_line):
    url = srv.set_fault(static_url(srv, kind), kind)
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == content_type
    assert response.content.startswith(first_line)
    assert not [f for f in parse_leniently(response.text) if f.samples]
    custom = srv.set_fault(url, kind, body="custom\n")
    assert requests.get(custom, timeout=5).text == "custom\n"


def parse_leniently(text: str) -> list:
    try:
        return list(text_string_to_metric_families(text))
    except ValueError:
        return []


def test_empty_fault(srv):
    url = srv.set_fault(static_url(srv, "empty"), "empty")
    response = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == CONTENT_TYPE
    assert response.headers["Content-Length"] == "0" and response.content == b""


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_content_type_fault_serves_the_payload_under_another_type(srv, encoding):
    url = srv.set_fault(static_url(srv, "ctype"), "content_type")
    response = requests.get(url, headers={"Accept-Encoding": encoding}, timeout=5)
    assert response.headers["Content-Type"] == "application/json"
    assert response.content == STATIC
    srv.set_fault(url, "content_type", content_type="text/html")
    assert requests.get(url, timeout=5).headers["Content-Type"] == "text/html"
    # a generated route gets the fault too, and an unknown path is still a 404
    assert requests.get(srv.set_fault(srv.url("operator"), "content_type"), timeout=5).headers[
        "Content-Type"
    ] == "application/json"
    assert requests.get(srv.set_fault("/nothing/metrics", "content_type"), timeout=5).status_code == 404


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_gzip_truncated_fault(srv, encoding):
    import zlib

    url = srv.set_fault(static_url(srv, "gzip-truncated"), "gzip_truncated", fraction=0.5)
    with requests.get(url, headers={"Accept-Encoding": encoding}, stream=True, timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert "Content-Length" not in response.headers
        raw = response.raw.read(decode_content=False)  # up to the close: no framing error
    assert raw[:2] == b"\x1f\x8b" and len(raw) == int(len(gzip.compress(STATIC, mtime=0)) * 0.5)
    with pytest.raises(EOFError, match="end-of-stream marker"):
        gzip.decompress(raw)
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = decoder.decompress(raw)
    assert not decoder.eof, "the gzip stream has no end"
    assert decoded.count(b"\n") > 100 and STATIC.startswith(decoded) and len(decoded) < len(STATIC)
    # what requests makes of it: urllib3 does not notice, the decoded body is simply short
    text = requests.get(url, timeout=5).content
    assert STATIC.startswith(text) and len(text) < len(STATIC)


def test_gzip_bomb_fault_decodes_to_size(srv):
    size = 8 << 20
    url = srv.set_fault(static_url(srv, "bomb-small"), "gzip_bomb", size=size)
    response = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=5)
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) < size / 100
    assert len(response.content) == size
    assert response.content.startswith(STATIC)
    padding = response.content[len(STATIC):]
    assert padding.startswith(b"# cilium fixture padding") and padding.count(b"\n") > 100_000
    # a whole stream: gzip checks its CRC-32 and length
    assert gzip.decompress(requests.get(url, stream=True, timeout=5).raw.read(decode_content=False)) == response.content


def test_gzip_bomb_fault_2_gib_is_small_on_the_wire(srv):
    import zlib

    url = srv.set_fault(static_url(srv, "bomb"), "gzip_bomb")
    start = time.monotonic()
    with requests.get(url, stream=True, timeout=5) as response:
        length = int(response.headers["Content-Length"])
        assert length < 16 << 20
        raw = response.raw.read(decode_content=False)
    assert time.monotonic() - start < 3
    assert len(raw) == length
    assert int.from_bytes(raw[-4:], "little") == (2 << 30) & 0xFFFFFFFF
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    head = decoder.decompress(raw, 4 << 20)
    assert len(head) == 4 << 20 and head.startswith(STATIC)


def test_crc32_combine():
    import os
    import zlib

    from cilium_dev.fixtures.server import crc32_combine

    for a_len, b_len in ((0, 0), (0, 5), (5, 0), (1, 1), (1000, 777), (65536, 12345)):
        a, b = os.urandom(a_len), os.urandom(b_len)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_fault_options_are_validated(srv):
    for kind, options in (
        ("trickle", {"interval": 0}),
        ("hang", {"seconds": -1}),
        ("gzip_bomb", {"size": -1}),
        ("gzip_bomb", {"body": ""}),
        ("gzip_truncated", {"fraction": 1}),
    ):
        with pytest.raises(ValueError):
            srv.set_fault("/x", kind, **options)


def test_unconnectable_url_times_out_at_connect(srv):
    url = srv.unconnectable_url("/agent/1.20/metrics")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/agent/1.20/metrics")
    assert srv.unconnectable_url() == url.replace("/agent/1.20/metrics", "/metrics"), "one socket per server"
    if not srv.unconnectable_url_times_out():
        pytest.skip("this kernel queued every connection to a listen(0) socket: no connect timeout on loopback")
    start = time.monotonic()
    try:
        requests.get(url, timeout=0.5)
    except requests.exceptions.ConnectTimeout:
        pass
    except requests.exceptions.ReadTimeout:
        pytest.skip("this kernel completed the handshake despite a full accept backlog: no connect timeout")
    else:
        pytest.fail("a request to the unconnectable URL succeeded")
    assert time.monotonic() - start < 1.5
    # once closed, its port can serve again
    port = int(url.split(":")[2].split("/")[0])
    srv.close_unconnectable()
    with FixtureServer(port=port) as again:
        assert again.port == port
        requests.get(url, timeout=5).raise_for_status()


def test_unconnectable_on_a_given_port():
    from cilium_dev.fixtures.server import Unconnectable

    with FixtureServer() as up:
        port = up.port
        requests.get(up.url("agent"), timeout=5).raise_for_status()  # leaves a closed connection behind
    with Unconnectable(port) as sink:
        assert sink.port == port and sink.url("/x/metrics") == f"http://127.0.0.1:{port}/x/metrics"
        if not sink.full:
            pytest.skip("this kernel queued every connection to a listen(0) socket: no connect timeout on loopback")
        with pytest.raises(requests.exceptions.ConnectTimeout):
            requests.get(sink.url(), timeout=0.3)
    with FixtureServer(port=port) as again:
        requests.get(again.url("agent"), timeout=5).raise_for_status()


def test_unconnectable_socket_is_closed_at_stop():
    server = FixtureServer().start()
    url = server.unconnectable_url()
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError) as error:
        requests.get(url, timeout=1)
    assert not isinstance(error.value, requests.exceptions.ConnectTimeout), "refused, not timed out"


def test_invalid_host_does_not_resolve():
    with pytest.raises(requests.exceptions.ConnectionError, match="NameResolutionError|Failed to resolve"):
        requests.get("http://cilium-agent.invalid:9962/metrics", timeout=2)


def test_new_faults_end_at_stop_without_leaks_or_noise(capfd):
    before = set(threading.enumerate())
    server = FixtureServer().start()
    static_url(server, "a")
    server.set_fault("/static/a/metrics", "hang", seconds=60)
    static_url(server, "b")
    server.set_fault("/static/b/metrics", "trickle", seconds=60, interval=0.05)
    server.set_fault("/static/c/metrics", "gzip_bomb", seconds=60)
    server.unconnectable_url()
    outcome: list[object] = []

    def scrape(path: str, **kwargs: object) -> None:
        try:
            with requests.get(server.url_for(path), timeout=30, stream=True, **kwargs) as response:
                for _ in response.iter_content(1024):
                    pass
            outcome.append(path)
        except requests.RequestException as e:
            outcome.append(e)

    clients = [threading.Thread(target=scrape, args=(p,)) for p in ("/static/a/metrics", "/static/b/metrics")]
    for client in clients:
        client.start()
    # a client that stops reading a bomb and holds its connection
    stalled = requests.get(server.url_for("/static/c/metrics"), stream=True, timeout=30)
    stalled.raw.read(100, decode_content=False)
    time.sleep(0.3)

    start = time.monotonic()
    server.stop()
    for client in clients:
        client.join(timeout=10)
    assert time.monotonic() - start < 5
    stalled.close()
    assert len(outcome) == 2 and all(isinstance(o, requests.RequestException) for o in outcome), outcome
    assert wait_for_threads(before) == set()
    assert capfd.readouterr().err == ""


# server: lifecycle


def test_shuts_down_cleanly_and_quietly(capfd):
    before = set(threading.enumerate())
    server = FixtureServer()
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    url = server.url("agent", CURRENT)
    session = requests.Session()  # keeps its connection open, which stop() must end
    session.get(url, timeout=5).raise_for_status()
    for kind in ("reset", "truncate"):
        server.set_fault(server.url("hubble", CURRENT), kind)
        with pytest.raises(requests.RequestException):
            requests.get(server.url("hubble", CURRENT), timeout=5)
    requests.get(server.url_for("/missing"), timeout=5)

    # a request still waiting on a slow answer when the server stops
    server.set_fault(server.url("operator", CURRENT), "slow", seconds=60)
    outcome: list[object] = []

    def scrape_slowly() -> None:
        try:
            outcome.append(requests.get(server.url("operator", CURRENT), timeout=30).status_code)
        except requests.RequestException as e:
            outcome.append(e)

    pending = threading.Thread(target=scrape_slowly)
    pending.start()
    time.sleep(0.2)

    start = time.monotonic()
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=10)
    pending.join(timeout=10)
    assert time.monotonic() - start < 5
    assert outcome and isinstance(outcome[0], requests.RequestException)
    assert set(threading.enumerate()) - before == set()
    assert capfd.readouterr().err == ""
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=2)
    server.stop()  # stopping twice is harmless


def test_tls(tmp_path, capfd):
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    before = set(threading.enumerate())
    with FixtureServer(tls=context) as server:
        url = server.url("agent", CURRENT)
        assert url.startswith("https://127.0.0.1:")
        response = requests.get(url, verify=str(cert_file), timeout=5)
        assert set(parse(response.text)) == set(expected_families("agent", CURRENT))
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url, timeout=5)  # not trusted by default
        server.set_fault(url, "truncate")
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url, verify=str(cert_file), timeout=5)
    assert set(threading.enumerate()) - before == set()
    assert capfd.readouterr().err == ""  # failed handshakes are not logged either


def test_table_is_loaded():
    # The fixture tests above are written against whatever the table holds; make sure it holds something.
    assert load_table()


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_payloads_are_streamed_chunked_as_cilium_sends_them(srv, encoding):
    # Go's net/http gives a streamed handler's answer a Content-Length only when it fits 4 KiB.
    url = srv.url("agent")
    response = requests.get(url, headers={"Accept-Encoding": encoding}, stream=True)
    assert response.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.headers
    assert (response.headers.get("Content-Encoding") == "gzip") == (encoding == "gzip")
    assert response.content.decode() == render("agent", "1.20", srv.scrapes("agent") - 1)
    small = srv.set_payload("/small/metrics", "cilium_up 1\n")
    answer = requests.get(small, headers={"Accept-Encoding": "identity"})
    assert answer.headers["Content-Length"] == str(len("cilium_up 1\n"))
