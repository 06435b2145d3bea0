"""The fast scrape path: the exposition read line by line, each series resolved once.

Stock OpenMetrics V2 spends most of its time, for every sample of every run, parsing labels,
building tags and going through the check's submission methods. Here a line is split into its
series (the text before the value) and its value; the series is looked up in a cache that holds
what it resolves to (Datadog name, type, tags, hostname, context), and the value goes straight
to the aggregator. A series is parsed, filtered and tagged only the first time it is seen.

Output is identical to stock V2 with the same configuration (a differential test holds it to
that). Families that need their samples together (histograms as distributions or non-cumulative
buckets, version metadata, custom transformer types) are buffered and handed to the stock
transformer, so they follow stock code exactly. Options the fast path does not implement make
the scraper use the stock path, and it says so in the log.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable
from math import inf
from typing import Any

from datadog_checks.base.agent import aggregator as agent_aggregator
from datadog_checks.base.checks.openmetrics.v2.labels import get_label_normalizer
from datadog_checks.base.checks.openmetrics.v2.transform import DEFAULT_METRIC_TYPE, MetricTransformer
from prometheus_client import Metric
from prometheus_client import parser as prom_parser
from prometheus_client.samples import Sample

from ..scraper import CiliumScraper
from ..body import TOO_LONG, Truncated
from ..transformers import OWN_MODIFIERS, UNBOUNDED, V1_OPTIONS, table_dynamic_kind, v1_number_tags

GAUGE = agent_aggregator.GAUGE
MONOTONIC_COUNT = agent_aggregator.MONOTONIC_COUNT
NATIVE_TYPES = ("counter", "gauge", "histogram", "summary")

# Options whose stock implementation the fast path does not reproduce.
UNSUPPORTED_OPTIONS = (
    "raw_metric_prefix",
    "share_labels",
    "target_info",
    "use_process_start_time",
    "telemetry",
    "use_latest_spec",
)

# The cache never holds more series than this; past it, new series are resolved at every run.
MAX_CACHED_SERIES = 1_000_000
# A series (or a family) that this many runs did not expose leaves the cache, whether or not their
# scrapes read the whole body; a complete scrape evicts what it did not expose at once.
STALE_RUNS = 5
# `#` lines remembered per endpoint (two per family); past it, the memory starts afresh.
MAX_CACHED_COMMENTS = 50_000

SKIP, SIMPLE, STOCK = 0, 1, 2

VALID_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
NAME_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# A series of the Prometheus text format: a name, then labels with quoted values, whose only escapes
# are \\, \" and \n (Prometheus refuses any other), and an optional trailing comma.
_LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
_PAIR = rf"[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*{_LABEL_VALUE}[ \t]*"
SERIES = re.compile(rf"[a-zA-Z_:][a-zA-Z0-9_:]*[ \t]*\{{[ \t]*(?:{_PAIR}(?:,[ \t]*{_PAIR})*,?[ \t]*)?\}}")
KNOWN_TYPES = frozenset({"counter", "gauge", "summary", "histogram", "untyped", "unknown", "info", "stateset", "gaugehistogram"})
ALLOWED_SUFFIXES = {"summary": ("_count", "_sum", ""), "histogram": ("_count", "_sum", "_bucket")}


class Family:
    """What one family of the exposition becomes, resolved once per (name, declared type)."""

    __slots__ = ("name", "type", "route", "dd_name", "kind", "excluded", "entries", "predecessor", "gen", "start_time")

    def __init__(self, name: str, metric_type: str):
        self.name = name  # as prometheus_client names it (a counter without `_total`)
        self.type = metric_type  # declared type, `unknown` when untyped
        self.route = SKIP
        self.dd_name = ""
        self.kind = ""  # the type the transformer submits as
        self.excluded = False
        self.entries: dict[str, Series] = {}
        self.predecessor = False  # a renamed family whose successor may come later in the payload
        self.gen = 0  # the last run whose payload declared it
        self.start_time = False  # the process start time, read for counter accounting


class Series:
    """A cached series: the submissions one of its samples makes, or where it belongs."""

    __slots__ = ("key", "subs", "gen", "sample", "sum_key", "reduced", "singleton", "has_sum_labels", "stream")

    def __init__(self):
        # (mtype, name, tags, hostname, context, monotonic, send) per submission
        self.key = ""  # the series text, as in the cache
        self.subs: tuple = ()
        self.gen = 0
        self.sample: tuple[str, dict[str, str]] | None = None  # (sample name, labels) as parsed
        self.sum_key: tuple | None = None
        self.reduced: Series | None = None  # the series once unbounded labels are summed away
        self.singleton: Family | None = None  # untyped sample outside the current family
        self.has_sum_labels = False
        self.stream = False  # submitted as it is read (a plain family, nothing to hold back)


def label_block_end(text: str) -> int:
    """The index of the `}` that closes the labels of a sample's text (quotes and escapes respected), or -1."""
    start = text.find("{")
    if start == -1:
        return -1
    quoted = escaped = False
    for index in range(start + 1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = quoted
        elif char == '"':
            quoted = not quoted
        elif char == "}" and not quoted:
            return index
    return -1


def parse_value(token: str) -> int | float:
    """A sample value as prometheus_client's text parser reads it."""
    if "_" in token:
        raise ValueError(f"Invalid value: {token!r}")
    try:
        return int(token)
    except ValueError:
        return float(token)


class FastScraper(CiliumScraper):
    """A Cilium scraper that parses each series once and submits straight to the aggregator."""

    def __init__(self, check: Any, config: dict[str, Any], **kwargs: Any):
        super().__init__(check, config, **kwargs)
        self.unsupported = [option for option in UNSUPPORTED_OPTIONS if config.get(option)]
        if self.unsupported:
            self.log.info(
                "%s: the fast scrape path does not implement %s; using the stock OpenMetrics parser",
                self.endpoint,
                ", ".join(f"`{option}`" for option in self.unsupported),
            )
        metrics_config = MetricTransformer.normalize_metric_config(config)
        self.exact_specs: dict[str, dict] = {}
        self.pattern_specs: list[tuple[re.Pattern, dict]] = []
        for raw_name, spec in metrics_config.items():
            if raw_name != re.escape(raw_name):
                self.pattern_specs.append((re.compile(raw_name), spec))
            else:
                self.exact_specs[raw_name] = spec
        self.families: dict[tuple[str, str], Family] = {}
        self.gen = 0
        self.comments: dict[str, tuple] = {}  # `#` lines as parsed (see `comment`)
        self.distinct = 0  # cached series the last run saw
        self.declared = 0  # families the last run touched
        self.cached = 0
        self.cached_tags: tuple = ()
        self.serves_openmetrics = False

    # -- the scrape ---------------------------------------------------------------------------

    def _scrape(self):
        if self.unsupported or self.serves_openmetrics or self.agent_check.metric_limiter:
            return super()._scrape()
        if self.tags is not self.cached_tags:
            # Static or dynamic tags changed: every cached series carries the old ones.
            self.families.clear()
            self.cached = 0
            self.cached_tags = self.tags
        with self.get_connection() as connection:
            media_type = connection.headers.get("Content-Type", "").split(";")[0].strip()
            if media_type == "application/openmetrics-text":
                # Cilium serves OpenMetrics only when asked; the stock parser handles it from now on.
                self.serves_openmetrics = True
                self.log.info("%s serves OpenMetrics: using the stock parser for it", self.display_url)
                connection.close()
                return super()._scrape()
            batches = self.body(connection).batches()
            if self.raw_line_filter is not None:
                keep = self.raw_line_filter.search
                batches = ([line for line in batch if line is TOO_LONG or not keep(line)] for batch in batches)
            self.consume(batches, bool(self.flush_first_value))
        self.sweep(complete=self.partial is None)

    def consume(self, batches: Iterable[list[str | None]], flush: bool) -> None:
        """Parse the exposition (lists of lines) and submit every sample; a bad line is skipped and counted."""
        self.gen += 1
        self.declared = 0
        check = self.agent_check
        submit = check._aggregator().submit_metric
        if self.counter_hold.holding:
            submit = self.counter_hold.wrap(submit, MONOTONIC_COUNT)
        self.run_submit = submit  # `finish` submits through it too
        check_id = check.check_id
        seen, rejected, limit = self.guard.seen, self.guard.rejected, self.guard.limit
        seen_add = seen.add
        gen = self.gen
        buffer_all = bool(self.sum_away)

        # The current family, tracked as prometheus_client's text parser tracks it.
        name = ""
        allowed: list[str] = []
        family: Family | None = None
        buffered: list | None = None
        has_sum = False
        present: set[str] = set()
        held: dict[str, tuple[Family, list, bool]] = {}
        declared: dict[str, str] = {}  # the type each family was declared with
        get = self.family("", "untyped").entries.get
        comments_get = self.comments.get

        def close(fam: Family | None, items: list | None, summed: bool) -> None:
            if fam is None or fam.excluded:
                return
            if fam.start_time and items is not None and items[1]:
                self.seen_start_time = float(parse_value(items[1][0]))
            if fam.predecessor:
                held[fam.name] = (fam, items or ([], []), summed)
                return
            present.add(fam.name)
            if items is not None:
                self.finish(fam, items, flush, summed)

        def open_items(fam: Family) -> list | None:
            if fam.excluded:
                return None
            return ([], []) if (buffer_all or fam.predecessor or fam.route == STOCK or fam.start_time) else None

        samples = 0
        distinct = 0  # cached series seen this run: when all were, the sweep has nothing to do
        bound = add_entry = add_token = None  # the held-back family whose appends are bound
        try:
            for number, raw in enumerate(itertools.chain.from_iterable(batches), 1):
                if raw is not TOO_LONG:
                    # The common line: a known series, one space, its value. One split and one
                    # lookup; anything else (comments, new series, timestamps, tabs, blanks around
                    # it) misses here and takes the general path below.
                    key, _, token = raw.rpartition(" ")
                    entry = get(key)
                    if entry is not None and token and "_" not in token:
                        try:
                            value = float(token)
                        except ValueError:
                            pass  # the general path reports it
                        else:
                            if entry.stream or (buffered is not None and entry.singleton is None):
                                if entry.gen != gen:
                                    entry.gen = gen
                                    distinct += 1
                                samples += 1
                                if entry.stream:
                                    if not value:
                                        value = float(parse_value(token))  # "-0" is the integer 0 to stock
                                    if value != value or value == inf or value == -inf:
                                        continue
                                    # `finish` submits held-back samples the same way; this copy is
                                    # inlined because a call per sample would cost more than the rest.
                                    for mtype, mname, tags, hostname, ctx, mono, send in entry.subs:
                                        if not limit:
                                            seen_add(ctx)  # counted only: no budget to keep
                                        elif ctx not in seen:
                                            if len(seen) >= limit:
                                                rejected.add(ctx)
                                                continue
                                            seen_add(ctx)
                                        if send:
                                            submit(check, check_id, mtype, mname, value, tags, hostname, flush if mono else False)
                                    continue
                                # Held back: two flat lists rather than a tuple per sample, for the GC's sake.
                                if buffered is not bound:
                                    bound = buffered
                                    add_entry, add_token = buffered[0].append, buffered[1].append
                                add_entry(entry)
                                add_token(token)
                                if entry.has_sum_labels:
                                    has_sum = True
                                continue
                if raw is TOO_LONG:
                    self.skip_line(number, "", f"longer than max_line_length ({self.limits.max_line_length})")
                    continue
                line = raw.strip()
                if not line:
                    continue
                try:
                    if line[0] != "#":
                        # A sample line: its series is everything before the value.
                        brace = line.rfind("}")
                        if brace != -1:
                            cut = brace + 1
                        else:
                            # The name ends at the first space or tab, whichever comes first.
                            cut = line.find(" ")
                            tab = line.find("\t")
                            if tab != -1 and (cut == -1 or tab < cut):
                                cut = tab
                            if cut == -1:
                                # Prometheus reads `name-7` as a name and its value.
                                named = NAME_PREFIX.match(line)
                                cut = named.end() if named is not None and named.end() < len(line) else -1
                                if cut == -1:
                                    raise ValueError("no value")
                        key = line[:cut]
                        entry = get(key)
                        rest = line[cut:]
                        if "\t" in rest:
                            token = repr(prom_parser._parse_value_and_timestamp(rest)[0])
                        else:
                            # No list per line: every allocation of a container wakes the GC.
                            token = rest.strip()
                            space = token.find(" ")
                            if space != -1:
                                parse_value(token.rsplit(" ", 1)[1])  # a timestamp must be a number too
                                token = token[:space]
                            if "_" in token or not token:
                                raise ValueError(f"Invalid value: {token!r}")
                        if entry is None:
                            fam = family if name != "" else None
                            entries = fam.entries if fam is not None else self.family("", "untyped").entries
                            entry = self.resolve(fam, allowed, line, key, entries, buffer_all)
                        if entry.gen != gen:
                            entry.gen = gen
                            distinct += 1
                        samples += 1
                        if entry.stream:
                            value = float(token)
                            if not value:
                                value = float(parse_value(token))  # "-0" is the integer 0 to stock, not -0.0
                            if value != value or value == inf or value == -inf:
                                continue
                            # `finish` submits held-back samples the same way; this copy is inlined
                            # because a call per sample would cost more than the rest of the line.
                            for mtype, mname, tags, hostname, ctx, mono, send in entry.subs:
                                if ctx not in seen:
                                    if limit and len(seen) >= limit:
                                        rejected.add(ctx)
                                        continue
                                    seen_add(ctx)
                                if send:
                                    submit(check, check_id, mtype, mname, value, tags, hostname, flush if mono else False)
                            continue
                        float(token)  # the value must be a number even where it is not used
                        if entry.singleton is not None:
                            # An untyped sample outside the family: stock ends the family and yields
                            # the sample as a family of its own.
                            if name != "":
                                close(family, buffered, has_sum)
                            name, allowed, family, buffered, has_sum = "", [], None, None, False
                            get = self.family("", "untyped").entries.get
                            close(entry.singleton, ([entry], [token]), entry.has_sum_labels)
                        elif buffered is not None:
                            # Two flat lists rather than a tuple per sample, for the GC's sake.
                            buffered[0].append(entry)
                            buffered[1].append(token)
                            if entry.has_sum_labels:
                                has_sum = True
                        continue

                    parsed = comments_get(line)
                    if parsed is None:
                        parsed = self.comment(line)
                    directive, candidate, declared_type = parsed
                    if directive is None:
                        continue
                    if directive == "HELP":
                        if candidate != name:
                            if name != "":
                                close(family, buffered, has_sum)
                            name = candidate
                            allowed = [candidate]
                            family = self.family(name, "untyped")
                            buffered, has_sum = open_items(family), False
                    else:
                        if declared_type not in KNOWN_TYPES:
                            raise ValueError(f"invalid metric type {declared_type!r}")
                        if candidate != name:
                            if name != "":
                                close(family, buffered, has_sum)
                            name = candidate
                            buffered, has_sum = None, False
                            declared[name] = declared_type
                        elif declared.setdefault(name, declared_type) != declared_type:
                            raise ValueError(f"a second TYPE line gives {name} another type ({declared_type})")
                        family = self.family(name, declared_type)
                        allowed = [name + suffix for suffix in ALLOWED_SUFFIXES.get(declared_type, ("",))]
                        if buffered is None:
                            buffered = open_items(family)
                    get = (family.entries if name != "" else self.family("", "untyped").entries).get
                except (ValueError, IndexError) as e:
                    self.skip_line(number, raw, f"malformed: {e}")

        except Truncated as e:
            self.partial = e.reason  # what was read is kept; the families in progress end here
        self.samples = samples
        self.distinct = distinct
        if name != "":
            close(family, buffered, has_sum)
        for fam_name, (fam, items, summed) in held.items():
            if self.superseded[fam_name] not in present:
                self.finish(fam, items, flush, summed)

    def comment(self, line: str) -> tuple[str | None, str, str | None]:
        """A `#` line as prometheus_client reads it: (`TYPE` or `HELP` or None for a plain comment,
        the metric name, the declared type). Remembered, since an endpoint repeats the same lines
        at every scrape; a malformed one raises and is not remembered."""
        parts = prom_parser._split_quoted(line, None, 3)
        if len(parts) < 3 or (parts[1] != "TYPE" and parts[1] != "HELP"):
            parsed = (None, "", None)  # a comment, `# HELP` without a name included, as Prometheus reads it
        else:
            candidate, quoted = prom_parser._unquote_unescape(parts[2])
            if not quoted and not prom_parser._is_valid_legacy_metric_name(candidate):
                raise ValueError(f"invalid metric name {candidate!r}")
            if parts[1] == "TYPE" and len(parts) < 4:
                parsed = (None, "", None)  # `# TYPE <name>` without a type: a comment to Prometheus too
            else:
                parsed = (parts[1], candidate, parts[3] if parts[1] == "TYPE" else None)
        if len(self.comments) >= MAX_CACHED_COMMENTS:
            self.comments.clear()  # names that keep changing (garbage) do not grow it
        self.comments[line] = parsed
        return parsed

    # -- families -----------------------------------------------------------------------------

    def family(self, name: str, typ: str) -> Family:
        """The resolved family for a name and declared type, as prometheus_client builds it."""
        found = self.families.get((name, typ))
        if found is not None:
            if found.gen != self.gen:
                found.gen = self.gen
                self.declared += 1
            return found
        metric_type = "unknown" if typ == "untyped" else typ
        family_name = name[:-6] if typ == "counter" and name.endswith("_total") else name
        fam = Family(family_name, metric_type)
        fam.excluded = family_name in self.exclude_metrics or (
            self.exclude_metrics_pattern is not None and self.exclude_metrics_pattern.search(family_name) is not None
        )
        fam.predecessor = family_name in self.superseded
        fam.start_time = family_name == self.start_time_family
        spec = self.exact_specs.get(family_name)
        if spec is None:
            for pattern, pattern_spec in self.pattern_specs:
                if pattern.search(family_name):
                    spec = {**pattern_spec, "name": family_name} if "name" not in pattern_spec else pattern_spec
                    break
        if spec is not None and name != "":
            kind = spec.get("type", DEFAULT_METRIC_TYPE)
            if kind in (DEFAULT_METRIC_TYPE, "native_dynamic"):
                kind = metric_type if metric_type in NATIVE_TYPES else ""
            elif kind == "table_dynamic":
                kind = table_dynamic_kind(spec, metric_type)
            options = self.metric_transformer.global_options
            simple_histogram = not options["histogram_buckets_as_distributions"] and not options[
                "non_cumulative_histogram_buckets"
            ]
            # V1's own submission options at other values than their defaults go to the stock transformer.
            simple_legacy = self.metric_transformer.v1_options == V1_OPTIONS
            custom = "__transformer__" in spec or set(spec) - {"name", "type"} - OWN_MODIFIERS
            if not kind:
                fam.route = SKIP
            elif not custom and (
                kind in ("gauge", "counter", "summary")
                or (kind == "histogram" and simple_histogram)
                or (kind in ("legacy_counter", "legacy_summary") and simple_legacy)
                or (kind == "legacy_histogram" and simple_histogram and simple_legacy)
            ):
                fam.route = SIMPLE
            else:
                fam.route = STOCK
            fam.kind = kind
            fam.dd_name = spec.get("name", family_name)
        fam.gen = self.gen
        self.declared += 1
        self.families[(name, typ)] = fam
        return fam

    def finish(self, fam: Family, items: tuple[list, list], flush: bool, summed: bool) -> None:
        """Submit a family whose samples were held back: buffered, summed, or stock-transformed.

        `items` is (entries, values), the values as read (tokens) or as summed.
        """
        if fam.excluded or fam.route == SKIP:
            return
        entries, values = items
        if summed:
            merged: dict[tuple, list] = {}
            summing = self.summing
            for entry, token in zip(entries, values):
                sum_key = summing(entry, fam)
                slot = merged.get(sum_key)
                if slot is None:
                    merged[sum_key] = [entry.reduced, parse_value(token)]
                else:
                    slot[1] += parse_value(token)  # ints stay exact, as stock sums them
            entries = [entry for entry, _ in merged.values()]
            values = [value for _, value in merged.values()]
        if fam.route == STOCK:
            samples = []
            for entry, value in zip(entries, values):
                sample_name, labels = entry.sample
                if isinstance(value, str):
                    value = parse_value(value)
                samples.append(Sample(sample_name, dict(labels), value, None, None))
            metric = Metric(fam.name, "", "untyped" if fam.type == "unknown" else fam.type)
            metric.samples = samples
            transformer = self.metric_transformer.get(metric)
            if transformer is not None:
                runtime_data = {"flush_first_value": flush, "static_tags": self.static_tags}
                transformer(metric, self.generate_sample_data(metric), runtime_data)
            return
        check = self.agent_check
        submit = self.run_submit
        check_id = check.check_id
        seen, rejected, limit = self.guard.seen, self.guard.rejected, self.guard.limit
        seen_add = seen.add
        for entry, raw in zip(entries, values):
            value = float(raw)  # a token as read, or a sum
            if not value:
                value = float(parse_value(raw)) if isinstance(raw, str) else float(raw)  # "-0" is 0 to stock
            elif value != value or value == inf or value == -inf:
                continue
            for mtype, mname, tags, hostname, ctx, mono, send in entry.subs:
                if not limit:
                    seen_add(ctx)  # counted only: no budget to keep
                elif ctx not in seen:
                    if len(seen) >= limit:
                        rejected.add(ctx)
                        continue
                    seen_add(ctx)
                if send:
                    submit(check, check_id, mtype, mname, value, tags, hostname, flush if mono else False)

    # -- series -------------------------------------------------------------------------------

    def resolve(
        self, fam: Family | None, allowed, line: str, key: str, entries: dict[str, Series], buffer_all: bool
    ) -> Series:
        """Parse a series the first time it is seen and work out what its samples submit."""
        if "{" in key and SERIES.fullmatch(key) is None:
            # datadog-checks-base's faster sample parser reads much that the format refuses.
            if "#" in key and label_block_end(key) != len(key) - 1:
                raise ValueError("text after the labels (an exemplar is not part of the Prometheus text format)")
            raise ValueError("not a series of the Prometheus text format (label names, quotes or escapes)")
        if "{" in key:
            sample = prom_parser._parse_sample(line)
        else:
            # A bare name ends at the first blank, a tab included, as Prometheus reads it (the
            # faster parser datadog-checks-base installs only stops at a space).
            sample = Sample(key, {}, 0, None, None)
        if not VALID_NAME.match(sample.name):
            # datadog-checks-base swaps in a faster sample parser that does not check names.
            raise ValueError(f"invalid metric name {sample.name!r}")
        entry = Series()
        entry.key = key
        if fam is None or sample.name not in allowed:
            # Stock yields it as an untyped singleton family named after the sample.
            entry.singleton = self.family(sample.name, "untyped")
            fam = entry.singleton
        labels = sample.labels
        if fam.type == "histogram" and sample.name.endswith("_bucket"):
            bound = labels.get("le")
            if bound is None:
                raise ValueError("a histogram bucket without an `le` label")
            if bound != bound.strip():
                raise ValueError(f"a histogram bound that is not a number: {bound!r}")  # float() would strip it
        if fam.route == STOCK:
            entry.sample = (sample.name, dict(labels))  # rebuilt into a Sample for the stock transformer
        if self.sum_away and self.sum_away.intersection(labels):
            entry.has_sum_labels = True
        if fam.route == SIMPLE:
            entry.subs = self.submissions(fam, sample.name, labels)
        entry.stream = (
            entry.singleton is None
            and fam.route == SIMPLE
            and not fam.excluded
            and not fam.predecessor
            and not fam.start_time
            and not buffer_all
        )
        if self.cached < MAX_CACHED_SERIES:
            entries[key] = entry
            self.cached += 1
        return entry

    def summing(self, entry: Series, fam: Family) -> tuple:
        """The series an entry is summed into once unbounded labels are removed, and its key.

        Worked out the first time a family has to be summed, then kept on the entry.
        """
        if entry.sum_key is None:
            sample = prom_parser._parse_sample(entry.key + " 0")
            kept = {k: v for k, v in sample.labels.items() if k not in self.sum_away}
            entry.sum_key = (sample.name, tuple(sorted(kept.items())))
            if entry.has_sum_labels:
                reduced = Series()
                reduced.subs = self.submissions(fam, sample.name, kept)
                if fam.route == STOCK:
                    reduced.sample = (sample.name, kept)
                entry.reduced = reduced
            else:
                entry.reduced = entry
        return entry.sum_key

    def submissions(self, fam: Family, sample_name: str, labels: dict[str, str]) -> tuple:
        """What one sample of the family submits, as stock V2 would submit it."""
        if fam.route != SIMPLE:
            return ()
        labels = dict(labels)  # the normalizer renames `le` in place
        get_label_normalizer(fam.type)(labels)
        tags = []
        for label_name, label_value in labels.items():
            excluder = self.exclude_metrics_by_labels.get(label_name)
            if excluder is not None and excluder(label_value):
                return ()
            if label_name in self.exclude_labels:
                continue
            if self.include_labels and label_name not in self.include_labels:
                continue
            # Interned: a tag such as `verdict:FORWARDED` recurs in many series of the cache.
            tags.append(sys.intern(f"{self.rename_labels.get(label_name, label_name)}:{label_value}"))
        tags.extend(self.tags)
        hostname = ""
        if self.hostname_label and self.hostname_label in labels:
            hostname = labels[self.hostname_label]
            if self.hostname_formatter is not None:
                hostname = self.hostname_formatter(hostname)

        base, kind = fam.dd_name, fam.kind
        buckets = self.metric_transformer.global_options["collect_histogram_buckets"]
        subs: list[tuple[int, str, bool, list[str]]] = []  # (mtype, name without namespace, monotonic, tags)
        if kind == "gauge":
            subs.append((GAUGE, base, False, tags))
        elif kind == "counter":
            subs.append((MONOTONIC_COUNT, f"{base}.count", True, tags))
        elif kind == "histogram":
            if sample_name.endswith("_sum"):
                subs.append((MONOTONIC_COUNT, f"{base}.sum", True, tags))
            elif sample_name.endswith("_count"):
                subs.append((MONOTONIC_COUNT, f"{base}.count", True, tags))
            elif buckets and sample_name.endswith("_bucket") and not labels["upper_bound"].endswith("inf"):
                subs.append((MONOTONIC_COUNT, f"{base}.bucket", True, tags))
        elif kind == "summary":
            if sample_name.endswith("_sum"):
                subs.append((MONOTONIC_COUNT, f"{base}.sum", True, tags))
            elif sample_name.endswith("_count"):
                subs.append((MONOTONIC_COUNT, f"{base}.count", True, tags))
            elif sample_name == fam.name:
                subs.append((GAUGE, f"{base}.quantile", False, tags))
        # Legacy mode: what `cilium_check.transformers`'s transformers submit, sample by sample.
        elif kind == "legacy_counter":
            subs.append((MONOTONIC_COUNT, base, True, tags))
        elif kind == "legacy_histogram":
            if sample_name.endswith("_sum"):
                subs.append((GAUGE, f"{base}.sum", False, tags))
            elif sample_name.endswith("_count"):
                subs.append((GAUGE, f"{base}.count", False, [*tags, UNBOUNDED] if buckets else tags))
            elif buckets and sample_name.endswith("_bucket") and not labels.get("upper_bound", "inf").endswith("inf"):
                bound = self.metric_transformer.global_options["histogram_bound_tag_prefixes"][0]
                subs.append((GAUGE, f"{base}.count", False, v1_number_tags(tags, bound)))
        elif kind == "legacy_summary":
            if sample_name.endswith("_sum"):
                subs.append((GAUGE, f"{base}.sum", False, tags))
            elif sample_name.endswith("_count"):
                subs.append((GAUGE, f"{base}.count", False, tags))
            elif "quantile" in labels:
                subs.append((GAUGE, f"{base}.quantile", False, v1_number_tags(tags, "quantile:")))

        check = self.agent_check
        result = []
        for mtype, name, mono, tags in subs:
            # Interned: every series of a family shares its metric name.
            full_name = sys.intern(check._format_namespace(name))
            # A tuple: a third smaller than the list, and never traversed by the garbage collector
            # (the Agent's aggregator takes any sequence of tags).
            normalized = tuple(check._normalize_tags_type(list(tags), None, full_name))
            # The context guard's key for this submission; its hash stands in for it in the
            # per-run set, so that a lookup does not rehash the whole tag tuple every time.
            context = hash((name, tuple(tags), hostname))
            result.append((mtype, full_name, normalized, hostname, context, mono, check.should_send_metric(full_name)))
        return tuple(result)

    # -- the cache ----------------------------------------------------------------------------

    def sweep(self, complete: bool = True) -> None:
        """Forget the series and families that recent scrapes did not expose.

        After a complete scrape, what it did not expose is gone. A scrape cut short (by
        `max_body_size`, the timeout or the connection) says nothing of the lines it did not reach,
        so those leave only once `STALE_RUNS` runs have not seen them: the cache follows the live
        series even when every scrape is cut.
        """
        gen = self.gen
        if (
            complete
            and self.cached < MAX_CACHED_SERIES  # (when full, `distinct` counts series it did not keep)
            and self.distinct == self.cached
            and self.declared == len(self.families)
        ):
            return  # every cached series and family was seen in this run: nothing is stale
        keep_since = gen if complete else gen - STALE_RUNS + 1
        total = 0
        for key in list(self.families):
            fam = self.families[key]
            if fam.entries and any(entry.gen < keep_since for entry in fam.entries.values()):
                fam.entries = {k: entry for k, entry in fam.entries.items() if entry.gen >= keep_since}
            if not fam.entries and fam.gen <= gen - STALE_RUNS and key != ("", "untyped"):
                del self.families[key]  # a family name no recent payload declared (renamed, garbage)
                continue
            total += len(fam.entries)
        self.cached = total

    def cache_stats(self) -> dict[str, int]:
        """Entries in the series cache and the bytes they hold, each object counted once."""
        counted: set[int] = set()

        def size(obj) -> int:
            if id(obj) in counted:
                return 0
            counted.add(id(obj))
            return sys.getsizeof(obj)

        total = entries = 0
        for fam in self.families.values():
            total += size(fam.entries)
            for key, entry in fam.entries.items():
                entries += 1
                total += size(key) + size(entry) + size(entry.subs)
                for sub in entry.subs:
                    total += size(sub) + size(sub[2]) + sum(size(tag) for tag in sub[2]) + size(sub[4])
                if entry.sample is not None:
                    total += size(entry.sample) + size(entry.sample[1])
        return {"entries": entries, "bytes": total}
