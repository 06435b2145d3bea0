"""Fault injection: every way an endpoint can fail, against the behaviour of issue 5.

Each case scrapes a healthy agent endpoint (a static payload) beside the operator, breaks the agent
endpoint, and checks that the run
- ends within the configured `timeout` plus a small margin,
- reports the agent endpoint's health (CRITICAL, or WARNING when the lines read so far are kept) with a
  message that starts with its URL and says the cause in words,
- still scrapes and submits the operator,
then makes the endpoint healthy again and checks that the next run is OK without flushing the first
value of monotonic counters after a failed scrape (the process did not restart: no spike after a
gap; `tests/test_restarts.py` has the restarts), and the run after that flushes them again.

Every case runs with the fast scrape path and with the stock parser (`fast_path: false`).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from datadog_checks.base.constants import ServiceCheck

from datadog_checks.cilium import CiliumCheck
from cilium_dev.fixtures.payloads import render
from cilium_dev.fixtures.server import Fault, FixtureServer, Unconnectable

TIMEOUT = 1  # seconds: the instance's `timeout`
MARGIN = 0.75  # seconds a faulty run may take past it (the operator scrape, the check's own work)
HEALTH = "cilium.openmetrics.health"
OPERATOR_METRIC = "cilium.operator.process.resident_memory.bytes"
SELF_METRIC_PREFIX = "cilium.check."
STATIC_AGENT = render("agent", "1.20")
STATUS_NAMES = {
    ServiceCheck.OK: "OK",
    ServiceCheck.WARNING: "WARNING",
    ServiceCheck.CRITICAL: "CRITICAL",
    ServiceCheck.UNKNOWN: "UNKNOWN",
}
URL_WORD = r"(?=[^\w/.-]|$)"  # the URL ends there (not a longer URL it is a prefix of)


@pytest.fixture(params=[True, False], ids=["fast", "stock"])
def fast_path(request) -> bool:
    return request.param


@pytest.fixture
def new_check(fixture_server) -> Iterator[Callable[..., CiliumCheck]]:
    """A check scraping `agent_url` and the session server's operator, with `timeout: 1`; cancelled at the end."""
    checks: list[CiliumCheck] = []

    def make(agent_url: str, **options: Any) -> CiliumCheck:
        instance = {
            "agent_endpoint": agent_url,
            "operator_endpoint": fixture_server.url("operator"),
            "timeout": TIMEOUT,
            **options,
        }
        check = CiliumCheck("cilium", {}, [instance])
        checks.append(check)
        return check

    yield make
    for check in checks:
        check.cancel()


@pytest.fixture
def make_check(new_check, fast_path) -> Callable[..., CiliumCheck]:
    """`new_check` with the fast path on and off."""
    return lambda agent_url, **options: new_check(agent_url, fast_path=fast_path, **options)


# assertions


def error_message(error: str) -> str:
    return "; ".join(e.get("message", "") for e in json.loads(error)) if error else ""


def health_of(aggregator, url: str):
    """The one health service check this run sent for the endpoint `url`."""
    checks = [sc for sc in aggregator.service_checks(HEALTH) if f"endpoint:{url}" in sc.tags]
    assert len(checks) == 1, f"expected one health check for {url} per run, got " + repr(
        [(STATUS_NAMES.get(sc.status, sc.status), sc.message) for sc in checks]
    )
    return checks[0]


def endpoint_metrics(aggregator, url: str, *, self_metrics: bool = False) -> list:
    found = []
    for name in aggregator.metric_names:
        if name.startswith(SELF_METRIC_PREFIX) and not self_metrics:
            continue
        found += [m for m in aggregator.metrics(name) if f"endpoint:{url}" in m.tags]
    return found


def counters_of(aggregator, url: str) -> list:
    return [m for m in endpoint_metrics(aggregator, url) if m.type == aggregator.MONOTONIC_COUNT]


def run_healthy(aggregator, check: CiliumCheck, url: str) -> None:
    error = check.run()
    assert error == "", f"the healthy run failed: {error_message(error)}"
    sc = health_of(aggregator, url)
    assert sc.status == ServiceCheck.OK, f"the healthy run is {STATUS_NAMES.get(sc.status)}: {sc.message!r}"


def run_faulty(
    aggregator,
    check: CiliumCheck,
    url: str,
    operator_url: str,
    status: int,
    cause: str,
    *,
    partial: bool = False,
) -> str:
    """Run the check on the broken endpoint and assert what issue 5 says of it; returns run()'s error."""
    aggregator.reset()
    start = time.monotonic()
    error = check.run()
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + MARGIN, f"the run took {elapsed:.2f}s with `timeout: {TIMEOUT}`"

    sc = health_of(aggregator, url)
    assert sc.status == status, (
        f"health is {STATUS_NAMES.get(sc.status, sc.status)}, expected {STATUS_NAMES[status]}: {sc.message!r}"
    )
    assert re.match(re.escape(url) + URL_WORD + ".*" + cause, sc.message or "", re.DOTALL), (
        f"the health message should start with {url} and say /{cause}/: {sc.message!r}"
    )
    if status == ServiceCheck.CRITICAL:
        assert error, "the run reports an endpoint's first failing run"
        assert url in error_message(error), error_message(error)
    if partial:
        assert endpoint_metrics(aggregator, url), "the series read before the failure are kept"

    # the other endpoint of the instance is scraped whatever happens to this one
    operator = health_of(aggregator, operator_url)
    assert operator.status == ServiceCheck.OK, f"the operator's health: {operator.message!r}"
    assert [m for m in aggregator.metrics(OPERATOR_METRIC) if f"endpoint:{operator_url}" in m.tags], (
        f"{OPERATOR_METRIC} of {operator_url} was not submitted"
    )
    return error


def run_recovered(aggregator, check: CiliumCheck, url: str, *, after_failure: bool = True) -> None:
    """The endpoint answers again: OK, no flush of counters' first values, then flushes again."""
    aggregator.reset()
    run_healthy(aggregator, check, url)
    counters = counters_of(aggregator, url)
    assert counters, f"no monotonic counter of {url} was submitted"
    flushed = sorted({m.name for m in counters if m.flush_first_value})
    if after_failure:
        assert not flushed, f"the first good run after a failure flushes the first value of {flushed[:5]}"
    else:
        assert len(flushed) == len({m.name for m in counters}), "the endpoint never failed: counters flush"

    aggregator.reset()
    run_healthy(aggregator, check, url)
    counters = counters_of(aggregator, url)
    assert counters and all(m.flush_first_value for m in counters), (
        "the second good run flushes counters' first values: "
        f"{sorted({m.name for m in counters if not m.flush_first_value})[:5]} do not"
    )


# faults the fixture server plays on a path


@dataclass(frozen=True)
class Case:
    status: int
    cause: str  # a regex of the health message, after the URL
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    instance: dict[str, Any] = field(default_factory=dict)  # more instance options
    partial: bool = False  # WARNING with the lines read so far kept


CRITICAL, WARNING, OK = ServiceCheck.CRITICAL, ServiceCheck.WARNING, ServiceCheck.OK
NO_METRICS = r"answered HTTP 200 but served no Prometheus metrics \(Content-Type: {type}; first line: {line}\)"

CASES = {
    # a server that answers too late: read timeout before the headers
    "read-timeout": Case(CRITICAL, rf"no answer within {TIMEOUT}s", "slow", {"seconds": TIMEOUT + 1.5}),
    # a server that accepts the connection and never answers
    "accepts-never-answers": Case(CRITICAL, rf"no answer within {TIMEOUT}s", "hang", {"seconds": 10}),
    "reset-mid-body": Case(WARNING, r"the connection broke after [1-9]\d* lines: ", "reset", partial=True),
    "truncated-body": Case(WARNING, r"the connection broke after [1-9]\d* lines: ", "truncate", partial=True),
    "truncated-gzip": Case(WARNING, r"the connection broke after [1-9]\d* lines: ", "gzip_truncated", partial=True),
    "redirect-loop": Case(CRITICAL, r"too many redirects", "redirect_loop"),
    "401": Case(
        CRITICAL,
        r"HTTP 401 Unauthorized: check the credentials \(`auth_token`, `username`",
        "status",
        {"code": 401, "body": "Unauthorized\n"},
    ),
    "403": Case(CRITICAL, r"HTTP 403 Forbidden: \S", "status", {"code": 403, "body": "Forbidden\n"}),
    "404": Case(
        CRITICAL, r"HTTP 404 Not Found: is the path /metrics\?", "status", {"code": 404, "body": "404 page not found\n"}
    ),
    "429": Case(CRITICAL, r"HTTP 429 Too Many Requests", "status", {"code": 429, "body": "slow down\n"}),
    "500": Case(CRITICAL, r"HTTP 500 Internal Server Error", "status", {"code": 500}),
    "503": Case(CRITICAL, r"HTTP 503 Service Unavailable", "status", {"code": 503, "body": "draining\n"}),
    "503-own-reason": Case(CRITICAL, r"HTTP 503 Draining", "status", {"code": 503, "reason": "Draining"}),
    "html-200": Case(
        CRITICAL, NO_METRICS.format(type=r"text/html[^;)]*(; charset=utf-8)?", line=r"'<!DOCTYPE html>'"), "html"
    ),
    "json-200": Case(
        CRITICAL,
        NO_METRICS.format(type=r"application/json", line=re.escape(repr(Fault("json").body.strip()))),
        "json",
    ),
    "prose-200": Case(
        CRITICAL,
        NO_METRICS.format(type=r"text/plain(; charset=utf-8)?", line=r"'Welcome to the Cilium agent\.'"),
        "text",
    ),
    "empty-200": Case(CRITICAL, r"answered HTTP 200 with an empty body", "empty"),
    # JSON Content-Type, Prometheus text body: parsed anyway
    "json-content-type-valid-exposition": Case(OK, "", "content_type", {"content_type": "application/json"}),
    # beyond the list: the bounds of issue 5 against the fixture server's other faults
    "body-that-never-ends": Case(
        WARNING,
        rf"did not finish within {TIMEOUT}s",
        "trickle",
        {"fraction": 0.5, "interval": 0.05, "seconds": 10},
        partial=True,
    ),
    "gzip-bomb": Case(
        WARNING,
        r"exceeded `?max_body_size`?\b.*\b1048576\b",
        "gzip_bomb",
        {"size": 2 << 30},
        instance={"max_body_size": 1 << 20},
        partial=True,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fault_on_a_path(name, fixture_server, aggregator, make_check, caplog):
    case = CASES[name]
    caplog.set_level(logging.INFO)
    path = f"/faults/{name}/metrics"
    url = fixture_server.set_payload(path, STATIC_AGENT)
    operator_url = fixture_server.url("operator")
    check = make_check(url, **case.instance)
    try:
        run_healthy(aggregator, check, url)

        fixture_server.set_fault(path, case.kind, **case.options)
        if case.status == OK:
            for _ in range(2):
                aggregator.reset()
                start = time.monotonic()
                error = check.run()
                assert time.monotonic() - start < TIMEOUT + MARGIN
                assert error == "", error_message(error)
                sc = health_of(aggregator, url)
                assert sc.status == OK, f"a valid exposition under another Content-Type is parsed: {sc.message!r}"
                assert [m for m in aggregator.metrics("cilium.endpoint.state") if f"endpoint:{url}" in m.tags]
                assert health_of(aggregator, operator_url).status == OK
                assert aggregator.metrics(OPERATOR_METRIC)
            logged = [r for r in caplog.records if "application/json" in r.getMessage()]
            assert [r.levelno for r in logged] == [logging.INFO], (
                "a wrong Content-Type is logged once, at info: " + repr([(r.levelname, r.getMessage()) for r in logged])
            )
        else:
            run_faulty(aggregator, check, url, operator_url, case.status, case.cause, partial=case.partial)
    finally:
        fixture_server.clear_fault(path)
    # A cut scrape (WARNING) is not a failure: what it read was sent as usual, and the Agent keeps
    # the previous sample of what it did not reach, so counters go on flushing.
    run_recovered(aggregator, check, url, after_failure=case.status == CRITICAL)


# faults of the network: nothing listens, no name, no connection


def test_connection_refused(aggregator, make_check, fixture_server):
    agent = FixtureServer().start()
    try:
        port = agent.port
        url = agent.set_payload("/faults/refused/metrics", STATIC_AGENT)
        check = make_check(url)
        run_healthy(aggregator, check, url)
        agent.stop()  # the agent goes away: nothing listens on its port

        run_faulty(
            aggregator,
            check,
            url,
            fixture_server.url("operator"),
            CRITICAL,
            r"connection refused \(nothing listens on that port\)",
        )

        agent = FixtureServer(port=port).start()  # ... and comes back
        agent.set_payload("/faults/refused/metrics", STATIC_AGENT)
        run_recovered(aggregator, check, url)
    finally:
        agent.stop()


def test_dns_failure(aggregator, make_check, fixture_server, monkeypatch):
    host = "cilium-agent.invalid"  # reserved: never resolves (RFC 2606)
    url = fixture_server.set_payload("/faults/dns/metrics", STATIC_AGENT).replace("127.0.0.1", host)
    real_getaddrinfo = socket.getaddrinfo

    def resolving(name, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if name == host else name, *args, **kwargs)

    check = make_check(url)
    with monkeypatch.context() as patched:  # the name resolves ...
        patched.setattr(socket, "getaddrinfo", resolving)
        run_healthy(aggregator, check, url)

    # ... then it does not (the real resolver)
    run_faulty(aggregator, check, url, fixture_server.url("operator"), CRITICAL, r"the host name does not resolve")

    with monkeypatch.context() as patched:  # ... and it does again
        patched.setattr(socket, "getaddrinfo", resolving)
        run_recovered(aggregator, check, url)


def test_connect_timeout(aggregator, make_check, fixture_server):
    agent = FixtureServer().start()
    try:
        port = agent.port
        url = agent.set_payload("/faults/connect-timeout/metrics", STATIC_AGENT)
        check = make_check(url)
        run_healthy(aggregator, check, url)
        agent.stop()

        # the port listens, but its accept queue is full: the SYN is dropped, connecting times out
        with Unconnectable(port) as sink:
            if not sink.full:
                pytest.skip("this kernel queued every connection to a listen(0) socket: no connect timeout on loopback")
            run_faulty(
                aggregator,
                check,
                url,
                fixture_server.url("operator"),
                CRITICAL,
                rf"connection timed out after {TIMEOUT}s",
            )

        agent = FixtureServer(port=port).start()
        agent.set_payload("/faults/connect-timeout/metrics", STATIC_AGENT)
        run_recovered(aggregator, check, url)
    finally:
        agent.stop()


def test_connect_timeout_at_the_first_run(aggregator, new_check, fixture_server):
    url = fixture_server.unconnectable_url("/faults/first-run/never-connects/metrics")
    if not fixture_server.unconnectable_url_times_out():
        pytest.skip("this kernel queued every connection to a listen(0) socket: no connect timeout on loopback")
    check = new_check(url)
    run_faulty(
        aggregator, check, url, fixture_server.url("operator"), CRITICAL, rf"connection timed out after {TIMEOUT}s"
    )


# faults from the very first run: the endpoint never answered well

FIRST_RUN_CASES = ["accepts-never-answers", "redirect-loop", "401", "404", "503", "html-200", "prose-200", "empty-200"]


@pytest.mark.parametrize("name", FIRST_RUN_CASES)
def test_fault_at_the_first_run(name, fixture_server, aggregator, new_check):
    case = CASES[name]
    path = f"/faults/first-run/{name}/metrics"
    url = fixture_server.set_payload(path, STATIC_AGENT)
    fixture_server.set_fault(path, case.kind, **case.options)
    check = new_check(url)
    try:
        run_faulty(aggregator, check, url, fixture_server.url("operator"), case.status, case.cause)
    finally:
        fixture_server.clear_fault(path)
    run_recovered(aggregator, check, url)


def test_connection_refused_at_the_first_run(aggregator, new_check, fixture_server):
    url = fixture_server.closed_url("/faults/first-run/refused/metrics")
    run_faulty(
        aggregator,
        new_check(url),
        url,
        fixture_server.url("operator"),
        CRITICAL,
        r"connection refused \(nothing listens on that port\)",
    )


def test_dns_failure_at_the_first_run(aggregator, new_check, fixture_server):
    url = "http://cilium-agent.invalid:9962/metrics"
    run_faulty(
        aggregator, new_check(url), url, fixture_server.url("operator"), CRITICAL, r"the host name does not resolve"
    )
