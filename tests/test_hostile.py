"""Hostile and malformed payloads on the default (fast) scrape path.

Each test puts the bad input between well-formed families (`cilium_unreachable_nodes 3` before,
a `cilium_drop_count_total` counter family after: `hostile_gen.BEFORE`/`AFTER`) and checks that
the run ends in bounded time (wall clock) and, where the input is big, in bounded memory
(tracemalloc peak of the run), that the well-formed series around it are submitted with their
values, that the bad part is reported (`cilium.check.lines_skipped` > 0 and/or a WARNING
health check) where it is malformed, and that nothing which was not in the input is submitted.

Big payloads (a 10 MB line, millions of distinct series, a gzip bomb, a body that never ends)
come from `hostile_gen.StreamServer`, which generates them as it sends them: the test process
never holds them, so the tracemalloc peak is the check's. Small ones come from the session's
fixture server.

Limits (issue 5): `max_line_length` (default 65536) and `max_body_size` (default 128 MiB) per
instance; the whole response within `timeout`. A line over the limit is skipped and counted
without being held; past `max_body_size` or the timeout the check stops reading, keeps what it
read, and the health check is WARNING naming the limit.

Memory bound of a run: the peak of the same check on a small well-formed payload (HTTP session,
TLS context, logging...) + 3 x max_line_length + 2 MiB. Wall time is taken on a run without
tracemalloc, whose overhead (3-4x on a run that allocates much) would distort it.

Legal input is not required to be reported: NaN and infinities (skipped silently, as stock V2
does), duplicate series and split families, negative counters and counter resets all occur in
the `exposition_gen` payloads that `test_differential.py` holds the fast path to stock V2 on,
service checks included, and stock reports them OK.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import pytest
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.base.stubs import aggregator as stub_aggregator
from exposition_gen import COMPONENTS, generate, seeds
from hostile_gen import (
    AFTER,
    AFTER_SUBMITS,
    BEFORE_SUBMITS,
    DEFAULT_MAX_LINE_LENGTH,
    HEALTH,
    LINES_SKIPPED,
    GiB,
    InputOracle,
    KiB,
    MiB,
    Outcome,
    StreamServer,
    Submitted,
    describe_health,
    distinct_series_body,
    distinct_series_line,
    endless_body,
    garbage_lines,
    gzip_bomb,
    gzip_bomb_expanded_size,
    health,
    instance_tags,
    is_documented_error,
    is_malformed_sample_line,
    lines_skipped,
    long_line_body,
    mix,
    run_measured,
    sandwich,
    submissions,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from datadog_checks.cilium import CiliumCheck
from cilium_check.components import BY_NAME

MONOTONIC_COUNT = stub_aggregator.MONOTONIC_COUNT
MEMORY_SLACK = 2 * MiB
SMALL_RUN_SECONDS = 2.0  # a run over a payload of a few KiB, whatever is wrong with it


@pytest.fixture
def stream_server():
    with StreamServer() as server:
        yield server


def make_check(url: str, **options) -> CiliumCheck:
    return CiliumCheck("cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url, **options}])


def run_small(check: CiliumCheck):
    """A run over a small payload: it must end, quickly, without escaping exceptions."""
    outcome = run_measured(check, deadline=30, trace_memory=False)
    assert outcome.raised is None, f"an exception escaped run(): {outcome.raised!r}"
    assert outcome.finished, "the run did not end within 30 s"
    assert outcome.seconds < SMALL_RUN_SECONDS, f"the run took {outcome.seconds:.2f}s over a small payload"
    return outcome


def baseline_peak(fixture_server, **options) -> int:
    """The tracemalloc peak of a first run of a fresh check over a small well-formed payload."""
    url = fixture_server.set_payload("/hostile/baseline/metrics", sandwich(""))
    outcome = run_measured(make_check(url, **options), deadline=30)
    assert outcome.finished and not outcome.error, outcome.error
    stub_aggregator.reset()
    return outcome.peak


def memory_bound(baseline: int, max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> int:
    return baseline + 3 * max_line_length + MEMORY_SLACK


def assert_submitted(aggregator, url: str, expected) -> None:
    """Every (name, value, tags) of `expected` was submitted, with the endpoint's own tags."""
    got = submissions(aggregator, url)
    for name, value, tags in expected:
        key = tuple(sorted(tags))
        matches = [s for s in got if s.name == name and s.tags == key]
        assert matches, f"{name} {list(key)} was not submitted; submitted: {_show(got)}"
        assert any(s.value == value for s in matches), (
            f"{name} {list(key)} was submitted as {[s.value for s in matches]}, not {value}"
        )


def assert_only(aggregator, url: str, allowed) -> None:
    """Nothing but `allowed` (name, value, tags) was submitted, self metrics aside."""
    allowed = {(name, float(value), tuple(sorted(tags))) for name, value, tags in allowed}
    extra = [s for s in submissions(aggregator, url) if (s.name, s.value, s.tags) not in allowed]
    assert not extra, f"submitted what the input does not hold: {_show(extra)}"


def assert_neighbours(aggregator, url: str, *, before: bool = True, after: bool = True) -> None:
    assert_submitted(aggregator, url, (BEFORE_SUBMITS if before else ()) + (AFTER_SUBMITS if after else ()))


def assert_reported(aggregator, url: str, what: str) -> None:
    """The bad input shows: lines skipped and/or a WARNING health check."""
    skipped = lines_skipped(aggregator, url)
    checks = health(aggregator, url)
    warned = any(sc.status == ServiceCheck.WARNING for sc in checks)
    assert (skipped and max(skipped) > 0) or warned, (
        f"{what} is not reported: {LINES_SKIPPED} {skipped}, health: {describe_health(checks)}"
    )


def assert_skipped_at_least(aggregator, url: str, count: int) -> None:
    skipped = lines_skipped(aggregator, url)
    assert skipped and max(skipped) >= count, f"expected at least {count} lines skipped, got {skipped}"


def assert_warning(aggregator, url: str, pattern: str) -> None:
    """The last health check is WARNING, its message starts with the URL and matches `pattern`."""
    checks = health(aggregator, url)
    assert checks, "no health service check"
    last = checks[-1]
    assert last.status == ServiceCheck.WARNING, f"health is not WARNING: {describe_health(checks)}"
    assert last.message.startswith(url), f"the message does not start with the endpoint URL: {last.message!r}"
    assert re.search(pattern, last.message), f"the message does not match {pattern!r}: {last.message!r}"


def assert_not_critical(aggregator, url: str) -> None:
    checks = health(aggregator, url)
    assert checks, "no health service check"
    assert checks[-1].status in (ServiceCheck.OK, ServiceCheck.WARNING), describe_health(checks)


def _show(items: list[Submitted], limit: int = 8) -> str:
    shown = [(s.name, s.value, list(s.tags)[:4]) for s in items[:limit]]
    return f"{shown}{' ...' if len(items) > limit else ''} ({len(items)} in all)"


def bpf(map_name: str, value) -> tuple:
    return ("cilium.bpf.map_pressure", value, (f"map_name:{map_name}",))


# --------------------------------------------------------------------------------------------
# encoding


def test_invalid_utf8_in_a_label_value(fixture_server, aggregator):
    bad_value = b"bad \xff\xfe byte \xe6\x97"  # two invalid bytes, then a truncated 3-byte sequence
    bad = (
        b"# HELP cilium_bpf_map_pressure fill \xc3\x28 ratio\n"  # invalid in HELP text
        b"# TYPE cilium_bpf_map_pressure gauge\n"
        b'cilium_bpf_map_pressure{map_name="' + bad_value + b'"} 0.5\n'
        b'cilium_bpf_map_pressure{map_name="ok"} 0.25\n'
        b"# \x80\x81 a comment of continuation bytes\n"
    )
    url = fixture_server.set_payload("/hostile/utf8/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, [bpf("ok", 0.25)])
    replaced = bad_value.decode("utf-8", "replace")
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("ok", 0.25), bpf(replaced, 0.5)])
    assert_reported(aggregator, url, "invalid UTF-8")


def test_nul_bytes(fixture_server, aggregator):
    bad = (
        "\x00\x00\x00\n"
        "cilium_unreachable\x00_nodes 4\n"
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="nul\x00inside"} 0.5\n'
        'cilium_bpf_map_pressure{map_name="ok"} 0.25\n'
        'cilium_bpf_map_pressure{map_name="after value"} 0.75\x00\n'
    )
    url = fixture_server.set_payload("/hostile/nul/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, [bpf("ok", 0.25)])
    # The NUL inside a quoted label value is legal text: kept as it is, or skipped.
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("ok", 0.25), bpf("nul\x00inside", 0.5)])
    assert_skipped_at_least(aggregator, url, 3)
    assert_warning(aggregator, url, r"malformed|skipped")


# --------------------------------------------------------------------------------------------
# label syntax


def test_an_unterminated_label_value(fixture_server, aggregator):
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="unterminated} 0.5\n'
        'cilium_bpf_map_pressure{map_name="a,b="c"} 0.6\n'
        'cilium_bpf_map_pressure{map_name="ok"} 0.25\n'
        'cilium_bpf_map_pressure{map_name="runs to the end of the line\n'
    )
    # And one more at the very end of the body, without a newline.
    body = sandwich(bad) + b'cilium_drop_count_total{direction="INGRESS",reason="eof'
    url = fixture_server.set_payload("/hostile/unterminated/metrics", body)
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, [bpf("ok", 0.25)])
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("ok", 0.25)])
    assert_skipped_at_least(aggregator, url, 4)
    assert_warning(aggregator, url, r"malformed|skipped")


def test_escaped_quotes_and_newlines_in_labels_are_kept_unescaped(fixture_server, aggregator):
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="say \\"hi\\"\\nthen \\\\ go}"} 0.5\n'
        'cilium_bpf_map_pressure{map_name="#{},= \\\\n"} 0.25\n'
        'cilium_bpf_map_pressure{map_name="trailing backslash \\\\"} 0.125\n'
    )
    url = fixture_server.set_payload("/hostile/escapes/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    expected = [
        bpf('say "hi"\nthen \\ go}', 0.5),
        bpf("#{},= \\n", 0.25),
        bpf("trailing backslash \\", 0.125),
    ]
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, expected)
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, *expected])
    assert lines_skipped(aggregator, url) == [0], "well-formed lines were skipped"
    aggregator.assert_service_check(HEALTH, ServiceCheck.OK, tags=instance_tags(url))


# --------------------------------------------------------------------------------------------
# families and types


def test_duplicate_families_and_series(fixture_server, aggregator):
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="a"} 0.5\n'
        'cilium_bpf_map_pressure{map_name="a"} 0.75\n'  # the same series again
        "# TYPE cilium_endpoint_regenerations_total counter\n"
        'cilium_endpoint_regenerations_total{outcome="success"} 4\n'
        "# TYPE cilium_bpf_map_pressure gauge\n"  # the family again, in a second block
        'cilium_bpf_map_pressure{map_name="b"} 0.25\n'
        'cilium_bpf_map_pressure{map_name="a"} 0.875\n'
    )
    url = fixture_server.set_payload("/hostile/duplicates/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_not_critical(aggregator, url)
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, [bpf("b", 0.25)])
    a_values = {s.value for s in submissions(aggregator, url) if s.tags == ("map_name:a",)}
    assert a_values and a_values <= {0.5, 0.75, 0.875}, f"map_name:a submitted as {a_values}"
    regenerations = [("cilium.endpoint.regenerations.count", 4, ("outcome:success",))]
    allowed = [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("a", 0.5), bpf("a", 0.75), bpf("a", 0.875), bpf("b", 0.25)]
    assert_only(aggregator, url, allowed + regenerations)


def test_conflicting_type_lines(fixture_server, aggregator):
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="a"} 0.5\n'
        "# TYPE cilium_bpf_map_pressure counter\n"
        'cilium_bpf_map_pressure{map_name="b"} 0.25\n'
        "# TYPE cilium_bpf_map_pressure histogram\n"
        'cilium_bpf_map_pressure{map_name="c"} 0.125\n'
    )
    url = fixture_server.set_payload("/hostile/types/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_not_critical(aggregator, url)
    assert_neighbours(aggregator, url)
    # The table types the family (gauge) whatever the TYPE lines say; a sample may be skipped.
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("a", 0.5), bpf("b", 0.25), bpf("c", 0.125)])
    assert_reported(aggregator, url, "a second TYPE line with another type")


# --------------------------------------------------------------------------------------------
# values


def test_negative_counter_values_are_submitted_raw(fixture_server, aggregator):
    bad = (
        "# TYPE cilium_forward_count_total counter\n"
        'cilium_forward_count_total{direction="INGRESS"} -5\n'
        'cilium_forward_count_total{direction="EGRESS"} 7\n'
    )
    url = fixture_server.set_payload("/hostile/negative/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_not_critical(aggregator, url)
    expected = [
        ("cilium.forward_count.count", -5, ("direction:INGRESS",)),
        ("cilium.forward_count.count", 7, ("direction:EGRESS",)),
    ]
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, expected)
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, *expected])
    for metric in aggregator.metrics("cilium.forward_count.count"):
        assert metric.type == MONOTONIC_COUNT, "a counter stays a monotonic count: the Agent handles a reset"


def test_a_counter_reset_between_two_runs(fixture_server, aggregator):
    path = "/hostile/reset/metrics"
    url = fixture_server.set_payload(path, sandwich("", after=AFTER.replace("} 10\n", "} 1000\n")))
    check = make_check(url)
    assert run_small(check).error == ""
    aggregator.reset()
    fixture_server.set_payload(path, sandwich(""))  # 1000 -> 10: the counter was reset
    outcome = run_small(check)
    assert outcome.error == "", outcome.message
    aggregator.assert_service_check(HEALTH, ServiceCheck.OK, tags=instance_tags(url))
    assert_neighbours(aggregator, url)
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS])
    (ingress,) = [m for m in aggregator.metrics("cilium.drop_count.count") if "direction:INGRESS" in m.tags]
    assert ingress.value == 10 and ingress.type == MONOTONIC_COUNT, ingress
    assert ingress.flush_first_value, "the second good run flushes: the Agent sees the lower raw value"


def test_nan_and_infinities_are_skipped_and_the_rest_kept(fixture_server, aggregator):
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        'cilium_bpf_map_pressure{map_name="nan"} NaN\n'
        'cilium_bpf_map_pressure{map_name="pinf"} +Inf\n'
        'cilium_bpf_map_pressure{map_name="ninf"} -Inf\n'
        'cilium_bpf_map_pressure{map_name="ok"} 0.25\n'
        "# TYPE cilium_forward_count_total counter\n"
        'cilium_forward_count_total{direction="INGRESS"} NaN\n'
        'cilium_forward_count_total{direction="EGRESS"} +Inf\n'
    )
    url = fixture_server.set_payload("/hostile/nan/metrics", sandwich(bad))
    outcome = run_small(make_check(url))
    assert outcome.error == "", outcome.message
    assert_not_critical(aggregator, url)
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, [bpf("ok", 0.25)])
    for s in submissions(aggregator, url):
        assert math.isfinite(s.value), f"a non-finite value was submitted: {s}"
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("ok", 0.25)])


# --------------------------------------------------------------------------------------------
# size


def run_twice(new_check, *, deadline: float, on_overrun=None) -> tuple[Outcome, Outcome]:
    """Two first runs of fresh checks: one under tracemalloc (for its peak), then one without
    (for its wall time and its submissions, which tracemalloc's overhead would distort)."""
    traced = run_measured(new_check(), deadline=deadline, on_overrun=on_overrun)
    assert traced.finished, f"the run did not end within {deadline}s (under tracemalloc)"
    assert traced.raised is None, f"an exception escaped run(): {traced.raised!r}"
    stub_aggregator.reset()
    timed = run_measured(new_check(), deadline=deadline, trace_memory=False, on_overrun=on_overrun)
    assert timed.finished, f"the run did not end within {deadline}s"
    assert timed.raised is None, f"an exception escaped run(): {timed.raised!r}"
    return traced, timed


def assert_peak(traced: Outcome, bound: int, what: str, baseline: int) -> None:
    assert traced.peak < bound, (
        f"{what} cost {traced.peak / MiB:.1f} MiB at peak (bound {bound / MiB:.1f} MiB: baseline "
        f"{baseline / MiB:.1f} MiB + 3 x max_line_length + {MEMORY_SLACK // MiB} MiB)"
    )


def test_a_1mb_label_value(fixture_server, aggregator):
    baseline = baseline_peak(fixture_server)
    huge = "v" * MiB
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        f'cilium_bpf_map_pressure{{map_name="{huge}"}} 0.5\n'
        'cilium_bpf_map_pressure{map_name="ok"} 0.25\n'
    )
    url = fixture_server.set_payload("/hostile/1mb-label/metrics", sandwich(bad))
    traced, timed = run_twice(lambda: make_check(url), deadline=30)
    assert timed.error == "", timed.message
    assert timed.seconds < SMALL_RUN_SECONDS, f"the run took {timed.seconds:.2f}s"
    assert_peak(traced, memory_bound(baseline), "a 1 MiB label value", baseline)
    assert_neighbours(aggregator, url)
    assert_submitted(aggregator, url, [bpf("ok", 0.25)])
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, bpf("ok", 0.25)])
    assert_skipped_at_least(aggregator, url, 1)
    assert_warning(aggregator, url, r"malformed|skipped|max_line_length")


def test_max_line_length_is_configurable(fixture_server, aggregator):
    limit = 1024
    bad = (
        "# TYPE cilium_bpf_map_pressure gauge\n"
        f'cilium_bpf_map_pressure{{map_name="{"s" * (limit - 64)}"}} 0.5\n'  # under the limit
        f'cilium_bpf_map_pressure{{map_name="{"l" * (limit + 64)}"}} 0.75\n'  # over it
    )
    url = fixture_server.set_payload("/hostile/max-line-length/metrics", sandwich(bad))
    outcome = run_small(make_check(url, max_line_length=limit))
    assert outcome.error == "", outcome.message
    assert_neighbours(aggregator, url)
    kept = bpf("s" * (limit - 64), 0.5)
    assert_submitted(aggregator, url, [kept])
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS, kept])
    assert_skipped_at_least(aggregator, url, 1)


def test_a_10mb_line(fixture_server, stream_server, aggregator):
    baseline = baseline_peak(fixture_server)
    chunks, length = long_line_body(10 * MiB)
    url = stream_server.serve("/hostile/10mb-line/metrics", chunks, length=length)
    traced, timed = run_twice(lambda: make_check(url), deadline=30, on_overrun=stream_server.stop)
    assert timed.error == "", timed.message
    assert timed.seconds < 3, f"the run took {timed.seconds:.2f}s over a 10 MiB line"
    assert_peak(traced, memory_bound(baseline), "a 10 MiB line", baseline)
    assert_neighbours(aggregator, url)
    assert_only(aggregator, url, [*BEFORE_SUBMITS, *AFTER_SUBMITS])
    assert_skipped_at_least(aggregator, url, 1)
    assert_warning(aggregator, url, r"malformed|skipped|max_line_length")


def test_millions_of_distinct_series_stop_at_max_body_size(fixture_server, stream_server, aggregator):
    limit = 2 * MiB
    baseline = baseline_peak(fixture_server, max_body_size=limit)
    line = len(distinct_series_line(0))
    count = 20 * MiB // line  # ~300,000 series, ~20 MiB; millions would only take longer
    chunks, length = distinct_series_body(count)
    url = stream_server.serve("/hostile/distinct/metrics", chunks, length=length)
    traced, timed = run_twice(lambda: make_check(url, max_body_size=limit), deadline=60, on_overrun=stream_server.stop)
    assert timed.error == "", timed.message
    # Reading the 20 MiB would take about ten times as long.
    assert timed.seconds < 5, f"the run took {timed.seconds:.2f}s with max_body_size {limit}"

    assert_neighbours(aggregator, url, after=False)
    got = submissions(aggregator, url)
    drops = [s for s in got if s.name == "cilium.drop_count.count"]
    others = [s for s in got if s.name != "cilium.drop_count.count"]
    assert [(s.name, s.value, s.tags) for s in others] == list(BEFORE_SUBMITS), _show(others)
    reasons = {s.tags for s in drops}
    assert all(
        len(tags) == 2 and tags[0] == "direction:INGRESS" and re.fullmatch(r"reason:hostile-\d{9}", tags[1])
        for tags in reasons
    ), f"submitted series the input does not hold: {sorted(reasons)[:5]}"
    assert all(s.value == 1 for s in drops)
    most = limit // line
    assert len(reasons) <= most + 1, f"{len(reasons)} series submitted: more than {limit} bytes hold ({most})"
    assert len(reasons) >= (limit - 64 * KiB) // line, (
        f"only {len(reasons)} of the ~{most} series within the first {limit} bytes were kept"
    )
    numbers = sorted(int(tags[1].rsplit("-", 1)[1]) for tags in reasons)
    assert numbers == list(range(len(numbers))), "the series kept are the first ones of the body"

    # The series read are cached and submitted: memory follows what was read, not the body.
    bound = memory_bound(baseline) + 16 * limit
    assert traced.peak < bound, f"the run peaked at {traced.peak / MiB:.1f} MiB (bound {bound / MiB:.1f} MiB)"
    assert_warning(aggregator, url, r"max_body_size")
    assert_warning(aggregator, url, r"2097152|2,097,152|2 ?MiB")


@pytest.mark.parametrize("warm", [False, True], ids=["first-run", "after-a-good-scrape"])
def test_a_gzip_bomb(fixture_server, stream_server, aggregator, warm):
    limit = 8 * MiB
    baseline = baseline_peak(fixture_server, max_body_size=limit)
    bomb = gzip_bomb(GiB)
    assert gzip_bomb_expanded_size(GiB) > GiB - MiB and len(bomb) < 4 * MiB
    path = "/hostile/gzip-bomb/metrics"

    def new_check():
        if not warm:
            url = stream_server.serve(path, bomb, content_encoding="gzip")
            return make_check(url, max_body_size=limit)
        url = stream_server.serve(path, sandwich(""))
        check = make_check(url, max_body_size=limit)
        assert check.run() == "", "the good scrape before the bomb failed"
        stream_server.serve(path, bomb, content_encoding="gzip")
        stub_aggregator.reset()
        return check

    traced, timed = run_twice(new_check, deadline=60, on_overrun=stream_server.stop)
    url = stream_server.base_url + path
    assert timed.error == "", timed.message
    assert timed.seconds < 3, f"the run took {timed.seconds:.2f}s over a 1 GiB gzip bomb (max_body_size {limit})"
    assert_peak(traced, memory_bound(baseline), "the gzip bomb", baseline)
    assert_neighbours(aggregator, url, after=False)  # AFTER lies past the limit
    assert_only(aggregator, url, [*BEFORE_SUBMITS])
    assert_warning(aggregator, url, r"max_body_size")
    assert_warning(aggregator, url, r"8388608|8,388,608|8 ?MiB")


# --------------------------------------------------------------------------------------------
# time


TIMEOUT = 2


def _assert_endless_outcome(aggregator, url, outcome, allowed_seconds: float) -> None:
    assert outcome.finished, (
        f"the run over a body that never ends did not stop within {allowed_seconds:.1f}s (timeout {TIMEOUT}s)"
    )
    assert outcome.raised is None, outcome.raised
    assert outcome.error == "", outcome.message
    assert outcome.seconds < allowed_seconds, f"the run took {outcome.seconds:.2f}s (timeout {TIMEOUT}s)"
    assert_neighbours(aggregator, url, after=False)
    got = submissions(aggregator, url)
    drops = {s.tags for s in got if s.name == "cilium.drop_count.count"}
    assert drops, "none of the series read before the timeout was kept"
    assert all(re.fullmatch(r"reason:hostile-\d{9}", tags[-1]) for tags in drops), sorted(drops)[:5]
    assert {s.name for s in got} <= {"cilium.unreachable.nodes", "cilium.drop_count.count"}, _show(got)
    assert_warning(aggregator, url, rf"did not finish within {TIMEOUT}(\.0)? ?s|max_body_size")


def test_a_body_that_never_ends(fixture_server, stream_server, aggregator):
    """The endpoint was found on a good scrape; then its body never ends."""
    path = "/hostile/endless/metrics"
    url = stream_server.serve(path, sandwich(""))
    check = make_check(url, timeout=TIMEOUT)
    first = run_measured(check, deadline=10, trace_memory=False)
    assert first.finished and first.error == "", first
    aggregator.reset()
    stream_server.serve(path, endless_body())
    allowed = TIMEOUT + 1.5
    outcome = run_measured(check, deadline=allowed + 5, trace_memory=False, on_overrun=stream_server.stop)
    _assert_endless_outcome(aggregator, url, outcome, allowed)


def test_a_body_that_never_ends_on_the_first_run(stream_server, aggregator):
    """No good scrape first: finding the endpoint and scraping it each get at most the timeout."""
    url = stream_server.serve("/hostile/endless-first/metrics", endless_body())
    allowed = 2 * TIMEOUT + 1.5
    outcome = run_measured(
        make_check(url, timeout=TIMEOUT), deadline=allowed + 5, trace_memory=False, on_overrun=stream_server.stop
    )
    _assert_endless_outcome(aggregator, url, outcome, allowed)


# --------------------------------------------------------------------------------------------
# generated payloads with garbage


COMPONENT_OPTION = {name: component.option for name, component in BY_NAME.items()}


@st.composite
def garbage_for(draw, component: str):
    from cilium_check.mapping import rows_for

    names = sorted({row.wire_name for row in rows_for(component)})[:40]
    count = draw(st.integers(1, 8))
    return [(draw(st.floats(0, 1)), draw(garbage_lines(names))) for _ in range(count)]


@dataclass
class GeneratedRun:
    url: str
    oracle: InputOracle
    inserted: list[bytes]
    outcomes: list


def run_generated(fixture_server, data, component: str, seed: int, runs: int = 2) -> GeneratedRun:
    """Serve a generated exposition mixed with garbage and run a fresh check on it `runs` times;
    each run's submissions are checked against the input (the stub aggregator is reset before
    each run)."""
    expo = generate(component, seed)
    garbage = data.draw(garbage_for(component), label="garbage")
    body, inserted = mix(expo.text, garbage)
    oracle = InputOracle(component)
    oracle.add_text(expo.text)
    for line in inserted:
        oracle.add_garbage(line)

    url = fixture_server.set_payload("/hostile/generated/metrics", body)
    check = CiliumCheck("cilium", {}, [{"use_openmetrics": True, COMPONENT_OPTION[component]: url}])
    outcomes = []
    for run in range(1, runs + 1):
        stub_aggregator.reset()
        outcome = run_measured(check, deadline=20, trace_memory=False)
        outcomes.append(outcome)
        assert outcome.finished, f"run {run} did not end within 20 s"
        assert outcome.raised is None, f"an exception escaped run(): {outcome.raised!r}"
        if outcome.error:
            message = json.loads(outcome.error)[0]["message"]
            assert is_documented_error(message), f"run {run} failed with an undocumented error: {message}"
        for s in submissions(stub_aggregator, url, component):
            assert math.isfinite(s.value), f"a non-finite value was submitted: {s}"
            assert oracle.explains(s.name, s.tags), (
                f"run {run} submitted {s.name} {list(s.tags)}, which no series of the input explains"
            )
        checks = health(stub_aggregator, url)
        skipped = lines_skipped(stub_aggregator, url, component)
        if skipped and max(skipped) > 0:
            assert checks and checks[-1].status != ServiceCheck.OK, (
                f"{max(skipped)} lines skipped, yet health is {describe_health(checks)}"
            )
    return GeneratedRun(url, oracle, inserted, outcomes)


PROPERTY_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "phases": (Phase.explicit, Phase.generate),  # shrinking a seed means nothing
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}


@settings(max_examples=60, **PROPERTY_SETTINGS)
@given(data=st.data(), component=st.sampled_from(COMPONENTS), seed=seeds())
def test_generated_expositions_with_garbage(fixture_server, data, component, seed):
    """No escaping exception, only documented errors, nothing submitted that the input lacks."""
    run_generated(fixture_server, data, component, seed)


@settings(max_examples=30, **PROPERTY_SETTINGS)
@given(data=st.data(), component=st.sampled_from(COMPONENTS), seed=seeds())
def test_generated_garbage_is_reported(fixture_server, data, component, seed):
    """A garbage line that is not a comment and that prometheus_client cannot read as a sample
    is malformed wherever it stands: at least one is counted in `cilium.check.lines_skipped`."""
    result = run_generated(fixture_server, data, component, seed, runs=1)
    malformed = [line for line in result.inserted if is_malformed_sample_line(line)]
    if not malformed or result.outcomes[0].error:
        return
    skipped = lines_skipped(stub_aggregator, result.url, component)
    assert skipped and max(skipped) >= 1, (
        f"{len(malformed)} malformed line(s) were not counted (lines_skipped {skipped}), e.g. {malformed[0]!r}"
    )
