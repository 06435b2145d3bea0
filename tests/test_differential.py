"""Differential test: the fast scrape path (`fast_path: true`) submits exactly what stock
OpenMetrics V2 scraping (`fast_path: false`) submits, with the same mapping and options.

Each variant runs one instance twice through `CiliumCheck` (so counters are flushed on the
second run) against the same payloads, and the submissions the stub aggregator and stub Agent
record are compared: metrics (in submission order per name), histogram buckets, service checks,
metadata, run errors and warnings.

- `test_fixture_payloads`: the fixture server's own payload of each component and release.
- `test_generated_payloads`: 5 components x 200 seeds of `exposition_gen` payloads (a second,
  evolved payload for the second run), each with randomly varied instance options.
- `test_generated_payloads_hypothesis`: the same check driven by hypothesis.
- `test_harness_*`: the harness itself, stock against stock, so it is trusted before the fast
  path exists and keeps being checked after.

Environment knobs: CILIUM_DIFF_SEEDS (seeds per component, default 200), CILIUM_DIFF_SEED_OFFSET
(to explore other seeds). A failure names the seed, the options and the first differing
submissions, and writes both payloads to a temporary directory.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from datadog_checks.base.errors import ConfigurationError
from datadog_checks.base.stubs import aggregator as stub_aggregator
from datadog_checks.base.stubs import datadog_agent as stub_agent
from datadog_checks.base.utils.tagging import GENERIC_TAGS
from exposition_gen import COMPONENTS, Exposition, generate, next_scrape, seeds
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from datadog_checks.cilium import CiliumCheck
from cilium_check.components import BY_NAME, HUBBLE
from cilium_dev.fixtures.payloads import FIXTURE_CASES
from cilium_check.mapping import format_version, parse_version

CHECK_ID = "cilium:differential"
# 1,000 generated payloads in all, spread over the components (CILIUM_DIFF_SEEDS: per component).
GENERATED_PAYLOADS = 1000
SEEDS_PER_COMPONENT = int(os.environ.get("CILIUM_DIFF_SEEDS", str(-(-GENERATED_PAYLOADS // len(COMPONENTS)))))
SEED_OFFSET = int(os.environ.get("CILIUM_DIFF_SEED_OFFSET", "0"))
BATCHES = 4
MAX_DIFF_LINES = 24


def _fast_path_status() -> str:
    """`available`, `rejected` (ConfigurationError) or `ignored` (accepted as an unknown option)."""
    try:
        check = CiliumCheck("cilium", {}, [{"agent_endpoint": "http://127.0.0.1:1/metrics", "fast_path": True}])
    except ConfigurationError:
        return "rejected"
    if any("fast_path" in warning for warning in check.warnings):
        return "ignored"
    return "available"


FAST_PATH = _fast_path_status()
# The instance options of each variant. Before the fast path lands, `fast_path` is rejected
# (the tests xfail) or ignored (both variants are the stock path, and the tests still pass).
STOCK = {"fast_path": False}
FAST = {"fast_path": True}
# What the harness self-tests compare with itself: the stock path, however the option fares.
STOCK_ONLY = STOCK if FAST_PATH == "available" else {}

needs_fast_path = pytest.mark.xfail(
    FAST_PATH != "available", reason="fast path not available yet", raises=ConfigurationError, strict=False
)


# --------------------------------------------------------------------------------------------
# the harness


def _value(value) -> str:
    return repr(value)  # NaN prints as `nan`; -0.0 and 0.0 stay apart: identical means identical


def _error_message(error: str) -> str:
    if not error:
        return ""
    try:
        return " | ".join(item.get("message", "") for item in json.loads(error))
    except ValueError:
        return error


def submissions(instance: dict, prepare: Callable[[int], None] | None = None, runs: int = 2) -> list[str]:
    """Run `instance` through a fresh CiliumCheck `runs` times and return what it submitted, one
    printable, comparable record per line: metrics in submission order per name, histogram
    buckets, service checks, metadata (in call order), and each run's error and warnings.

    `prepare(run)` is called before each run (to serve that run's payload).
    """
    stub_aggregator.reset()
    stub_agent.reset()
    metadata_calls: list[tuple] = []
    set_check_metadata = stub_agent.set_check_metadata

    def record_metadata(check_id, name, value):
        metadata_calls.append((check_id, name, value))
        set_check_metadata(check_id, name, value)

    stub_agent.set_check_metadata = record_metadata
    records: list[str] = []
    try:
        check = CiliumCheck("cilium", {}, [instance])
        check.check_id = CHECK_ID
        try:
            for run in range(runs):
                if prepare is not None:
                    prepare(run)
                error = check.run()
                records.append(repr(("run", run, _error_message(error), tuple(check.get_warnings()))))
        finally:
            check.cancel()
    finally:
        del stub_agent.set_check_metadata  # the class's method again

    for name in sorted(stub_aggregator._metrics):
        for i, m in enumerate(stub_aggregator._metrics[name]):
            records.append(
                repr(
                    (
                        "metric",
                        name,
                        i,
                        m.type,
                        _value(m.value),
                        tuple(m.tags),
                        m.hostname,
                        m.device,
                        m.flush_first_value,
                    )
                )
            )
    for name in sorted(stub_aggregator._histogram_buckets):
        for i, b in enumerate(stub_aggregator._histogram_buckets[name]):
            records.append(
                repr(
                    (
                        "bucket",
                        name,
                        i,
                        _value(b.value),
                        _value(b.lower_bound),
                        _value(b.upper_bound),
                        b.monotonic,
                        b.hostname,
                        tuple(b.tags),
                        b.flush_first_value,
                        b.multiple_buckets,
                    )
                )
            )
    for name in sorted(stub_aggregator._service_checks):
        for i, s in enumerate(stub_aggregator._service_checks[name]):
            records.append(repr(("service_check", name, i, s.check_id, s.status, tuple(s.tags), s.hostname, s.message)))
    for i, call in enumerate(metadata_calls):
        records.append(repr(("metadata", i, *call)))
    final = sorted((name, value) for (check_id, name), value in stub_agent._metadata.items() if check_id == CHECK_ID)
    records.append(repr(("metadata_final", tuple(final))))
    stub_aggregator.reset()
    stub_agent.reset()
    return records


def run_errors(records: list[str]) -> list[str]:
    """The error messages of the runs in `records`."""
    runs = [ast.literal_eval(r) for r in records if r.startswith("('run',")]
    return [message for _, _, message, _ in runs if message]


def diff(expected: list[str], actual: list[str], labels=("stock", "fast")) -> str | None:
    """None when identical, else the first differing records: each differing pair one above the
    other (`-` from `expected`, `+` from `actual`), with a record of context before."""
    if expected == actual:
        return None
    out = [f"{len(expected)} records ({labels[0]}: -) vs {len(actual)} ({labels[1]}: +); first differences:"]
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i1 > 0:
            out.append(f"  {expected[i1 - 1]}")
        old, new = expected[i1:i2], actual[j1:j2]
        for k in range(max(len(old), len(new))):
            if k < len(old):
                out.append(f"- {old[k]}")
            if k < len(new):
                out.append(f"+ {new[k]}")
        if len(out) > MAX_DIFF_LINES:
            break
    if len(out) > MAX_DIFF_LINES:
        out = out[:MAX_DIFF_LINES] + ["..."]
    return "\n".join(out)


def _compare(
    instance_a: dict, instance_b: dict, prepare: Callable[[int], None] | None = None
) -> tuple[str | None, list[str]]:
    """Run two instances against the same payloads; (diff or None, records of the first)."""
    a = submissions(instance_a, prepare)
    b = submissions(instance_b, prepare)
    return diff(a, b, ("a", "b")), a


def _mapped_metrics(records: list[str]) -> int:
    """How many submissions of Cilium families (not the check's own `cilium.check.*`) a run made."""
    return sum(1 for r in records if r.startswith(("('metric'", "('bucket'")) and "'cilium.check." not in r)


def _rewind(server, component: str, version: str, count: int) -> None:
    """Make the fixture route serve its `count`-th scrape next, so each variant sees the same values
    (the route's counters grow with every request, probes included)."""
    with server._lock:
        server._scrapes[(component, format_version(parse_version(version)))] = count


# --------------------------------------------------------------------------------------------
# options


TAG_SETS = (["team:net"], ["team:net", "diff:é 日本 🚀"], ["bare_tag", "k:v:w"], ["team:net", "team:net"])
METRIC_REGEXES = (
    r"_seconds$",
    r"^cilium_(bpf|k8s|kvstore|policy)",
    r"total",
    r"^hubble_(dns|http|flows)",
    r"^(go|process)_",
    r":",
    r"mesh",
)
VALUE_REGEXES = (["^$"], ["é|日本"], ["^[a-f]"], ["\\n"], ["GET", "ok"], [" "], ["^.{200,}$"])
LINE_FILTERS = ("^# HELP", "é", 'le="\\+Inf"', "_sum", "NaN", "日本")


def random_options(component: str, expo: Exposition, rng: random.Random) -> dict:
    """Instance options that change what is submitted, drawn for one payload."""
    labels = sorted(expo.label_names() - {"le", "quantile"}) or ["reason"]
    families = sorted(expo.family_names()) or ["cilium_drop_count"]

    def some(items, most=3):
        return rng.sample(items, rng.randint(1, min(most, len(items))))

    options: dict = {}
    if rng.random() < 0.15:
        options["exclude_labels"] = some(labels)
    if rng.random() < 0.12:
        options["include_labels"] = some(labels) + rng.choice(([], ["upper_bound"], ["quantile", "lower_bound"]))
    if rng.random() < 0.15:
        renames = {label: f"{label}_renamed" for label in some(labels)}
        if rng.random() < 0.3:
            renames[rng.choice(("upper_bound", "quantile"))] = "bound_renamed"
        targets = [label for label in labels if label not in GENERIC_TAGS]  # the stub aggregator rejects those
        if len(targets) >= 2 and rng.random() < 0.2:
            renames[targets[0]] = targets[1]  # two labels become one tag name
        options["rename_labels"] = renames
    if rng.random() < 0.15:
        options["exclude_metrics"] = [rng.choice(families), rng.choice(METRIC_REGEXES)]
    if rng.random() < 0.15:
        options["exclude_metrics_by_labels"] = {
            label: (True if rng.random() < 0.4 else rng.choice(VALUE_REGEXES)) for label in some(labels, 2)
        }
    if rng.random() < 0.3:
        options["tags"] = list(rng.choice(TAG_SETS))
    if rng.random() < 0.15:
        options["tag_by_endpoint"] = False
    histograms = rng.choices(
        (
            {},
            {"collect_histogram_buckets": False},
            {"non_cumulative_histogram_buckets": True},
            {"histogram_buckets_as_distributions": True},
            {"collect_counters_with_distributions": True},
        ),
        (55, 12, 15, 12, 6),
    )[0]
    options.update(histograms)
    if rng.random() < 0.2:
        options["max_contexts"] = rng.choice((5, 5, 1, 12, {component: 5}, {component: 0}))
    if component == "hubble" and rng.random() < 0.4:
        options["hubble_unbounded_labels"] = rng.sample(HUBBLE.unbounded_labels, rng.randint(0, 3))
    if rng.random() < 0.05:
        options["hostname_label"] = rng.choice(labels)
        if rng.random() < 0.5:
            options["hostname_format"] = "<HOSTNAME>-node"
    if "tags" in options and rng.random() < 0.15:
        options["ignore_tags"] = ["^team:"]
    if rng.random() < 0.04:
        options["raw_line_filters"] = [rng.choice(LINE_FILTERS)]
    if rng.random() < 0.04:
        options["enable_health_service_check"] = False
    if rng.random() < 0.02:
        options["telemetry"] = True  # the fast path hands this one to the stock parser
    # A quarter of the cases in legacy mode: the bundled check's V1 names and types.
    options["use_openmetrics"] = rng.random() >= 0.25
    if not options["use_openmetrics"] and rng.random() < 0.2:
        options[rng.choice(("send_monotonic_counter", "send_distribution_counts_as_monotonic"))] = rng.random() < 0.5
    return options


def case(component: str, seed: int) -> tuple[Exposition, Exposition, dict]:
    """The payload of the first run, of the second run, and the options, for one seed."""
    rng = random.Random(seed)
    first = generate(component, rng)
    second = next_scrape(first, rng)
    return first, second, random_options(component, first, rng)


def _seeds(component: str, batch: int) -> range:
    base = SEED_OFFSET + COMPONENTS.index(component) * 100_000
    per_batch = -(-SEEDS_PER_COMPONENT // BATCHES)
    start = batch * per_batch
    return range(base + start, base + min(SEEDS_PER_COMPONENT, start + per_batch))


def _check_seed(server, component: str, seed: int, variants=(STOCK, FAST)) -> tuple[str | None, dict]:
    """Compare two variants on one generated case; (failure report or None, stats)."""
    first, second, options = case(component, seed)
    path = f"/diff/{seed}/metrics"
    url = server.set_payload(path, first.text)
    base = {BY_NAME[component].option: url, **options}

    def prepare(run: int) -> None:
        server.set_payload(path, (first.text, second.text)[run])

    expected = submissions({**base, **variants[0]}, prepare)
    actual = submissions({**base, **variants[1]}, prepare)
    stats = {
        "mapped": _mapped_metrics(expected),
        "stock_errors": run_errors(expected),
    }
    found = diff(expected, actual)
    if found is None:
        return None, stats
    where = Path(tempfile.mkdtemp(prefix=f"cilium-diff-{component}-{seed}-"))
    (where / "run1.prom").write_text(first.text, encoding="utf-8")
    (where / "run2.prom").write_text(second.text, encoding="utf-8")
    (where / "options.json").write_text(json.dumps(options, ensure_ascii=False, indent=2), encoding="utf-8")
    report = (
        f"component {component}, seed {seed}\n"
        f"options: {json.dumps(options, ensure_ascii=False)}\n"
        f"payloads and options written to {where}\n"
        f"reproduce: cd tests && python -c 'from test_differential import case; first, second, options = "
        f"case({component!r}, {seed})'\n"
        f"{found}"
    )
    return report, stats


# --------------------------------------------------------------------------------------------
# the harness, stock against stock


def test_harness_stock_against_itself(fixture_server):
    """The harness sees no difference where there is none: stock against stock, fixture route
    and generated payloads with their options."""
    url = fixture_server.url("agent")
    start = fixture_server.scrapes("agent")

    def rewind(run: int) -> None:
        if run == 0:
            _rewind(fixture_server, "agent", "1.20", start)

    found, records = _compare({"agent_endpoint": url, **STOCK_ONLY}, {"agent_endpoint": url, **STOCK_ONLY}, rewind)
    assert found is None, found
    assert _mapped_metrics(records) > 100
    for component in COMPONENTS:
        for seed in range(900_000, 900_008):
            found, stats = _check_seed(fixture_server, component, seed, (STOCK_ONLY, STOCK_ONLY))
            assert found is None, found
            assert not stats["stock_errors"], (component, seed, stats["stock_errors"])


def test_harness_sees_differences(fixture_server):
    """The harness reports a difference in tags, in values and in metadata."""
    first = generate("agent", random.Random(3))
    url = fixture_server.set_payload("/diff/harness/metrics", first.text)
    found, _ = _compare(
        {"agent_endpoint": url, "tags": ["team:a"], **STOCK_ONLY},
        {"agent_endpoint": url, "tags": ["team:b"], **STOCK_ONLY},
    )
    assert found is not None and "team:a" in found and "team:b" in found

    text = '# TYPE cilium_version gauge\ncilium_version{version="1.20.3"} 1\n# TYPE cilium_drop_count_total counter\n'
    a = fixture_server.set_payload("/diff/harness-a/metrics", text + 'cilium_drop_count_total{reason="x"} 1\n')
    b = fixture_server.set_payload(
        "/diff/harness-b/metrics", text.replace("1.20.3", "1.20.4") + 'cilium_drop_count_total{reason="x"} 2\n'
    )
    records_a = submissions({"agent_endpoint": a, **STOCK_ONLY})
    records_b = submissions({"agent_endpoint": b, **STOCK_ONLY})
    found = diff([r.replace(a, "URL") for r in records_a], [r.replace(b, "URL") for r in records_b])
    assert found is not None and "'1.0'" in found and "'2.0'" in found and "1.20.3" in found and "1.20.4" in found


def test_generator_payloads_are_well_formed_and_reproducible():
    """Payloads parse and read back as built (none dropped), are recognised as their component,
    and a seed always gives the same payloads and options."""
    from cilium_check.detect import identify

    for component in COMPONENTS:
        for seed in range(20):
            first, second, options = case(component, seed)
            assert first.dropped == second.dropped == 0
            assert identify(first.text.split("\n"), COMPONENTS) == component
            if seed < 3:
                again = case(component, seed)
                assert (again[0].text, again[1].text, again[2]) == (first.text, second.text, options)


# --------------------------------------------------------------------------------------------
# fast against stock


@needs_fast_path
@pytest.mark.parametrize("component,version", FIXTURE_CASES)
def test_fixture_payloads(fixture_server, component, version):
    """The fixture server's own payload of every component and release: identical submissions."""
    url = fixture_server.url(component, version)
    start = fixture_server.scrapes(component, version)

    def rewind(run: int) -> None:
        if run == 0:
            _rewind(fixture_server, component, version, start)

    instance = {BY_NAME[component].option: url, "tags": ["team:net"]}
    expected = submissions({**instance, **STOCK}, rewind)
    after_stock = fixture_server.scrapes(component, version)
    actual = submissions({**instance, **FAST}, rewind)
    assert fixture_server.scrapes(component, version) == after_stock, "the fast path made other requests"
    assert _mapped_metrics(expected) > 0
    found = diff(expected, actual)
    assert found is None, f"{component} {version} ({url}):\n{found}"


@needs_fast_path
@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize("component", COMPONENTS)
def test_generated_payloads(fixture_server, component, batch):
    """Generated payloads and options: identical submissions, seed after seed."""
    failures, stats = [], []
    seeds_run = _seeds(component, batch)
    for seed in seeds_run:
        report, seed_stats = _check_seed(fixture_server, component, seed)
        stats.append(seed_stats)
        if report is not None:
            failures.append((seed, report))
    if failures:
        seeds_failed = ", ".join(str(seed) for seed, _ in failures)
        pytest.fail(
            f"{len(failures)} of {len(seeds_run)} {component} seeds differ ({seeds_failed}); the first:\n"
            + failures[0][1],
            pytrace=False,
        )
    stock_errors = [(seed, s["stock_errors"]) for seed, s in zip(seeds_run, stats) if s["stock_errors"]]
    assert not stock_errors, f"the generator made payloads the stock path fails on: {stock_errors[:3]}"
    productive = sum(1 for s in stats if s["mapped"])
    if len(seeds_run) >= 20:  # the comparison is not vacuous: most payloads submit Cilium metrics
        assert productive >= 0.6 * len(seeds_run), f"only {productive} of {len(seeds_run)} seeds submitted metrics"


@needs_fast_path
# Shrinking a seed means nothing (a nearby seed is an unrelated payload): no shrink phase.
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(component=st.sampled_from(COMPONENTS), seed=seeds())
def test_generated_payloads_hypothesis(fixture_server, component, seed):
    report, _ = _check_seed(fixture_server, component, seed)
    assert report is None, report
