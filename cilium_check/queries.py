"""Datadog metric queries evaluated over what the check submitted in two runs.

The shipped dashboards and monitors are written in Datadog's query language; the dashboard preview
and `cilium-check doctor` evaluate them here, on the series the Agent would have sent, without a
Datadog account. The subset:

* a term: `sum|avg|min|max:<metric>{<filters>} [by {<tags>}][.as_count()|.as_rate()]`; filters
  `key:value` (trailing `*` wildcards, `!key:value`), template variables (`$cluster`) match
  everything; tag values are compared as Datadog stores them (lowercase, other characters `_`);
  `by {host}` groups by the series' host;
* a count point is the delta between the two runs; `.as_rate()` divides it by the time between the
  runs; a gauge is its last value; `diff(<term>)` is the change of the term's value (aggregated per
  group, as Datadog aggregates before it differentiates) between the runs;
* `+ - * /` and parentheses between terms and numbers, joined per group (a term without `by`
  applies to every group);
* a monitor query `<time agg>(last_<N><m|h>):<expression> <comparator> <threshold>`, judged on the
  one interval between the runs: under `sum(last_Nm)` a count is what that interval saw, a lower
  bound of the window's (one error in 15 s is not taken for 20 in five minutes); `anomalies()`
  and other history-bound functions cannot be judged from two runs (`NeedsHistory`).

A term whose metric was not submitted, or whose filters match nothing, has no data (None).
"""

from __future__ import annotations

import ast
import fnmatch
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

TERM = re.compile(
    r"(?P<agg>sum|avg|min|max):(?P<metric>[A-Za-z0-9_.]+)\{(?P<filters>[^}]*)\}"
    r"(?:\s*by\s*\{(?P<by>[^}]*)\})?(?P<mod>\.as_count\(\)|\.as_rate\(\))?"
)
QUERY_RE = re.compile(r"^\s*" + TERM.pattern + r"\s*$")
MONITOR_RE = re.compile(
    r"^\s*(?P<time_agg>sum|avg|min|max)\(last_(?P<n>\d+)(?P<unit>[mhd])\):(?P<expr>.+?)\s*"
    r"(?P<cmp>>=|<=|>|<)\s*(?P<threshold>-?[0-9.]+(?:e-?\d+)?)\s*$"
)
AGGREGATORS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "avg": lambda values: sum(values) / len(values),
    "min": min,
    "max": max,
}
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
COUNT_TYPES = ("count", "rate", "monotonic_count")

Group = tuple[str, ...]  # `tag:value` of each `by` tag, in the query's order
Values = dict[Group, float]


class QueryError(ValueError):
    """A query outside the subset this evaluator understands."""


class NeedsHistory(QueryError):
    """A query that needs more than two runs of data (`anomalies()`, `forecast()`, ...)."""


def normalize(tag: str, *, keep: str = "") -> str:
    """A tag value as Datadog stores it: lowercase; characters other than letters, digits and
    `_ - : . /` (and those in `keep`) become `_`, runs of `_` collapse and trailing ones are dropped."""
    value = re.sub(rf"[^a-z0-9_\-:./{re.escape(keep)}]", "_", tag.strip().lower())
    return re.sub(r"_+", "_", value).rstrip("_")


@dataclass(frozen=True)
class MonitorQuery:
    """A metric monitor's query, split into what is aggregated, over how long, and the threshold."""

    time_agg: str
    expression: str
    comparator: str
    threshold: float

    def crosses(self, value: float, threshold: float | None = None) -> bool:
        return COMPARATORS[self.comparator](value, self.threshold if threshold is None else threshold)


def parse_monitor_query(text: str) -> MonitorQuery:
    m = MONITOR_RE.match(text)
    if not m:
        raise QueryError(f"not a metric monitor query: {text}")
    return MonitorQuery(
        m["time_agg"], m["expr"], m["cmp"], float(m["threshold"])
    )


class Evaluator:
    """Datadog metric queries over one run's series (and the run before it, for `diff()`)."""

    def __init__(
        self, series: Iterable[dict[str, Any]], interval: float, previous: Iterable[dict[str, Any]] = ()
    ) -> None:
        self.interval = interval
        self.by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in series:
            self.by_metric[s["metric"]].append(s)
        self.before: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in previous:
            self.before[s["metric"]].append(s)

    @staticmethod
    def _tags(series: dict[str, Any]) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = defaultdict(list)
        for tag in series["tags"]:
            key, _, value = tag.partition(":")
            tags[key].append(value)
        if series.get("host"):
            tags["host"].append(series["host"])
        return tags

    @staticmethod
    def _matches(tags: dict[str, list[str]], filters: list[str]) -> bool:
        for f in filters:
            if not f or f == "*" or f.startswith("$"):
                continue  # template variables resolve to `*`
            negate = f.startswith("!")
            key, _, pattern = f.lstrip("!").partition(":")
            pattern = normalize(pattern, keep="*")  # a filter's `*` is a wildcard, not a character
            found = any(fnmatch.fnmatchcase(normalize(v), pattern) for v in tags.get(key, []))
            if found == negate:
                return False
        return True

    def query(self, text: str, *, diff: bool = False) -> Values | None:
        """Values per group of one term, or None (no data). `diff` gives each group's change since
        the run before (groups the run before lacks have no value)."""
        m = QUERY_RE.match(text)
        if not m:
            raise QueryError(f"unsupported query: {text}")
        now = self._groups(self.by_metric.get(m["metric"], []), m)
        if not diff or now is None:
            return now
        before = self._groups(self.before.get(m["metric"], []), m) or {}
        changed = {key: value - before[key] for key, value in now.items() if key in before}
        return changed or None

    def _groups(self, series: list[dict[str, Any]], m: re.Match[str]) -> Values | None:
        filters = [f.strip() for f in m["filters"].split(",")]
        by = [b.strip() for b in (m["by"] or "").split(",") if b.strip()]
        groups: dict[Group, list[float]] = defaultdict(list)
        for s in series:
            tags = self._tags(s)
            if not self._matches(tags, filters):
                continue
            value = s["points"][-1][1]
            if m["mod"] == ".as_rate()" and s.get("type") in COUNT_TYPES:
                value = value / self.interval
            key = tuple(f"{b}:{(tags.get(b) or ['N/A'])[0]}" for b in by)
            groups[key].append(value)
        if not groups:
            return None
        return {key: AGGREGATORS[m["agg"]](values) for key, values in groups.items()}

    def formula(self, formula: str, named: dict[str, Values | None]) -> Values | None:
        """A formula of named queries, joined per group; ungrouped queries apply to every group."""
        tree = ast.parse(formula, mode="eval").body
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in FUNCTIONS}
        for name in used:
            if name not in named:
                raise QueryError(f"formula {formula!r} names an unknown query {name!r}")
            if named[name] is None:
                return None
        keys: set[Group] = set()
        for name in used:
            keys.update(k for k in named[name] if k)  # type: ignore[union-attr]
        keys = keys or {()}
        out: Values = {}
        for key in keys:
            values = {}
            for name in used:
                data = named[name] or {}
                value = data.get(key, data.get(()))
                if value is None:
                    break
                values[name] = value
            else:
                result = _eval(tree, values)
                if result is not None:
                    out[key] = result
        return out or None

    def request(self, request: dict[str, Any]) -> list[tuple[str, Values | None]]:
        """Each formula of a dashboard widget request: (alias or formula, values per group or None)."""
        named = {q["name"]: self.query(q["query"]) for q in request.get("queries", [])}
        formulas = request.get("formulas") or [{"formula": q} for q in named]
        return [(f.get("alias") or f["formula"], self.formula(f["formula"], named)) for f in formulas]

    def expression(self, text: str) -> Values | None:
        """An expression of terms, numbers and `diff()` as a monitor writes it, per group."""
        terms: dict[str, str] = {}

        def name_term(m: re.Match[str]) -> str:
            name = f"q{len(terms)}"
            terms[name] = m.group(0)
            return name

        formula = TERM.sub(name_term, text)
        for call in re.findall(r"([a-z_]+)\(", formula):
            if call in HISTORY_FUNCTIONS:
                raise NeedsHistory(f"`{call}()` needs more history than two runs")
            if call not in FUNCTIONS:
                raise QueryError(f"unsupported function `{call}()` in {text}")
        diffed = set(re.findall(r"diff\(\s*(q\d+)\s*\)", formula))
        named = {name: self.query(term, diff=name in diffed) for name, term in terms.items()}
        return self.formula(re.sub(r"diff\(\s*(q\d+)\s*\)", r"\1", formula), named)

    def monitor(self, query: MonitorQuery) -> Values | None:
        """A monitor query's value per group, on the interval between the two runs."""
        return self.expression(query.expression)


FUNCTIONS = {"diff"}
HISTORY_FUNCTIONS = {"anomalies", "forecast", "outliers", "timeshift", "week_before", "day_before", "hour_before"}


def _eval(node: ast.AST, values: dict[str, float]) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _eval(node.operand, values)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = _eval(node.left, values), _eval(node.right, values)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div) and right == 0:
            return None
        return OPERATORS[type(node.op)](left, right)
    raise QueryError(f"unsupported formula element: {ast.dump(node)}")
