"""Validation of the Datadog assets: recommended monitors, dashboards, service checks, manifest.

Offline: a small parser for Datadog metric queries (monitor form and dashboard form) and for the
service check monitor query checks every query against metadata.csv, so a dashboard or monitor
never uses a metric the check does not submit, and never treats a count as a gauge or the reverse.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from cilium_dev.fixtures.values import AGENT_DROP_REASONS

ROOT = Path(__file__).resolve().parent.parent
MONITORS_DIR = ROOT / "assets" / "monitors"
DASHBOARDS_DIR = ROOT / "assets" / "dashboards"
MANIFEST = ROOT / "manifest.json"
METADATA = ROOT / "metadata.csv"
SERVICE_CHECKS = ROOT / "assets" / "service_checks.json"

# --------------------------------------------------------------------------------------------
# Datadog tag normalization (what the backend does to a tag before it can be queried):
# lowercase; characters other than letters, digits, '_', '-', ':', '.', '/' become '_';
# runs of '_' collapse to one; trailing '_' are dropped.


def normalize_tag_value(value: str) -> str:
    value = re.sub(r"[^a-z0-9_\-:./]", "_", value.lower())
    value = re.sub(r"_+", "_", value)
    return value.rstrip("_")


# --------------------------------------------------------------------------------------------
# Query parser


class QueryParseError(ValueError):
    pass


SPACE_AGGREGATORS = {"avg", "min", "max", "sum"}
TIME_AGGREGATORS = {"avg", "min", "max", "sum"}
COMPARATORS = (">=", "<=", ">", "<")
# Methods that can follow a metric term, with the argument shape each one accepts.
TERM_METHODS = {
    "as_count": re.compile(r"^$"),
    "as_rate": re.compile(r"^$"),
    "rollup": re.compile(r"^(sum|avg|min|max|count)(\s*,\s*\d+)?$|^\d+$"),
    "fill": re.compile(r"^(null|zero|linear|last)(\s*,\s*\d+)?$"),
}
# Functions that can wrap expressions (monitor and dashboard queries).
FUNCTIONS = {
    "anomalies",
    "outliers",
    "forecast",
    "abs",
    "log2",
    "log10",
    "cumsum",
    "integral",
    "per_second",
    "per_minute",
    "per_hour",
    "diff",
    "derivative",
    "monotonic_diff",
    "default_zero",
    "count_nonzero",
    "count_not_null",
    "top",
    "top_offset",
    "timeshift",
    "hour_before",
    "day_before",
    "week_before",
    "month_before",
    "ewma_3",
    "ewma_5",
    "ewma_10",
    "ewma_20",
    "median_3",
    "median_5",
    "median_7",
    "median_9",
    "robust_trend",
    "trend_line",
    "piecewise_constant",
    "clamp_min",
    "clamp_max",
    "cutoff_min",
    "cutoff_max",
    "sqrt",
    "exclude_null",
}
METRIC_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z0-9_]+)+")
# A tag key or value after normalization; '*' allowed as a wildcard, '$var' / '$var.value' for
# dashboard template variables.
TAG_KEY_RE = re.compile(r"^[a-z][a-z0-9_\-./]*$")
TAG_VALUE_RE = re.compile(r"^[a-z0-9_\-:./*]+$")
TEMPLATE_VAR_RE = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*(\.value)?$")


@dataclass
class MetricTerm:
    space_agg: str
    metric: str
    filters: list[str]
    by: list[str]
    methods: list[tuple[str, str]] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)  # enclosing functions, innermost first

    def has_method(self, *names: str) -> bool:
        return any(name in names for name, _ in self.methods)


@dataclass
class FunctionCall:
    name: str
    args: list
    kwargs: dict[str, str]


@dataclass
class MetricQuery:
    """A parsed query: the expression's terms, plus the monitor parts when it is a monitor query."""

    terms: list[MetricTerm]
    functions: list[FunctionCall]
    time_agg: str | None = None
    timeframe: str | None = None
    comparator: str | None = None
    threshold: float | None = None

    @property
    def group_by(self) -> set[str]:
        return {tag for term in self.terms for tag in term.by}

    @property
    def window_minutes(self) -> int:
        return _timeframe_minutes(self.timeframe)


def _timeframe_minutes(timeframe: str) -> int:
    match = re.fullmatch(r"last_(\d+)([mhdw])", timeframe or "")
    if not match:
        raise QueryParseError(f"bad timeframe {timeframe!r}")
    return int(match.group(1)) * {"m": 1, "h": 60, "d": 1440, "w": 10080}[match.group(2)]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.terms: list[MetricTerm] = []
        self.functions: list[FunctionCall] = []

    # -- helpers
    def error(self, what: str):
        raise QueryParseError(f"{what} at {self.pos} in {self.text!r}")

    def ws(self):
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self, s: str) -> bool:
        self.ws()
        return self.text.startswith(s, self.pos)

    def expect(self, s: str):
        if not self.peek(s):
            self.error(f"expected {s!r}")
        self.pos += len(s)

    def match(self, regex: re.Pattern | str) -> str | None:
        self.ws()
        m = re.compile(regex).match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return m.group(0)

    def at_end(self) -> bool:
        self.ws()
        return self.pos >= len(self.text)

    # -- grammar
    def expression(self, stop: tuple[str, ...] = ()) -> None:
        self.unary()
        while True:
            self.ws()
            if self.pos < len(self.text) and self.text[self.pos] in "+-*/":
                self.pos += 1
                self.unary()
            else:
                return

    def unary(self):
        if self.peek("-"):
            self.pos += 1
        self.primary()

    def primary(self):
        self.ws()
        if self.peek("("):
            self.pos += 1
            self.expression()
            self.expect(")")
            return
        if self.match(r"\d+(\.\d+)?(?![\w:])") is not None:
            return
        start = self.pos
        ident = self.match(r"[a-z_][a-z0-9_]*")
        if ident is None:
            self.error("expected a metric term, a function or a number")
        if self.text.startswith(":", self.pos):
            self.pos = start
            self.metric_term()
            return
        if self.peek("("):
            if ident not in FUNCTIONS:
                self.error(f"unknown function {ident!r}")
            self.function_call(ident)
            return
        self.error(f"unexpected {ident!r}")

    def function_call(self, name: str):
        self.expect("(")
        first_term = len(self.terms)
        args: list = []
        kwargs: dict[str, str] = {}
        if not self.peek(")"):
            while True:
                kw = self.match(r"[a-z_]+\s*=")
                if kw:
                    value = self.match(r"'[^']*'|\"[^\"]*\"|-?\d+(\.\d+)?|[a-z_]+")
                    if value is None:
                        self.error("expected a keyword argument value")
                    kwargs[kw.rstrip("= ")] = value.strip("'\"")
                else:
                    value = self.match(r"'[^']*'|\"[^\"]*\"")
                    if value is not None:
                        args.append(value.strip("'\""))
                    else:
                        before = len(self.terms)
                        save = self.pos
                        self.expression()
                        args.append(self.terms[before:] or self.text[save : self.pos].strip())
                if self.peek(","):
                    self.pos += 1
                    continue
                break
        self.expect(")")
        for term in self.terms[first_term:]:
            term.functions.append(name)
        self.functions.append(FunctionCall(name, args, kwargs))

    def metric_term(self):
        agg = self.match(r"[a-z0-9]+")
        if agg not in SPACE_AGGREGATORS and not re.fullmatch(r"p\d{1,2}(\.\d+)?", agg or ""):
            self.error(f"unknown space aggregator {agg!r}")
        self.expect(":")
        metric = self.match(METRIC_RE)
        if metric is None:
            self.error("expected a metric name")
        if not self.text.startswith("{", self.pos):
            self.error("expected '{' right after the metric name")
        self.pos += 1
        end = self.text.find("}", self.pos)
        if end < 0:
            self.error("unterminated tag filter")
        filters = self.parse_filters(self.text[self.pos : end])
        self.pos = end + 1
        by: list[str] = []
        if self.match(r"by\s*\{") is not None:
            end = self.text.find("}", self.pos)
            if end < 0:
                self.error("unterminated group by")
            by = [t.strip() for t in self.text[self.pos : end].split(",")]
            if not all(TAG_KEY_RE.match(t) for t in by):
                self.error(f"bad group-by tag in {by}")
            self.pos = end + 1
        methods = []
        while self.text.startswith(".", self.pos):
            self.pos += 1
            name = self.match(r"[a-z_]+")
            if name not in TERM_METHODS:
                self.error(f"unknown method .{name}")
            if not self.text.startswith("(", self.pos):
                self.error(f"expected '(' after .{name}")
            end = self.text.find(")", self.pos)
            if end < 0:
                self.error("unterminated method call")
            arg = self.text[self.pos + 1 : end].strip()
            if not TERM_METHODS[name].match(arg):
                self.error(f"bad argument {arg!r} to .{name}()")
            methods.append((name, arg))
            self.pos = end + 1
        self.terms.append(MetricTerm(agg, metric, filters, by, methods))

    def parse_filters(self, text: str) -> list[str]:
        text = text.strip()
        if text == "*":
            return []
        items = [t.strip() for t in re.split(r",| AND ", text)]
        for item in items:
            bare = item[1:] if item.startswith(("!", "-")) else item
            if TEMPLATE_VAR_RE.match(bare):
                continue
            key, sep, value = bare.partition(":")
            if not TAG_KEY_RE.match(key):
                self.error(f"bad tag key in filter {item!r}")
            if sep and not (TAG_VALUE_RE.match(value) or TEMPLATE_VAR_RE.match(value)):
                self.error(f"tag value {value!r} is not in Datadog's normalized form")
        return items


def parse_expression(text: str) -> MetricQuery:
    """A dashboard-style query: an expression of metric terms, functions and numbers."""
    parser = _Parser(text)
    parser.expression()
    if not parser.at_end():
        parser.error("trailing text")
    if not parser.terms:
        parser.error("no metric term")
    return MetricQuery(parser.terms, parser.functions)


MONITOR_HEAD = re.compile(r"^(?P<agg>[a-z]+)\((?P<tf>last_\d+[mhdw])\):")


def parse_monitor_query(text: str) -> MetricQuery:
    """A metric monitor query: `<time agg>(<timeframe>):<expression> <comparator> <number>`."""
    head = MONITOR_HEAD.match(text)
    if not head:
        raise QueryParseError(f"no '<time aggregator>(last_N):' prefix in {text!r}")
    if head.group("agg") not in TIME_AGGREGATORS:
        raise QueryParseError(f"unknown time aggregator {head.group('agg')!r}")
    _timeframe_minutes(head.group("tf"))
    tail = re.search(r"\s*(>=|<=|>|<)\s*(-?\d+(\.\d+)?)\s*$", text)
    if not tail:
        raise QueryParseError(f"no comparator and threshold at the end of {text!r}")
    parsed = parse_expression(text[head.end() : tail.start()])
    parsed.time_agg = head.group("agg")
    parsed.timeframe = head.group("tf")
    parsed.comparator = tail.group(1)
    parsed.threshold = float(tail.group(2))
    return parsed


@dataclass
class ServiceCheckQuery:
    check: str
    over: list[str]
    exclude: list[str]
    by: list[str]
    last: int


_QUOTED_LIST = r'"[^"]*"(?:\s*,\s*"[^"]*")*'
SERVICE_CHECK_RE = re.compile(
    rf'^"(?P<check>[a-z][a-z0-9_.]*)"\.over\((?P<over>{_QUOTED_LIST})\)'
    rf"(?:\.exclude\((?P<exclude>{_QUOTED_LIST})\))?"
    rf"\.by\((?P<by>{_QUOTED_LIST})\)\.last\((?P<last>\d+)\)\.count_by_status\(\)$"
)


def parse_service_check_query(text: str) -> ServiceCheckQuery:
    match = SERVICE_CHECK_RE.match(text)
    if not match:
        raise QueryParseError(f"not a service check monitor query: {text!r}")

    def items(group):
        return re.findall(r'"([^"]*)"', match.group(group) or "")

    return ServiceCheckQuery(match["check"], items("over"), items("exclude"), items("by"), int(match["last"]))


# --------------------------------------------------------------------------------------------
# Data


def load_metadata() -> dict[str, str]:
    with METADATA.open(newline="") as f:
        return {row["metric_name"]: row["metric_type"] for row in csv.DictReader(f)}


def load_json(path: Path):
    with path.open() as f:
        return json.load(f)


MONITOR_FILES = sorted(MONITORS_DIR.glob("*.json"))
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json")) if DASHBOARDS_DIR.is_dir() else []
NO_DASHBOARDS = pytest.mark.skipif(
    not DASHBOARD_FILES, reason="no dashboard in assets/dashboards/ yet (being written concurrently)"
)


def dashboard_params():
    return [pytest.param(p, id=p.name) for p in DASHBOARD_FILES] or [pytest.param(None, id="none")]


def monitor_params():
    return [pytest.param(p, id=p.name) for p in MONITOR_FILES]


def parse_monitor(monitor: dict):
    definition = monitor["definition"]
    if definition["type"] == "service check":
        return parse_service_check_query(definition["query"])
    return parse_monitor_query(definition["query"])


def check_term_types(term: MetricTerm, metadata: dict[str, str], *, in_monitor: bool, time_agg=None) -> list[str]:
    """Why a term uses its metric with an incompatible type; empty when it is fine."""
    problems = []
    mtype = metadata.get(term.metric)
    if mtype is None:
        return [f"{term.metric} is not in metadata.csv"]
    counted = term.has_method("as_count", "as_rate")
    if mtype == "count":
        if term.space_agg in ("avg", "min", "max") and not counted:
            problems.append(f"count {term.metric} aggregated with {term.space_agg} as if it were a gauge")
        if in_monitor and not counted:
            problems.append(f"count {term.metric} compared without .as_count()/.as_rate()")
        if in_monitor and term.has_method("as_count") and time_agg not in (None, "sum"):
            problems.append(f"{term.metric}.as_count() evaluated with {time_agg}(): use sum()")
    elif mtype == "gauge":
        if counted:
            problems.append(f"gauge {term.metric} used with .as_count()/.as_rate()")
    else:
        problems.append(f"{term.metric} has unexpected type {mtype!r} in metadata.csv")
    return problems


# --------------------------------------------------------------------------------------------
# Parser tests


GOOD_QUERIES = [
    "max(last_5m):max:cilium.bpf.map_pressure{*} by {host,map_name} > 0.9",
    "sum(last_5m):sum:cilium.drop_count.count{reason:ct:_map_insertion_failed} by {host}.as_count() > 0",
    "max(last_5m):sum:a.b{x:y} by {h} / ( sum:a.b{*} by {h} + sum:a.c{!x:z} by {h} ) >= 1",
    (
        "avg(last_4h):anomalies(avg:cilium.unreachable.nodes{*} by {kube_cluster_name}, 'agile', 2, "
        "direction='above', interval=60, alert_window='last_15m') >= 1"
    ),
    "min(last_15m):sum:a.b.count{*} by {host}.as_rate().rollup(sum, 60) < -1.5",
]
BAD_QUERIES = [
    "max(last_5m):max:cilium.bpf.map_pressure{*} by {host > 0.9",  # unterminated group by
    "max(last_5m):max:cilium.bpf.map_pressure{* by {host} > 0.9",  # filter never closed before '>'
    "max(last_5m):mean:cilium.bpf.map_pressure{*} > 0.9",  # unknown space aggregator
    "median(last_5m):max:cilium.bpf.map_pressure{*} > 0.9",  # unknown time aggregator
    "max(last_5m):max:cilium.bpf.map_pressure{*} by {host}",  # no comparator
    "max(5m):max:cilium.bpf.map_pressure{*} > 0.9",  # bad timeframe
    "sum(last_5m):sum:cilium.drop_count.count{*}.as_count > 0",  # method without parentheses
    "sum(last_5m):sum:cilium.drop_count.count{*}.as_counts() > 0",  # unknown method
    "sum(last_5m):sum:cilium.drop_count.count{reason:CT: Map insertion failed}.as_count() > 0",
    "max(last_5m):max:cilium.bpf.map_pressure{*} by {host} > 0.9 extra",
    "max(last_5m):max:{*} > 0.9",  # no metric
    "max(last_5m):bogus(max:a.b{*}) > 1",  # unknown function
    "max(last_5m):(max:a.b{*} > 1",  # unbalanced parenthesis
]


@pytest.mark.parametrize("query", GOOD_QUERIES)
def test_parser_accepts_valid_queries(query):
    parsed = parse_monitor_query(query)
    assert parsed.terms and parsed.comparator and parsed.threshold is not None


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_parser_rejects_broken_queries(query):
    with pytest.raises(QueryParseError):
        parse_monitor_query(query)


def test_parser_extracts_terms_and_functions():
    parsed = parse_monitor_query(GOOD_QUERIES[2])
    assert [t.metric for t in parsed.terms] == ["a.b", "a.b", "a.c"]
    assert parsed.terms[2].filters == ["!x:z"] and parsed.group_by == {"h"}
    parsed = parse_monitor_query(GOOD_QUERIES[3])
    assert parsed.terms[0].functions == ["anomalies"]
    (call,) = parsed.functions
    assert call.args[1:] == ["agile", "2"] and call.kwargs["alert_window"] == "last_15m"
    parsed = parse_monitor_query(GOOD_QUERIES[4])
    assert parsed.terms[0].methods == [("as_rate", ""), ("rollup", "sum, 60")]
    assert parsed.comparator == "<" and parsed.threshold == -1.5 and parsed.window_minutes == 15


def test_service_check_parser():
    q = parse_service_check_query(
        '"cilium.openmetrics.health".over("*").by("host","endpoint").last(2).count_by_status()'
    )
    assert (q.check, q.over, q.by, q.last) == ("cilium.openmetrics.health", ["*"], ["host", "endpoint"], 2)
    for bad in (
        '"cilium.openmetrics.health".over("*").by("host").count_by_status()',
        'cilium.openmetrics.health.over("*").by("host").last(2).count_by_status()',
        '"cilium.openmetrics.health".over("*").by("host").last(2)',
    ):
        with pytest.raises(QueryParseError):
            parse_service_check_query(bad)


def test_type_rules_catch_misuse():
    metadata = {"x.count": "count", "x.gauge": "gauge"}
    q = parse_expression("avg:x.count{*}")
    assert check_term_types(q.terms[0], metadata, in_monitor=False)
    q = parse_expression("avg:x.count{*}.as_count()")
    assert not check_term_types(q.terms[0], metadata, in_monitor=False)
    q = parse_expression("sum:x.gauge{*}.as_count()")
    assert check_term_types(q.terms[0], metadata, in_monitor=False)
    q = parse_monitor_query("max(last_5m):sum:x.count{*} > 0")
    assert check_term_types(q.terms[0], metadata, in_monitor=True, time_agg=q.time_agg)
    q = parse_monitor_query("avg(last_5m):sum:x.count{*}.as_count() > 0")
    assert check_term_types(q.terms[0], metadata, in_monitor=True, time_agg=q.time_agg)
    q = parse_expression("sum:x.missing{*}")
    assert check_term_types(q.terms[0], metadata, in_monitor=False)


def test_tag_normalization():
    assert normalize_tag_value("CT: Map insertion failed") == "ct:_map_insertion_failed"
    assert normalize_tag_value("No mapping for NAT masquerade") == "no_mapping_for_nat_masquerade"
    assert normalize_tag_value("/v1/endpoint/{id}") == "/v1/endpoint/_id"


# --------------------------------------------------------------------------------------------
# Monitors


MONITOR_KEYS = {
    "version": int,
    "created_at": str,
    "last_updated_at": str,
    "title": str,
    "description": str,
    "definition": dict,
    "tags": list,
}
DEFINITION_KEYS = {"name": str, "type": str, "query": str, "message": str, "tags": list, "options": dict}
MONITOR_TYPES = {"query alert", "service check", "event-v2 alert"}


def test_monitors_exist():
    assert len(MONITOR_FILES) >= 15, "expected the recommended monitors in assets/monitors/"


def test_monitor_titles_unique():
    titles = [load_json(p)["title"] for p in MONITOR_FILES]
    names = [load_json(p)["definition"]["name"] for p in MONITOR_FILES]
    assert len(set(titles)) == len(titles) and len(set(names)) == len(names)


@pytest.mark.parametrize("path", monitor_params())
def test_monitor_shape(path):
    monitor = load_json(path)
    for key, kind in MONITOR_KEYS.items():
        assert isinstance(monitor.get(key), kind), f"{key} missing or not {kind.__name__}"
    assert monitor["version"] == 2
    for key in ("created_at", "last_updated_at"):
        date.fromisoformat(monitor[key])
    assert monitor["title"].strip() and "{{" not in monitor["title"]
    assert monitor["description"].strip()
    assert "integration:cilium" in monitor["tags"]
    definition = monitor["definition"]
    for key, kind in DEFINITION_KEYS.items():
        assert isinstance(definition.get(key), kind), f"definition.{key} missing or not {kind.__name__}"
    assert definition["type"] in MONITOR_TYPES
    assert "integration:cilium" in definition["tags"]
    assert definition.get("priority") is None or definition["priority"] in range(1, 6)
    options = definition["options"]
    assert isinstance(options.get("thresholds"), dict) and "critical" in options["thresholds"]
    for name, value in options["thresholds"].items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"threshold {name}"
    assert isinstance(options.get("notify_no_data"), bool)
    ndt = options.get("no_data_timeframe", None)
    if options["notify_no_data"]:
        assert isinstance(ndt, int) and ndt > 0
    else:
        assert ndt is None or isinstance(ndt, int)
    for key in ("require_full_window", "include_tags"):
        assert isinstance(options.get(key), bool)
    assert isinstance(options.get("new_group_delay"), int)


@pytest.mark.parametrize("path", monitor_params())
def test_monitor_query_parses(path):
    parse_monitor(load_json(path))


@pytest.mark.parametrize("path", monitor_params())
def test_monitor_metrics_exist_with_compatible_types(path):
    monitor = load_json(path)
    if monitor["definition"]["type"] != "query alert":
        pytest.skip("not a metric monitor")
    metadata = load_metadata()
    parsed = parse_monitor_query(monitor["definition"]["query"])
    problems = [
        p for t in parsed.terms for p in check_term_types(t, metadata, in_monitor=True, time_agg=parsed.time_agg)
    ]
    assert not problems


@pytest.mark.parametrize("path", monitor_params())
def test_monitor_thresholds_match_query(path):
    monitor = load_json(path)
    definition = monitor["definition"]
    thresholds = definition["options"]["thresholds"]
    if definition["type"] == "service check":
        query = parse_service_check_query(definition["query"])
        assert set(thresholds) <= {"ok", "warning", "critical", "unknown"}
        assert all(isinstance(v, int) and v >= 1 for v in thresholds.values())
        assert query.last >= max(thresholds.values())
        return
    parsed = parse_monitor_query(definition["query"])
    critical = thresholds["critical"]
    assert critical == parsed.threshold, "options.thresholds.critical must equal the query's threshold"
    above = parsed.comparator in (">", ">=")

    def beyond(a, b):  # a is further into alerting territory than b
        return a > b if above else a < b

    if "warning" in thresholds:
        assert beyond(critical, thresholds["warning"]), "critical must be beyond warning"
    if "critical_recovery" in thresholds:
        assert beyond(critical, thresholds["critical_recovery"])
    if "warning_recovery" in thresholds:
        assert "warning" in thresholds and beyond(thresholds["warning"], thresholds["warning_recovery"])


@pytest.mark.parametrize("path", monitor_params())
def test_monitor_message(path):
    monitor = load_json(path)
    definition = monitor["definition"]
    message = definition["message"]
    assert "{{#is_alert}}" in message
    for block in ("is_alert", "is_warning", "is_recovery", "is_no_data"):
        assert message.count(f"{{{{#{block}}}}}") == message.count(f"{{{{/{block}}}}}"), block
    if "warning" in definition["options"]["thresholds"] and definition["type"] == "query alert":
        assert "{{#is_warning}}" in message
    if definition["options"]["notify_no_data"]:
        assert "{{#is_no_data}}" in message
    assert re.search(r"check first", message, re.IGNORECASE), "the message must say what to check first"
    # Template variables must name a group-by tag of the query.
    query = parse_monitor(monitor)
    groups = set(query.by) if isinstance(query, ServiceCheckQuery) else query.group_by
    for text in (message, definition["name"]):
        for var in re.findall(r"\{\{\s*([a-z_]+)\.name\s*\}\}", text):
            assert var in groups, f"{{{{{var}.name}}}} is not a group-by tag of the query"


@pytest.mark.parametrize("path", monitor_params())
def test_monitor_description_cites_a_source(path):
    description = load_json(path)["description"]
    sources = (
        "Grafana",
        "Deckhouse",
        "CFP #27113",
        "Datadog blog",
        "awesome-prometheus-alerts",
        "No threshold",
        "No public threshold",
        "no published threshold",
    )
    assert any(s in description for s in sources), "cite where the threshold comes from"


def test_anomaly_monitors_have_threshold_windows():
    found = 0
    for path in MONITOR_FILES:
        definition = load_json(path)["definition"]
        if "anomalies(" not in definition["query"]:
            continue
        found += 1
        parsed = parse_monitor_query(definition["query"])
        (call,) = [f for f in parsed.functions if f.name == "anomalies"]
        assert call.args[1] in ("basic", "agile", "robust") and float(call.args[2]) > 0
        windows = definition["options"].get("threshold_windows")
        assert windows and set(windows) == {"trigger_window", "recovery_window"}
        assert windows["trigger_window"] == call.kwargs["alert_window"]
        assert parsed.comparator == ">=" and 0 < parsed.threshold <= 1
        assert _timeframe_minutes(windows["trigger_window"]) < parsed.window_minutes
    assert found, "expected an anomaly variant of a monitor"


def test_no_data_monitor_catches_missing_metrics():
    no_data = [load_json(p)["definition"] for p in MONITOR_FILES]
    no_data = [d for d in no_data if d["options"]["notify_no_data"]]
    assert no_data, "expected a 'metrics stopped arriving' monitor"
    metadata = load_metadata()
    for definition in no_data:
        parsed = parse_monitor_query(definition["query"])
        # A no-data monitor watches gauges: a count may legitimately be absent when nothing happens.
        assert all(metadata[t.metric] == "gauge" for t in parsed.terms)
        assert definition["options"]["no_data_timeframe"] >= 2 * parsed.window_minutes


def test_drop_reason_filters_match_cilium_reasons():
    """A drop-reason filter must be a real Cilium reason as Datadog normalizes it."""
    normalized = {normalize_tag_value(r) for r in AGENT_DROP_REASONS}
    seen = 0
    for path in MONITOR_FILES:
        definition = load_json(path)["definition"]
        if definition["type"] != "query alert":
            continue
        for term in parse_monitor_query(definition["query"]).terms:
            if term.metric != "cilium.drop_count.count":
                continue
            for item in term.filters:
                key, _, value = item.lstrip("!").partition(":")
                if key == "reason":
                    seen += 1
                    assert value in normalized, f"{value!r} is not a normalized Cilium drop reason"
    assert seen >= 2


def test_service_checks_used_by_monitors_are_declared():
    declared = {sc["check"] for sc in load_json(SERVICE_CHECKS)}
    used = set()
    for path in MONITOR_FILES:
        definition = load_json(path)["definition"]
        if definition["type"] == "service check":
            used.add(parse_service_check_query(definition["query"]).check)
    for widget in (w for p in DASHBOARD_FILES for w in iter_widgets(load_json(p).get("widgets", []))):
        if widget.get("definition", {}).get("type") == "check_status":
            used.add(widget["definition"]["check"])
    assert used, "expected a service check monitor"
    assert used <= declared, f"undeclared service checks: {sorted(used - declared)}"


def test_service_check_monitors_group_by_declared_groups():
    groups = {sc["check"]: set(sc.get("groups", [])) for sc in load_json(SERVICE_CHECKS)}
    for path in MONITOR_FILES:
        definition = load_json(path)["definition"]
        if definition["type"] == "service check":
            query = parse_service_check_query(definition["query"])
            assert set(query.by) <= groups[query.check] | {"host"}, path.name


# --------------------------------------------------------------------------------------------
# Dashboards

WIDGET_TYPES = {
    "alert_graph",
    "alert_value",
    "bar_chart",
    "change",
    "check_status",
    "distribution",
    "event_stream",
    "event_timeline",
    "free_text",
    "funnel",
    "geomap",
    "group",
    "heatmap",
    "hostmap",
    "iframe",
    "image",
    "list_stream",
    "log_stream",
    "manage_status",
    "note",
    "powerpack",
    "query_table",
    "query_value",
    "run_workflow",
    "scatterplot",
    "servicemap",
    "slo",
    "slo_list",
    "split_group",
    "sunburst",
    "timeseries",
    "toplist",
    "topology_map",
    "trace_service",
    "treemap",
}


def iter_widgets(widgets):
    for widget in widgets:
        yield widget
        definition = widget.get("definition", {})
        yield from iter_widgets(definition.get("widgets", []))
        if isinstance(definition.get("source_widget_definition"), dict):  # split_group
            yield from iter_widgets([{"definition": definition["source_widget_definition"]}])


def dashboard_metric_queries(dashboard) -> list[str]:
    """Every metric query string of a dashboard (legacy `q` and formula-style `queries`)."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("q"), str):
                found.append(node["q"])
            for query in node.get("queries", []) if isinstance(node.get("queries"), list) else []:
                if isinstance(query, dict) and query.get("data_source", "metrics") == "metrics" and "query" in query:
                    found.append(query["query"])
            for key, value in node.items():
                if key not in ("q", "queries"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard.get("widgets", []))
    return found


@NO_DASHBOARDS
@pytest.mark.parametrize("path", dashboard_params())
def test_dashboard_shape(path):
    dashboard = load_json(path)
    assert isinstance(dashboard.get("title"), str) and dashboard["title"].strip()
    assert dashboard.get("layout_type") in ("ordered", "free")
    assert isinstance(dashboard.get("widgets"), list) and dashboard["widgets"]
    for widget in iter_widgets(dashboard["widgets"]):
        definition = widget.get("definition")
        assert isinstance(definition, dict), f"widget without definition: {widget}"
        assert definition.get("type") in WIDGET_TYPES, f"unknown widget type {definition.get('type')!r}"
        if dashboard["layout_type"] == "free":
            assert isinstance(widget.get("layout"), dict)
    variables = dashboard.get("template_variables", [])
    assert isinstance(variables, list)
    for var in variables:
        assert isinstance(var.get("name"), str) and var["name"]
        assert "prefix" in var and (var["prefix"] is None or isinstance(var["prefix"], str))


@NO_DASHBOARDS
@pytest.mark.parametrize("path", dashboard_params())
def test_dashboard_queries_parse_and_metrics_match_metadata(path):
    dashboard = load_json(path)
    metadata = load_metadata()
    variables = {v["name"] for v in dashboard.get("template_variables", [])}
    problems = []
    for text in dashboard_metric_queries(dashboard):
        try:
            parsed = parse_expression(text)
        except QueryParseError as e:
            problems.append(str(e))
            continue
        for term in parsed.terms:
            problems += [f"{text}: {p}" for p in check_term_types(term, metadata, in_monitor=False)]
            for item in term.filters:
                for var in re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", item):
                    if var not in variables:
                        problems.append(f"{text}: unknown template variable ${var}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Manifest


def test_manifest_declares_every_asset():
    assets = load_json(MANIFEST)["assets"]
    problems = []
    for kind, directory in (("dashboards", DASHBOARDS_DIR), ("monitors", MONITORS_DIR)):
        declared = assets.get(kind) or {}
        declared_paths = set(declared.values())
        for name, rel in declared.items():
            if not (ROOT / rel).is_file():
                problems.append(f"assets.{kind}[{name!r}] -> {rel} does not exist")
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            if rel not in declared_paths:
                problems.append(f"{rel} is not declared in manifest.json assets.{kind}")
        if kind == "monitors":
            titles = {load_json(f)["title"]: f.relative_to(ROOT).as_posix() for f in files}
            for name, rel in declared.items():
                if rel in titles.values() and titles.get(name) != rel:
                    problems.append(f"assets.monitors key {name!r} should be the title of {rel}")
    assert not problems, "\n".join(problems)
