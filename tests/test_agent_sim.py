"""Tests for the local `agent check` emulation (cilium_check.agent_sim).

They use stand-in checks (an OpenMetrics V2 subclass scraping a local HTTP server, and a
plain AgentCheck that submits scripted values), never the real CiliumCheck.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from datadog_checks.base import AgentCheck, OpenMetricsBaseCheckV2
from datadog_checks.base.errors import ConfigurationError
from datadog_checks.base.stubs import aggregator as stub_aggregator
from datadog_checks.base.stubs import datadog_agent
from datadog_checks.base.stubs.aggregator import AggregatorStub
from datadog_checks.base.stubs.datadog_agent import DatadogAgentStub

from cilium_check.agent_sim import (
    build_check_id,
    exit_code,
    json_payload,
    print_json,
    print_text,
    run_instances,
)
from cilium_check.agent_sim.printer import go_duration_ms

# Read by the runner as the stand-in checks' version, as the Agent reads a check module's.
__version__ = "0.0.7"

SERIES_KEYS = {"metric", "points", "tags", "host", "type", "interval", "source_type_name"}
PAUSE = 0.05  # seconds between runs: enough for distinct timestamps, keeps the suite fast


class MetricsState:
    """What the fake endpoint serves: the next counter value is popped on each request."""

    def __init__(self) -> None:
        self.counter_values = [10.0]
        self.temperature = 21.5
        self.requests = 0

    def next_counter(self) -> float:
        self.requests += 1
        if len(self.counter_values) > 1:
            return self.counter_values.pop(0)
        return self.counter_values[0]


def payload(counter: float, temperature: float) -> str:
    return (
        "# HELP requests_total Requests served.\n"
        "# TYPE requests_total counter\n"
        f'requests_total{{code="200"}} {counter}\n'
        "# HELP temperature Current temperature.\n"
        "# TYPE temperature gauge\n"
        f"temperature {temperature}\n"
        "# HELP build_info Build information.\n"
        "# TYPE build_info gauge\n"
        'build_info{version="1.15.3"} 1\n'
    )


@pytest.fixture
def endpoint():
    """A Prometheus endpoint on 127.0.0.1 whose counter follows `state.counter_values`."""
    state = MetricsState()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            body = payload(state.next_counter(), state.temperature).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def clean_stubs():
    stub_aggregator.reset()
    datadog_agent.reset()
    yield
    stub_aggregator.reset()
    datadog_agent.reset()


class StandInCheck(OpenMetricsBaseCheckV2):
    """An OpenMetrics V2 check configured only through its instance."""

    __NAMESPACE__ = "standin"
    DEFAULT_METRIC_LIMIT = 0


def om_instance(url: str) -> dict:
    return {
        "openmetrics_endpoint": url,
        "tags": ["team:net"],
        "metrics": [
            "requests",
            "temperature",
            {"build_info": {"type": "metadata", "label": "version", "name": "version"}},
        ],
    }


class ScriptedCheck(AgentCheck):
    """Submits, on run N, the N-th value of each list in the instance's `script`."""

    def __init__(self, name, init_config, instances):
        super().__init__(name, init_config, instances)
        self.run_index = 0

    def check(self, instance):
        script = instance["script"]
        i = min(self.run_index, len(script["values"]) - 1)
        self.run_index += 1
        value = script["values"][i]
        kind = script["kind"]
        if kind == "monotonic_count":
            self.monotonic_count("scripted.total", value, tags=["a:1"], flush_first_value=script.get("ffv", False))
        elif kind == "rate":
            self.rate("scripted.rate", value, tags=["a:1"])
        elif kind == "count":
            self.count("scripted.count", value, tags=["a:1"])
            self.count("scripted.count", value, tags=["a:1"])
        elif kind == "buckets":
            self.submit_histogram_bucket(
                "scripted.latency", value, 0.0, 0.5, True, "", ["a:1"], flush_first_value=script.get("ffv", False)
            )
        for message in instance.get("warn", []):
            self.warning(message)
        self.gauge("scripted.gauge", value, tags=["b:2", "a:1"])
        self.service_check("scripted.can_connect", AgentCheck.OK, tags=["a:1"])


def scripted(kind: str, values: list, **extra) -> dict:
    return {"script": {"kind": kind, "values": values, **extra}}


def series_named(series: list[dict], name: str) -> list[dict]:
    return [s for s in series if s["metric"] == name]


def values_of(series: list[dict], name: str) -> list[float]:
    return [s["points"][0][1] for s in series_named(series, name)]


def text_of(results, **kwargs) -> str:
    out = io.StringIO()
    print_text(results, out, **kwargs)
    return out.getvalue()


def section_json(text: str, title: str):
    """Parse the JSON array printed under `=== <title> ===`."""
    start = text.index(f"=== {title} ===\n") + len(f"=== {title} ===\n")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Aggregation ---------------------------------------------------------------------------------


def test_first_run_emits_no_monotonic_count_but_gauges_pass_through(endpoint):
    [result] = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)])

    assert series_named(result.series, "standin.requests.count") == []
    [temperature] = series_named(result.series, "standin.temperature")
    assert set(temperature) == SERIES_KEYS
    assert temperature["points"][0][1] == 21.5
    assert temperature["type"] == "gauge"
    assert temperature["host"] == "stubbed.hostname"
    assert temperature["interval"] == 0
    assert temperature["source_type_name"] == "System"
    assert temperature["tags"] == sorted(["team:net", f"endpoint:{endpoint.url}"])
    # The counter was still submitted: the Agent counts it as a metric sample.
    assert result.stats["MetricSamples"] == 2


def test_check_rate_runs_twice_and_emits_the_counter_delta(endpoint):
    endpoint.counter_values = [10.0, 15.0]
    [result] = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)], rate=True, pause=PAUSE)

    assert endpoint.requests == 2
    assert result.stats["TotalRuns"] == 2
    [requests] = series_named(result.series, "standin.requests.count")
    assert requests["points"][0][1] == 5
    assert requests["type"] == "count"
    assert "code:200" in requests["tags"]
    assert values_of(result.series, "standin.temperature") == [21.5]


def test_flush_first_value_emits_the_first_raw_value():
    [result] = run_instances(ScriptedCheck, "scripted", {}, [scripted("monotonic_count", [7.0], ffv=True)])
    assert values_of(result.series, "scripted.total") == [7.0]


def test_counter_reset_rebases_without_flush_first_value():
    [result] = run_instances(
        ScriptedCheck, "scripted", {}, [scripted("monotonic_count", [10.0, 4.0, 9.0])], times=3, pause=0
    )
    per_run = [values_of(run.flush.series, "scripted.total") for run in result.runs]
    # Run 1 sets the base; the drop to 4 adds nothing (the Agent flushes a 0 count) and
    # becomes the new base, so run 3 reports 9 - 4.
    assert per_run == [[], [0.0], [5.0]]


def test_counter_reset_with_flush_first_value_reports_the_new_raw_value(endpoint):
    # OpenMetrics V2 sets flush_first_value once a scrape has succeeded.
    endpoint.counter_values = [10.0, 4.0, 9.0]
    [result] = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)], times=3, pause=0)
    per_run = [values_of(run.flush.series, "standin.requests.count") for run in result.runs]
    assert per_run == [[], [4.0], [5.0]]


def test_rate_needs_two_runs_and_is_sent_as_a_gauge():
    [result] = run_instances(ScriptedCheck, "scripted", {}, [scripted("rate", [100.0, 100.5])], rate=True, pause=PAUSE)
    first, second = result.runs
    assert series_named(first.flush.series, "scripted.rate") == []
    [rate] = series_named(second.flush.series, "scripted.rate")
    assert rate["type"] == "gauge"
    # 0.5 more over at least PAUSE seconds: a per-second rate, not the raw difference.
    assert 0 < rate["points"][0][1] <= 0.5 / PAUSE


def test_count_sums_samples_and_gauge_keeps_the_last():
    [result] = run_instances(ScriptedCheck, "scripted", {}, [scripted("count", [3.0])])
    [count] = series_named(result.series, "scripted.count")
    assert (count["type"], count["points"][0][1]) == ("count", 6.0)
    [gauge] = series_named(result.series, "scripted.gauge")
    assert gauge["tags"] == ["a:1", "b:2"]


def test_histogram_buckets_become_sketches_from_the_second_run():
    [result] = run_instances(ScriptedCheck, "scripted", {}, [scripted("buckets", [4, 10])], times=2, pause=0)
    assert result.runs[0].flush.sketches == []
    [sketch] = result.sketches
    assert (sketch["metric"], sketch["value"], sketch["lower_bound"], sketch["upper_bound"]) == (
        "scripted.latency",
        6,
        0.0,
        0.5,
    )
    assert result.stats["HistogramBuckets"] == 1
    assert "=== Sketches ===" in text_of([result])


def test_the_stub_is_drained_after_each_run(endpoint):
    run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)])
    assert stub_aggregator.metric_names == []
    assert stub_aggregator.service_check_names == []


# Runner stats --------------------------------------------------------------------------------


def test_runner_stats_follow_the_agent(endpoint):
    instance = dict(om_instance(endpoint.url), min_collection_interval=30)
    [result] = run_instances(
        StandInCheck, "standin", {}, [instance], rate=True, pause=PAUSE, config_source="file:/etc/conf.yaml"
    )
    stats = result.stats
    assert stats["CheckName"] == "standin"
    assert stats["CheckVersion"] == __version__
    assert stats["CheckConfigSource"] == "file:/etc/conf.yaml"
    assert stats["CheckLoader"] == "python"
    assert re.fullmatch(r"standin:[0-9a-f]{16}", stats["CheckID"])
    assert stats["CheckID"] == build_check_id("standin", instance, {})
    assert stats["Interval"] == 30 * 10**9
    assert (stats["TotalRuns"], stats["TotalErrors"], stats["TotalWarnings"]) == (2, 0, 0)
    assert (stats["MetricSamples"], stats["TotalMetricSamples"]) == (2, 4)
    assert (stats["ServiceChecks"], stats["TotalServiceChecks"]) == (1, 2)
    assert len(stats["ExecutionTimes"]) == 32
    assert stats["LastError"] == ""
    assert stats["LastSuccessDate"] == stats["UpdateTimestamp"] > 0
    assert result.inventory["version.raw"] == "1.15.3"


def test_check_id_depends_on_the_instance():
    a = build_check_id("cilium", {"agent_endpoint": "http://a:9962/metrics"}, {})
    b = build_check_id("cilium", {"agent_endpoint": "http://b:9962/metrics"}, {})
    assert a != b
    assert a == build_check_id("cilium", {"agent_endpoint": "http://a:9962/metrics"}, {})
    assert re.fullmatch(r"cilium:[0-9a-f]{16}", a)


def test_warnings_are_collected_per_run():
    instance = dict(scripted("count", [1.0]), warn=["endpoint is slow"])
    [result] = run_instances(ScriptedCheck, "scripted", {}, [instance], times=2, pause=0)
    assert result.stats["LastWarnings"] == ["endpoint is slow"]
    assert result.stats["TotalWarnings"] == 2
    assert [run.warnings for run in result.runs] == [["endpoint is slow"], ["endpoint is slow"]]
    text = text_of([result])
    assert "[WARNING]" in text
    assert "      Warning: endpoint is slow" in text


# Errors --------------------------------------------------------------------------------------


def test_down_endpoint_sets_last_error_to_the_run_json():
    url = f"http://127.0.0.1:{closed_port()}/metrics"
    [result] = run_instances(StandInCheck, "standin", {}, [om_instance(url)])

    assert result.stats["LastError"] == result.runs[-1].error
    [error] = json.loads(result.stats["LastError"])
    assert set(error) == {"message", "traceback"}
    assert "There was an error scraping endpoint" in error["message"]
    assert result.stats["TotalErrors"] == 1
    assert result.stats["LastSuccessDate"] == 0
    [health] = result.service_checks
    assert (health["check"], health["status"]) == ("standin.openmetrics.health", 2)

    text = text_of([result])
    assert f"Instance ID: {result.check_id} [ERROR]" in text
    assert f"      Error: {error['message']}" in text
    assert "Last Successful Execution Date : Never" in text
    assert "Traceback (most recent call last):" in text
    assert exit_code([result]) == 0  # the command still succeeds, as `agent check` does


class BrokenConfigCheck(StandInCheck):
    def __init__(self, name, init_config, instances):
        super().__init__(name, init_config, instances)
        raise ConfigurationError("`agent_endpoint` or `operator_endpoint` is required")


def test_constructor_configuration_error_is_a_load_error(endpoint):
    results = run_instances(BrokenConfigCheck, "standin", {}, [om_instance(endpoint.url)])
    [result] = results
    assert not result.loaded
    assert result.load_error == "`agent_endpoint` or `operator_endpoint` is required"
    assert exit_code(results) != 0

    text = text_of(results)
    assert "Error: could not load standin:" in text
    assert "* Python Check Loader:" in text
    assert "ConfigurationError: `agent_endpoint` or `operator_endpoint` is required" in text
    assert text.rstrip().endswith("Error: no valid check found")

    out, err = io.StringIO(), io.StringIO()
    print_json(results, out, err=err)
    assert out.getvalue() == ""
    assert "`agent_endpoint` or `operator_endpoint` is required" in err.getvalue()


# Printing ------------------------------------------------------------------------------------


def test_text_output_layout(endpoint):
    [result] = run_instances(
        StandInCheck, "standin", {}, [om_instance(endpoint.url)], config_source="file:/etc/standin.yaml"
    )
    text = text_of([result])

    series = section_json(text, "Series")
    assert {s["metric"] for s in series} == {"standin.temperature"}
    assert "=== Sketches ===" not in text
    [health] = section_json(text, "Service Checks")
    assert list(health) == ["check", "host_name", "timestamp", "status", "message", "tags"]
    assert (health["check"], health["status"], health["message"]) == ("standin.openmetrics.health", 0, "")
    assert health["host_name"] == "stubbed.hostname"
    assert health["tags"] == ["team:net", f"endpoint:{endpoint.url}"]

    title = f"standin ({__version__})"
    expected_head = [
        "=========",
        "Collector",
        "=========",
        "",
        "  Running Checks",
        "  ==============",
        "",
        f"    {title}",
        "    " + "-" * len(title),
        f"      Instance ID: {result.check_id} [OK]",
        "      Configuration Source: file:/etc/standin.yaml",
        "      Total Runs: 1",
        "      Metric Samples: Last Run: 2, Total: 2",
        "      Events: Last Run: 0, Total: 0",
        "      Service Checks: Last Run: 1, Total: 1",
        "      Histogram Buckets: Last Run: 0, Total: 0",
    ]
    lines = text.splitlines()
    start = lines.index("=========")
    assert lines[start : start + len(expected_head)] == expected_head
    rest = lines[start + len(expected_head) :]
    assert re.fullmatch(r"      Average Execution Time : \d+(\.\d+)?m?s", rest[0])
    assert re.fullmatch(r"      Last Execution Date : \d{4}-\d\d-\d\d \d\d:\d\d:\d\d .+ \(\d{13}\)", rest[1])
    assert rest[2].startswith("      Last Successful Execution Date : ")
    assert rest[3] == "      metadata:"
    assert "        version.raw: 1.15.3" in rest
    metadata = rest.index("  Metadata")
    assert rest[metadata + 1] == "  ========"
    assert f"    config.hash: {result.check_id}" in rest
    assert "    config.provider: file" in rest
    assert "    config.source: /etc/standin.yaml" in rest
    assert "    version.major: 1" in rest
    assert lines[-1] == (
        "Check has run only once, if some metrics are missing you can try again with --check-rate argument"
    )


def test_no_single_run_hint_after_two_runs(endpoint):
    results = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)], rate=True, pause=PAUSE)
    assert "Check has run only once" not in text_of(results)


def test_json_output_parses_with_runner_and_aggregator(endpoint):
    endpoint.counter_values = [10.0, 12.0]
    results = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)], rate=True, pause=PAUSE)
    out = io.StringIO()
    print_json(results, out)
    [data] = json.loads(out.getvalue())

    assert set(data) == {"aggregator", "runner", "inventories"}
    runner = data["runner"]
    assert runner["CheckName"] == "standin"
    assert runner["CheckID"] == results[0].check_id
    assert runner["LastError"] == ""
    metrics = data["aggregator"]["metrics"]
    assert {m["metric"] for m in metrics} == {"standin.requests.count", "standin.temperature"}
    for metric in metrics:
        assert SERIES_KEYS <= set(metric)
        assert metric["host"] == "stubbed.hostname"
        assert metric["type"] in {"gauge", "count", "rate"}
        [[ts, value]] = metric["points"]
        assert isinstance(ts, int)
    assert data["aggregator"]["service_checks"][0]["check"] == "standin.openmetrics.health"
    assert data["aggregator"]["events"] == []
    assert data["inventories"][runner["CheckID"]]["version.raw"] == "1.15.3"
    # Integral floats print as Go prints them.
    assert '"interval": 0' in out.getvalue()
    assert re.search(r"\[\s*\d+,\s*2\s*\]", out.getvalue())


def test_json_output_replays_with_checks_dev(endpoint):
    """datadog-checks-dev's `dd_agent_check` replays this JSON into the stubs."""
    from datadog_checks.dev._env import replay_check_run

    endpoint.counter_values = [10.0, 12.0]
    results = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)], rate=True, pause=PAUSE)
    replayed, agent = AggregatorStub(), DatadogAgentStub()
    replay_check_run(json_payload(results), replayed, agent)
    replayed.assert_metric("standin.requests.count", value=2, metric_type=replayed.COUNT, tags=None)
    replayed.assert_metric("standin.temperature", value=21.5, metric_type=replayed.GAUGE)
    replayed.assert_service_check("standin.openmetrics.health", AgentCheck.OK)


def test_table_lists_each_metric(endpoint):
    endpoint.counter_values = [10.0, 12.0]
    results = run_instances(StandInCheck, "standin", {}, [om_instance(endpoint.url)], rate=True, pause=PAUSE)
    text = text_of(results, table=True)
    table = text[text.index("=== Series ===\n") : text.index("=== Service Checks ===")].splitlines()[1:]
    assert table[0].split() == ["Metric", "Type", "Value", "Tags"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["standin.requests.count"][1:3] == ["count", "2"]
    assert rows["standin.temperature"][1:3] == ["gauge", "21.5"]
    # Columns are aligned: every row starts its Type column at the same offset.
    offset = table[0].index("Type")
    assert all(line[offset - 2 : offset] == "  " and line[offset] != " " for line in table[1:])


def test_several_instances_print_one_block_each(endpoint):
    instances = [om_instance(endpoint.url), dict(om_instance(endpoint.url), tags=["team:other"])]
    results = run_instances(StandInCheck, "standin", {}, instances)
    assert len({r.check_id for r in results}) == 2
    text = text_of(results)
    assert text.startswith("Multiple check instances found, running each of them\n")
    assert text.count("  Running Checks") == 2
    out = io.StringIO()
    print_json(results, out)
    assert [d["runner"]["CheckID"] for d in json.loads(out.getvalue())] == [r.check_id for r in results]


@pytest.mark.parametrize(
    "ms, expected", [(0, "0s"), (12, "12ms"), (1500, "1.5s"), (62000, "1m2s"), (3600000, "1h0m0s")]
)
def test_execution_time_reads_like_a_go_duration(ms, expected):
    assert go_duration_ms(ms) == expected
