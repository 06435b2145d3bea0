"""The check's own transformer types, beside datadog-checks-base's: legacy mode's, and the one of a
family whose type changed between Cilium releases.

Legacy mode is what the bundled check submits when `use_openmetrics` is false, on the V2 pipeline.

The check bundled with the Agent runs datadog-checks-base's OpenMetrics V1 class unless an
instance sets `use_openmetrics: true`. Its submissions differ from V2's by type, not by parsing:

- a counter is a monotonic count under its map name (`drop_count.total`), without V2's `.count`;
- a histogram's `_sum` and `_count` are gauges `.sum` and `.count`; each finite bucket is a gauge
  `.count` tagged `upper_bound:<le as a float>`, and the total `.count` is tagged `upper_bound:none`;
- a summary's quantiles, `_sum` and `_count` are gauges `.quantile`, `.sum`, `.count`;
- bounds and quantiles are written as Python floats (`0.0`, where V2 writes `0`).

Here each of those is a transformer factory of the shape of datadog-checks-base's V2
`transformers/` (`factory(check, name, modifiers, global_options) -> transformer(metric,
sample_data, runtime_data)`), so that everything else (the fast path, the body limits, candidate
URLs, errors, scrubbing) is the same in both modes. V1's own submission options
(`send_monotonic_counter`, `send_monotonic_with_gauge`, `send_distribution_counts_as_monotonic`,
`send_distribution_sums_as_monotonic`) take effect as V1 applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from datadog_checks.base.checks.openmetrics.v2.transform import TRANSFORMERS, MetricTransformer
from datadog_checks.base.config import is_affirmative

# V1's submission options and their defaults.
V1_OPTIONS = {
    "send_monotonic_counter": True,
    "send_monotonic_with_gauge": False,
    "send_distribution_counts_as_monotonic": False,
    "send_distribution_sums_as_monotonic": False,
}
UNBOUNDED = "upper_bound:none"  # the tag V1 gives a histogram's total count


def v1_options(config: Mapping[str, Any]) -> dict[str, bool]:
    return {option: is_affirmative(config.get(option, default)) for option, default in V1_OPTIONS.items()}


def v1_number_tags(tags: list[str], prefix: str) -> list[str]:
    """Tags with a bound or quantile written as V1 writes it: `str(float(x))`, so `0.0` where V2 has `0`."""
    zero = f"{prefix}0"
    return [f"{zero}.0" if tag == zero else tag for tag in tags]


def _count_submitter(check: Any, monotonic: bool, with_gauge: bool) -> Callable:
    """V1's `_submit_distribution_count`: a gauge (plus a monotonic `.total`), or a monotonic count."""

    def submit(name: str, value: float, tags: list[str], hostname: str, flush_first_value: bool) -> None:
        if monotonic:
            check.monotonic_count(name, value, tags=tags, hostname=hostname, flush_first_value=flush_first_value)
            return
        check.gauge(name, value, tags=tags, hostname=hostname)
        if with_gauge:
            check.monotonic_count(
                f"{name}.total", value, tags=tags, hostname=hostname, flush_first_value=flush_first_value
            )

    return submit


def get_legacy_counter(check, metric_name, modifiers, global_options):
    """A counter as V1 submits it: a monotonic count under the map name, no suffix."""
    if global_options["send_monotonic_counter"]:
        monotonic_count = check.monotonic_count

        def counter(metric, sample_data, runtime_data):
            flush_first_value = runtime_data["flush_first_value"]
            for sample, tags, hostname in sample_data:
                monotonic_count(metric_name, sample.value, tags=tags, hostname=hostname, flush_first_value=flush_first_value)

        return counter
    submit = _count_submitter(check, False, global_options["send_monotonic_with_gauge"])

    def counter_as_gauge(metric, sample_data, runtime_data):
        flush_first_value = runtime_data["flush_first_value"]
        for sample, tags, hostname in sample_data:
            submit(metric_name, sample.value, tags, hostname, flush_first_value)

    return counter_as_gauge


def get_legacy_histogram(check, metric_name, modifiers, global_options):
    """A histogram as V1 submits it: `.sum` and `.count` gauges, finite buckets as `.count` by `upper_bound`."""
    if global_options["histogram_buckets_as_distributions"] or global_options["non_cumulative_histogram_buckets"]:
        # V1 has its own distribution and non-cumulative variants; these options take V2's.
        return TRANSFORMERS["histogram"](check, metric_name, modifiers, global_options)
    buckets = global_options["collect_histogram_buckets"]
    bound = global_options["histogram_bound_tag_prefixes"][0]
    with_gauge = global_options["send_monotonic_with_gauge"]
    submit_sum = _count_submitter(check, global_options["send_distribution_sums_as_monotonic"], with_gauge)
    submit_count = _count_submitter(check, global_options["send_distribution_counts_as_monotonic"], with_gauge)
    sum_name, count_name = f"{metric_name}.sum", f"{metric_name}.count"

    def histogram(metric, sample_data, runtime_data):
        flush_first_value = runtime_data["flush_first_value"]
        for sample, tags, hostname in sample_data:
            name = sample.name
            if name.endswith("_sum"):
                submit_sum(sum_name, sample.value, tags, hostname, flush_first_value)
            elif name.endswith("_count"):
                submit_count(count_name, sample.value, [*tags, UNBOUNDED] if buckets else tags, hostname, flush_first_value)
            elif buckets and name.endswith("_bucket"):
                upper_bound = sample.labels.get("upper_bound")
                if upper_bound is None or upper_bound.endswith("inf"):
                    continue  # the +Inf bucket is the total count
                submit_count(count_name, sample.value, v1_number_tags(tags, bound), hostname, flush_first_value)

    return histogram


def get_legacy_summary(check, metric_name, modifiers, global_options):
    """A summary as V1 submits it: `.quantile`, `.sum` and `.count` gauges."""
    with_gauge = global_options["send_monotonic_with_gauge"]
    submit_sum = _count_submitter(check, global_options["send_distribution_sums_as_monotonic"], with_gauge)
    submit_count = _count_submitter(check, global_options["send_distribution_counts_as_monotonic"], with_gauge)
    gauge = check.gauge
    names = {suffix: f"{metric_name}.{suffix}" for suffix in ("quantile", "sum", "count")}

    def summary(metric, sample_data, runtime_data):
        flush_first_value = runtime_data["flush_first_value"]
        for sample, tags, hostname in sample_data:
            name = sample.name
            if name.endswith("_sum"):
                submit_sum(names["sum"], sample.value, tags, hostname, flush_first_value)
            elif name.endswith("_count"):
                submit_count(names["count"], sample.value, tags, hostname, flush_first_value)
            elif "quantile" in sample.labels:
                gauge(names["quantile"], sample.value, tags=v1_number_tags(tags, "quantile:"), hostname=hostname)

    return summary


def get_table_dynamic(check, metric_name, modifiers, global_options):
    """A family whose type changed between Cilium releases (a histogram that became a gauge).

    It follows the type the endpoint declares, among the types the mapping table gives the family
    (`types`); any other declaration, or none, gets the table's current type (`fallback`), so that
    every name submitted is one metadata.csv lists. `legacy` picks legacy mode's transformers.
    """
    allowed, fallback = frozenset(modifiers["types"]), modifiers["fallback"]
    registry = {kind: LEGACY_TRANSFORMERS[LEGACY_OF_NATIVE[kind]] for kind in LEGACY_OF_NATIVE}
    if not modifiers.get("legacy"):
        registry = {kind: TRANSFORMERS[kind] for kind in LEGACY_OF_NATIVE}
    cached: dict[str, Callable] = {}

    def table_dynamic(metric, sample_data, runtime_data):
        kind = metric.type if metric.type in allowed else fallback
        transformer = cached.get(kind)
        if transformer is None:
            transformer = cached[kind] = registry[kind](check, metric_name, {}, global_options)
        transformer(metric, sample_data, runtime_data)

    return table_dynamic


def table_dynamic_kind(spec: Mapping[str, Any], declared: str) -> str:
    """The type a `table_dynamic` family is submitted as, for the type an exposition declares."""
    kind = declared if declared in spec["types"] else spec["fallback"]
    return LEGACY_OF_NATIVE[kind] if spec.get("legacy") else kind


LEGACY_TRANSFORMERS: dict[str, Callable] = {
    "table_dynamic": get_table_dynamic,
    "legacy_counter": get_legacy_counter,
    "legacy_histogram": get_legacy_histogram,
    "legacy_summary": get_legacy_summary,
    "gauge": TRANSFORMERS["gauge"],
}
# The legacy transformer of each type an exposition declares.
LEGACY_OF_NATIVE = {
    "counter": "legacy_counter",
    "gauge": "gauge",
    "histogram": "legacy_histogram",
    "summary": "legacy_summary",
}


OWN_TYPES = frozenset({"legacy_counter", "legacy_histogram", "legacy_summary", "table_dynamic"})
# The keys of a metric entry that configure these types rather than customise a transformer.
OWN_MODIFIERS = frozenset({"types", "fallback", "legacy"})


class CiliumMetricTransformer(MetricTransformer):
    """The stock metric transformer, which also knows the types above.

    Only `compile_transformer` differs: the stock one looks a type up in datadog-checks-base's
    registry alone, which these types are not part of.
    """

    def __init__(self, check: Any, config: Mapping[str, Any]):
        self.v1_options = v1_options(config)
        super().__init__(check, config)

    def compile_transformer(self, config):
        factory = LEGACY_TRANSFORMERS.get(config.get("type")) if config.get("type") in OWN_TYPES else None
        if factory is None:
            return super().compile_transformer(config)
        config = dict(config)
        name, kind = config.pop("name"), config.pop("type")
        return kind, factory(self.check, name, config, {**self.global_options, **self.v1_options})
