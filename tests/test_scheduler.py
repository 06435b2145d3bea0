"""The Agent's scheduler: a run stays within its timeouts, and `cancel()` stops one in flight."""

import threading
import time

from datadog_checks.base.constants import ServiceCheck

from datadog_checks.cilium import CiliumCheck
from cilium_dev.fixtures.payloads import render


def test_a_run_is_bounded_when_every_endpoint_hangs(fixture_server, aggregator):
    urls = {}
    for option in ("agent_endpoint", "operator_endpoint", "hubble_endpoint"):
        urls[option] = fixture_server.set_fault(f"/hang-all/{option}/metrics", "hang", seconds=20)
    check = CiliumCheck("cilium", {}, [{**urls, "timeout": 1}])
    started = time.monotonic()
    error = check.run()
    elapsed = time.monotonic() - started
    # One request per endpoint, each given up after its 1 s timeout.
    assert elapsed < 3 * 1 + 1.5, elapsed
    assert error and all(url in error for url in urls.values())
    statuses = [sc.status for sc in aggregator.service_checks("cilium.openmetrics.health")]
    assert statuses == [ServiceCheck.CRITICAL] * 3


def test_cancel_stops_a_run_in_flight_and_releases_its_connection(fixture_server, aggregator):
    path = "/cancel/metrics"
    url = fixture_server.set_payload(path, render("agent", "1.20"))
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": url, "timeout": 30}])
    assert check.run() == ""
    # The endpoint now streams a body that never ends: only `cancel()` can end the run early.
    fixture_server.set_fault(path, "trickle", interval=0.05, seconds=60)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("error", check.run()))
    started = time.monotonic()
    runner.start()
    time.sleep(0.5)
    check.cancel()
    runner.join(timeout=5)
    assert not runner.is_alive(), "cancel() did not stop the run"
    assert time.monotonic() - started < 3
    (scraper,) = check.scrapers.values()
    # The session's connection pools are emptied: no socket stays open to the endpoint.
    adapters = scraper.http.session.adapters.values()
    assert adapters and all(len(adapter.poolmanager.pools) == 0 for adapter in adapters)
    # After cancel(), the Agent never runs the check again; if it did, nothing would be sent.
    requests_before = len(fixture_server.requests)
    fixture_server.clear_fault(path)
    assert check.run() == ""
    assert len(fixture_server.requests) == requests_before
