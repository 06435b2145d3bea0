"""Random Prometheus text expositions (format 0.0.4) of one Cilium component, for differential tests.

    import random
    from exposition_gen import COMPONENTS, generate, next_scrape

    expo = generate("agent", random.Random(7))      # or generate("agent", 7): a seed
    expo.text                                       # the /metrics payload
    later = next_scrape(expo, random.Random(8))     # the same endpoint one scrape later
    expo.family_names(), expo.label_names()         # what the payload holds, to pick options from

    # with hypothesis
    from exposition_gen import expositions, seeds
    @given(expositions("hubble"))        # or @given(seeds()) and generate(component, seed)

A payload mixes a random subset of the component's rows of the mapping table (with their
labels, under their own `# TYPE`, sometimes untyped or under another type), families the table
does not map (ignored by the check), comments and blank lines, duplicate series and families
split in two blocks. Label values carry escapes, separators, UTF-8, empty and very long values;
sample values are integers, floats, exponents, NaN and infinities, sometimes with a timestamp.

Every payload is well formed: it is parsed with prometheus_client's text parser and must read
back exactly the samples (labels and values, in order) it was built from. When it does not, each
family is parsed on its own, and one that raises or reads back otherwise is rebuilt, then
dropped (`Exposition.dropped` counts those); the final payload must read back as built, or
`generate` raises. By default a payload is also recognised by `cilium_check.detect.identify`
as its component (padded with an unmapped family of the component's prefix when needed).

The stock path (prometheus_client and OpenMetrics V2) handles every payload without an error;
HELP and TYPE lines come in either order, and counters appear both with and without `_total`.

Deliberately NOT generated (each is a known difference or a known crash, not what a
differential test over well-formed input is about):

- an untyped family (no `# TYPE` line, or `# TYPE ... untyped`) named like a family that the
  table lists as a histogram: for a family that is a histogram in some releases and a gauge in
  others (`cilium_agent_bootstrap_seconds`, mapped with the check's `table_dynamic` transformer, which
  follows the declared type) the stock path crashes on it (`KeyError: 'unknown'`); other
  histogram names are avoided too, so the rule stays simple;
- `# TYPE` values other than counter, gauge, histogram, summary and untyped;
- characters `str.splitlines` treats as line ends (\\r, \\v, \\f, \\x1c-\\x1e, \\x85, U+2028,
  U+2029) inside label values or HELP text: the stock path reads the body with
  `requests.Response.iter_lines`, which splits lines there, while the exposition format only
  ends lines at \\n;
- CRLF line ends, exemplars, OpenMetrics-only syntax (`# EOF`, quoted UTF-8 metric names);
- histogram buckets without `le`, summaries with a non-numeric `quantile`, version metadata
  series without a `version` label (stock raises on each), and magnitudes near 1e308 in
  buckets (their differences overflow to infinity, which stock cannot turn into a bucket count).
"""

from __future__ import annotations

import math
import random
import re
import string
from dataclasses import dataclass, field, replace
from functools import cache

from prometheus_client.parser import text_string_to_metric_families

from cilium_check.components import BY_NAME, HUBBLE, NAMES
from cilium_check.detect import identify
from cilium_check.mapping import MetricRow, rows_for
from cilium_check.openmetrics_map import component_metrics, superseded_families

__all__ = [
    "COMPONENTS",
    "Exposition",
    "FamilySpec",
    "SeriesSpec",
    "expositions",
    "generate",
    "next_scrape",
    "seeds",
]

COMPONENTS = NAMES
HUBBLE_UNBOUNDED_LABELS = HUBBLE.unbounded_labels

# The family-name prefix that makes `cilium_check.detect.identify` vote for each component.
_PREFIX = {name: (BY_NAME[name].family_prefixes or ("cilium_",))[0] for name in NAMES}

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

# Characters `str.splitlines` (hence `requests.Response.iter_lines`) ends a line at, besides \n.
LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_BREAK = re.compile(f"[{LINE_BREAKS}]")

TRICKY_VALUES = (
    "",
    " ",
    "with space",
    "  leading and trailing  ",
    'a "quoted" word',
    '"',
    "back\\slash",
    "\\",
    "ends with backslash\\",
    "\\n is not a newline",
    '\\"',
    "new\nline",
    "\n",
    "two\n\nlines",
    "brace}",
    "{brace",
    "{}",
    "comma,",
    ",",
    "eq=ual",
    'a="b",c="d"}',
    "} 1 2",
    " # not a comment",
    "#",
    "colon:value",
    "tab\there",
    "é",
    "café crème",
    "日本",
    "日本語のラベル",
    "emoji 🚀",
    "🙂",
    "Ünïcødé ß ø",
    "0",
    "-1",
    "+Inf",
    "NaN",
    "1e3",
)

PLAIN_VALUES = (
    "ok",
    "error",
    "success",
    "failure",
    "GET",
    "POST",
    "200",
    "503",
    "ingress",
    "egress",
    "TCP",
    "UDP",
    "FORWARDED",
    "DROPPED",
    "kube-system",
    "kube-system/coredns-5d78c9869d-abcde",
    "10.0.0.1",
    "fd00::1",
    "default",
    "cluster-1",
    "node-a",
    "amd64",
    "Policy denied",
)

# Bounded Hubble context labels, besides the unbounded ones the check sums away.
HUBBLE_CONTEXT_LABELS = ("source_namespace", "destination_namespace", "source_workload", "destination_workload")

EXTRA_LABELS = ("extra", "pod_extra", "zone_x", "k8s_app")

BUCKET_BOUNDS = (0.005, 0.01, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 100.0)
QUANTILES = ("0.5", "0.9", "0.99")

UNMAPPED_WORDS = (
    "widgets",
    "debug_queue_depth",
    "internal_things_total",
    "scratch_seconds",
    "unmapped_events_total",
    "unmapped_latency_seconds",
    "experimental_ratio",
    "shadow_bytes",
)
# Unmapped families every Go process exposes; they vote for no component.
RUNTIME_FAMILIES = (
    ("go_goroutines", "gauge"),
    ("go_threads", "gauge"),
    ("go_gc_duration_seconds", "summary"),
    ("go_memstats_alloc_bytes_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
    ("process_open_fds", "gauge"),
    ("promhttp_metric_handler_requests_total", "counter"),
    ("go_sched_latencies_seconds", "histogram"),
    ("go_info", "untyped"),
)

COMMENTS = ("# some comment", "# another comment, with: punctuation", "#", "#nospace", "# é 日本 🚀", "# TYPEless")


@dataclass
class SeriesSpec:
    """One label set of a family and its sample values, as tokens printed verbatim.

    `values` holds, by the family's layout:
      counter, gauge, untyped: [value]
      histogram: [bucket values..., +Inf bucket value, sum, count] (bucket bounds in `bounds`)
      summary: [quantile values..., sum, count] (quantiles in `bounds`)
    """

    labels: list[tuple[str, str]]
    values: list[str]
    bounds: list[str] = field(default_factory=list)
    timestamps: list[str | None] = field(default_factory=list)
    le_first: bool = False  # `le`/`quantile` printed before the other labels
    sum_count_first: bool = False  # `_sum` and `_count` printed before the buckets/quantiles


@dataclass
class FamilySpec:
    """A family of the payload: how its header reads and how its samples are laid out."""

    name: str  # on HELP/TYPE lines, and the base of its sample names
    layout: str  # counter | gauge | histogram | summary | untyped: how samples are named
    type_line: str | None  # the `# TYPE` value, None: no TYPE line
    help: str | None  # HELP text, None: no HELP line
    help_after_type: bool
    series: list[SeriesSpec]
    row: MetricRow | None = None  # the table row, None for an unmapped family
    split_at: int | None = None  # series index where the family's second block starts
    duplicate: int | None = None  # index of a series printed twice (second time with other values)


@dataclass
class Exposition:
    """A generated payload and the model it was printed from."""

    component: str
    families: list[FamilySpec]
    order: list[tuple[int, int]]  # (family index, block 0 or 1), in payload order
    interludes: dict[int, list[str]]  # blank and comment lines printed before order[i]
    quirky: bool  # extra blanks, trailing commas, `{}`: legal, but not what Go's client prints
    text: str = ""
    dropped: int = 0  # families dropped because they did not read back as built

    def family_names(self) -> set[str]:
        """Family names as prometheus_client reports them (a counter's without `_total`)."""
        names = set()
        for family in self.families:
            if family.series or family.type_line or family.help is not None:
                if family.type_line == "counter" and family.name.endswith("_total"):
                    names.add(family.name[: -len("_total")])
                else:
                    names.add(family.name)
        return names

    def label_names(self) -> set[str]:
        """Label names of the payload's series (with `le` and `quantile` where they apply)."""
        names = {name for family in self.families for spec in family.series for name, _ in spec.labels}
        layouts = {family.layout for family in self.families if family.series}
        names.update(key for layout, key in (("histogram", "le"), ("summary", "quantile")) if layout in layouts)
        return names

    def mapped_rows(self) -> list[MetricRow]:
        return [family.row for family in self.families if family.row is not None]


# --------------------------------------------------------------------------------------------
# public API


def generate(component: str, rng: random.Random | int, *, identifiable: bool = True) -> Exposition:
    """A random well-formed payload of `component` (one of COMPONENTS), driven by `rng` (or a seed).

    `identifiable`: pad the payload with an unmapped family of the component's own prefix when
    needed, so that the check recognises the endpoint as serving that component.
    """
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; expected one of {', '.join(COMPONENTS)}")
    rng = _rng(rng)
    gen = _Generator(component, rng)
    families = gen.families()
    expo = Exposition(component, families, [], {}, quirky=rng.random() < 0.25)
    _lay_out(expo, rng)
    _finish(expo, gen, identifiable)
    return expo


def next_scrape(expo: Exposition, rng: random.Random | int, *, identifiable: bool = True) -> Exposition:
    """The payload of the same endpoint one scrape later: most series keep their labels and get
    new values; some series and families go away, a few new ones appear."""
    rng = _rng(rng)
    gen = _Generator(expo.component, rng)
    families: list[FamilySpec] = []
    for family in map(_copy_family, expo.families):
        if "diff_padding_" in family.name:
            continue  # padding is added again below if still needed
        if rng.random() < 0.08:
            continue
        kept = []
        for series in family.series:
            r = rng.random()
            if r < 0.1:
                continue
            if r > 0.25:
                gen.revalue(family, series)
            kept.append(series)
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            kept.append(gen.series(family))
        family.series = kept
        if family.split_at is not None and family.split_at > len(kept):
            family.split_at = len(kept)
        if family.duplicate is not None and family.duplicate >= len(kept):
            family.duplicate = None
        if rng.random() < 0.1:
            family.help = None if family.help is not None else gen.help_text()
        families.append(family)
    used = {family.row.wire_name for family in families if family.row is not None}
    if rng.random() < 0.3:
        fresh = [row for row in gen.rows if row.wire_name not in used]
        if fresh:
            families.insert(rng.randint(0, len(families)), gen.mapped_family(rng.choice(fresh)))
    later = Exposition(expo.component, families, [], {}, quirky=expo.quirky)
    _lay_out(later, rng)
    _finish(later, gen, identifiable)
    return later


def seeds():
    """A hypothesis strategy of generator seeds."""
    from hypothesis import strategies as st

    return st.integers(min_value=0, max_value=2**32 - 1)


def expositions(component: str | None = None):
    """A hypothesis strategy of payloads: of `component`, or of any component."""
    from hypothesis import strategies as st

    components = st.just(component) if component else st.sampled_from(COMPONENTS)
    return st.tuples(components, seeds()).map(lambda pair: generate(pair[0], random.Random(pair[1])))


# --------------------------------------------------------------------------------------------
# the model


def _copy_series(spec: SeriesSpec) -> SeriesSpec:
    return replace(
        spec,
        labels=list(spec.labels),
        values=list(spec.values),
        bounds=list(spec.bounds),
        timestamps=list(spec.timestamps),
    )


def _copy_family(family: FamilySpec) -> FamilySpec:
    return replace(family, series=[_copy_series(spec) for spec in family.series])


def _rng(rng: random.Random | int) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


@cache
def _histogram_names(component: str) -> frozenset[str]:
    """Names (wire and parsed) of families the table lists as a histogram in some release."""
    names = set()
    for row in rows_for(component):
        if row.type == "histogram":
            names.update((row.wire_name, row.family))
    return frozenset(names)


@cache
def _mapped_names(component: str) -> frozenset[str]:
    return frozenset(component_metrics(component))


@cache
def _rows_by_wire(component: str) -> tuple[tuple[str, tuple[MetricRow, ...]], ...]:
    by_wire: dict[str, list[MetricRow]] = {}
    for row in rows_for(component):
        by_wire.setdefault(row.wire_name, []).append(row)
    return tuple((wire, tuple(rows)) for wire, rows in sorted(by_wire.items()))


class _Generator:
    def __init__(self, component: str, rng: random.Random):
        self.component = component
        self.rng = rng
        rows: dict[str, MetricRow] = {}
        # One row per wire name: a family listed twice (a type change) gets one of its types.
        for wire, candidates in _rows_by_wire(component):
            rows[wire] = candidates[0] if len(candidates) == 1 else rng.choice(candidates)
        self.rows = list(rows.values())
        self.by_wire = rows
        self.by_family = {row.family: row for row in self.rows}
        self.wire_names = frozenset(row.wire_name for row in rows_for(component))
        self.superseded = superseded_families(component)
        self.label_pool = self._label_pool()

    # families

    def families(self) -> list[FamilySpec]:
        rng = self.rng
        count = rng.choice((1, 2, 3, 4, 5, 6, 8, 10, 14, 20))
        chosen = rng.sample(self.rows, min(count, len(self.rows)))
        # Renamed families that one release exposes side by side: often both, so that the
        # check's preference for the successor is exercised.
        present = {row.family for row in chosen}
        for old, new in self.superseded.items():
            for a, b in ((old, new), (new, old)):
                if a in present and b not in present and b in self.by_family and rng.random() < 0.6:
                    chosen.append(self.by_family[b])
                    present.add(b)
        # Families whose type follows the exposition (`table_dynamic`) are rare in the table: often add them.
        metrics = component_metrics(self.component)
        for row in self.rows:
            if metrics[row.family]["type"] == "table_dynamic" and row not in chosen and rng.random() < 0.15:
                chosen.append(row)
        families = [self.mapped_family(row) for row in chosen]
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            families.append(self.unmapped_family(families))
        rng.shuffle(families)
        if rng.random() < 0.3:  # client_golang sorts families by name
            families.sort(key=lambda f: f.name)
        return families

    def mapped_family(self, row: MetricRow) -> FamilySpec:
        rng = self.rng
        no_untyped = row.wire_name in _histogram_names(self.component) or row.family in _histogram_names(self.component)
        name = row.wire_name
        if row.type == "metadata":
            layout = "gauge"
            type_line = rng.choices(("gauge", "untyped", None), (8, 1, 1))[0]
        elif component_metrics(self.component)[row.family]["type"] == "table_dynamic":
            # a histogram in some releases and a gauge in others: the check follows the declared
            # type, whichever it is (but never untyped, see the module docstring)
            kinds = (row.type, "histogram", "gauge", "summary", "counter")
            layout = type_line = rng.choices(kinds, (4, 2, 2, 1, 1))[0]
        elif row.type == "histogram":
            layout = type_line = "histogram"
        elif row.type == "counter":
            layout, type_line = "counter", "counter"
            r = rng.random()
            if r < 0.2 and not no_untyped:
                # untyped: the exposition of a client that omits TYPE keeps `_total` in the name
                layout, type_line = "untyped", rng.choice((None, None, None, "untyped"))
                if rng.random() < 0.25 and row.family not in self.wire_names - {row.wire_name}:
                    name = row.family
            elif r < 0.26:
                layout = type_line = rng.choice(("gauge", "summary"))  # another declared type
            elif rng.random() < 0.3:
                # the other spelling: `x_total` for a counter listed as `x`, and vice versa
                # (unless another row of the table is spelled so)
                other = name[: -len("_total")] if name.endswith("_total") else name + "_total"
                if other not in self.wire_names:
                    name = other
        else:  # gauge
            layout, type_line = "gauge", "gauge"
            r = rng.random()
            if no_untyped:
                pass  # a gauge in some releases, a histogram in others: only its own types
            elif r < 0.12:
                layout, type_line = "untyped", rng.choice((None, None, "untyped"))
            elif r < 0.2:
                layout = type_line = rng.choice(("counter", "summary", "histogram"))
        family = FamilySpec(
            name=name,
            layout=layout,
            type_line=type_line,
            help=self.help_text() if rng.random() < 0.8 else None,
            help_after_type=rng.random() < 0.15,
            series=[],
            row=row,
        )
        self._fill(family)
        return family

    def unmapped_family(self, existing: list[FamilySpec]) -> FamilySpec:
        rng = self.rng
        taken = {f.name for f in existing}
        for _ in range(20):
            if rng.random() < 0.35:
                name, layout = rng.choice(RUNTIME_FAMILIES)
            else:
                word = rng.choice(UNMAPPED_WORDS)
                name = _PREFIX[self.component] + word + ("" if rng.random() < 0.8 else f"_{rng.randint(0, 99)}")
                if rng.random() < 0.1:
                    name = name.replace("_", ":", 1)  # colons are legal in metric names
                layout = rng.choice(TYPES)
            if name not in taken and not self._maps(name, layout):
                break
        type_line: str | None = layout
        if layout == "untyped" and rng.random() < 0.6:
            type_line = None
        family = FamilySpec(
            name=name,
            layout=layout,
            type_line=type_line,
            help=self.help_text() if rng.random() < 0.7 else None,
            help_after_type=rng.random() < 0.15,
            series=[],
        )
        self._fill(family)
        return family

    def _maps(self, name: str, layout: str) -> bool:
        """Whether a family so named would reach a transformer of the check."""
        mapped = _mapped_names(self.component)
        names = {name}
        if layout == "counter" and name.endswith("_total"):
            names.add(name[: -len("_total")])
        if layout in ("histogram", "summary"):
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
        return bool(names & mapped)

    def padding_family(self, index: int, samples: int) -> FamilySpec:
        """An unmapped gauge with the component's own prefix, to make the endpoint recognisable."""
        series = [SeriesSpec([("i", str(i))], [str(i)], timestamps=[None]) for i in range(samples)]
        return FamilySpec(
            name=f"{_PREFIX[self.component]}diff_padding_{index}",
            layout="gauge",
            type_line="gauge",
            help="padding so that the endpoint is recognised",
            help_after_type=False,
            series=series,
        )

    def _fill(self, family: FamilySpec) -> None:
        rng = self.rng
        count = rng.choices(range(7), (1, 6, 5, 4, 3, 2, 2))[0]
        if family.row is not None and family.row.type == "metadata":
            count = rng.choices((0, 1, 2), (1, 8, 1))[0]
        family.series = [self.series(family) for _ in range(count)]
        if len(family.series) >= 2 and rng.random() < 0.12:
            family.split_at = rng.randint(1, len(family.series) - 1)
        if family.series and rng.random() < 0.08:
            family.duplicate = rng.randrange(len(family.series))

    # series

    def series(self, family: FamilySpec) -> SeriesSpec:
        rng = self.rng
        row = family.row
        names: list[str] = []
        fixed: dict[str, str] = {}
        if row is not None:
            for label in row.labels:
                if label.since is None and label.until is None:
                    if rng.random() < 0.97:
                        names.append(label.name)
                elif rng.random() < 0.6:
                    names.append(label.name)
            if row.type == "metadata":
                fixed["version"] = self.release()
                for extra, value in (("revision", "a1b2c3d4"), ("arch", "amd64")):
                    if extra not in names and rng.random() < 0.5:
                        fixed[extra] = value
            if self.component == "hubble":
                for label in HUBBLE_UNBOUNDED_LABELS + HUBBLE_CONTEXT_LABELS:
                    if rng.random() < 0.3:
                        names.append(label)
        else:
            names = rng.sample(("reason", "code", "path", "method", "result", "name", "cluster"), rng.randint(0, 3))
        if rng.random() < 0.1:
            names.append(rng.choice(EXTRA_LABELS))
        names = [n for n in dict.fromkeys(names) if n not in ("le", "quantile") and n not in fixed]
        labels = [(n, self.label_value()) for n in names] + list(fixed.items())
        if rng.random() < 0.7:
            labels.sort()
        else:
            rng.shuffle(labels)
        spec = SeriesSpec(labels, [], le_first=rng.random() < 0.1, sum_count_first=rng.random() < 0.08)
        self.revalue(family, spec)
        return spec

    def revalue(self, family: FamilySpec, spec: SeriesSpec) -> None:
        """Draw new values (and timestamps) for a series, keeping its labels and bucket bounds."""
        rng = self.rng
        layout = family.layout
        counter_like = layout == "counter" or (family.row is not None and family.row.type == "counter")
        if layout == "histogram":
            if not spec.bounds:
                spec.bounds = self.bucket_bounds()
            spec.values = self.histogram_values(len(spec.bounds))
        elif layout == "summary":
            if not spec.bounds:
                spec.bounds = list(QUANTILES) if rng.random() < 0.8 else rng.sample(QUANTILES, rng.randint(1, 3))
            spec.values = [self.value() for _ in spec.bounds] + [self.value(), self.count_value()]
        else:
            spec.values = [self.value(counter=counter_like)]
        with_ts = rng.random() < 0.15
        spec.timestamps = [
            self.timestamp() if with_ts and rng.random() < 0.8 else None for _ in self.lines_of(layout, spec)
        ]

    @staticmethod
    def lines_of(layout: str, spec: SeriesSpec) -> range:
        if layout in ("histogram", "summary"):
            return range(len(spec.bounds) + (1 if layout == "histogram" else 0) + 2)
        return range(1)

    def bucket_bounds(self) -> list[str]:
        rng = self.rng
        bounds = sorted(rng.sample(BUCKET_BOUNDS, rng.randint(0, 6)))
        if rng.random() < 0.05:
            bounds.insert(0, 0.0)
        if rng.random() < 0.03:
            bounds.insert(0, -1.0)
        as_int = rng.random() < 0.5  # "1" rather than "1.0", as client_golang prints
        out = []
        for bound in bounds:
            if bound == int(bound):
                text = str(int(bound)) if (as_int if rng.random() < 0.8 else not as_int) else repr(bound)
            elif rng.random() < 0.05:
                text = f"{bound:e}"  # 5.000000e-03
            else:
                text = repr(bound)
            out.append(text)
        return out  # "+Inf" is added by the layout

    def histogram_values(self, bounds: int) -> list[str]:
        rng = self.rng
        total, cumulative = 0, []
        for _ in range(bounds + 1):
            total += rng.choice((0, 0, 1, 2, 5, 17, 250, rng.randint(0, 10**6)))
            cumulative.append(total)
        tokens = [str(v) if rng.random() < 0.9 else f"{v}.0" for v in cumulative]
        if rng.random() < 0.03:
            tokens[rng.randrange(len(tokens))] = rng.choice(("NaN", "+Inf"))
        count = tokens[-1] if rng.random() < 0.9 else self.count_value()
        return tokens + [self.value(), count]

    def count_value(self) -> str:
        rng = self.rng
        if rng.random() < 0.03:
            return rng.choice(("NaN", "+Inf"))
        return str(rng.choice((0, 1, 3, 42, rng.randint(0, 10**9))))

    def value(self, counter: bool = False) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.07:
            return rng.choice(("NaN", "+Inf", "-Inf"))
        if r < 0.45:
            magnitude = rng.choice((1, 10, 1000, 10**6, 10**12, 2**53 + 1))
            v = rng.randint(0, magnitude)
            if not counter and rng.random() < 0.15 or rng.random() < 0.02:
                v = -v
            return f"+{v}" if v >= 0 and rng.random() < 0.02 else str(v)
        if r < 0.75:
            v = rng.random() * rng.choice((1, 100, 1e6))
            if not counter and rng.random() < 0.15:
                v = -v
            return rng.choice((repr(v), f"{v:.6g}", f"{v:.3f}"))
        if r < 0.92:
            return rng.choice(("1e-3", "2.5E+10", "1E6", "-4.2e-05", "6.02e23", "1e0", "3.5e-7", "0e0"))
        return rng.choice(("0", "-0", "0.0", "1", "1.0", ".5", "1.", "42"))

    def timestamp(self) -> str:
        return str(1767225600000 + self.rng.randint(-(10**8), 10**6))

    def release(self) -> str:
        rng = self.rng
        version = f"1.{rng.randint(10, 20)}.{rng.randint(0, 15)}"
        r = rng.random()
        if r < 0.15:
            return "v" + version
        if r < 0.25:
            return version + rng.choice(("-rc.1", "-pre.2", "-dev"))
        if r < 0.3:
            return rng.choice(("unknown", "", "1.20", "not a version"))
        return version

    def help_text(self) -> str:
        rng = self.rng
        text = rng.choice(
            (
                "",
                "Number of things.",
                "Seconds spent, by \\ and by \n newline",
                'A "quoted" help text with é and 日本 🚀',
                "trailing backslash \\",
                "x" * 120,
            )
        )
        return text

    def _label_pool(self) -> list[str]:
        rng = self.rng
        pool = rng.sample(TRICKY_VALUES, rng.randint(3, 8)) + rng.sample(PLAIN_VALUES, rng.randint(2, 6))
        if rng.random() < 0.15:
            pool.append(self._long_value())
        return pool

    def _long_value(self) -> str:
        rng = self.rng
        alphabet = string.ascii_letters + string.digits + ' ,={}"\\\né日本🚀-_.:/'
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(280, 320)))

    def label_value(self) -> str:
        rng = self.rng
        if rng.random() < 0.01:
            return self._long_value()
        if rng.random() < 0.05:
            return rng.choice(TRICKY_VALUES)
        return rng.choice(self.label_pool)


# --------------------------------------------------------------------------------------------
# printing


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class _Printer:
    def __init__(self, rng: random.Random, quirky: bool):
        self.rng = rng
        self.quirky = quirky

    def blank(self) -> str:
        """Blanks between tokens: one space, or more (and tabs) in a quirky payload."""
        if self.quirky and self.rng.random() < 0.2:
            return self.rng.choice(("  ", "\t", " \t "))
        return " "

    def labels(self, pairs: list[tuple[str, str]]) -> str:
        rng, quirky = self.rng, self.quirky
        assert not _LINE_BREAK.search("".join(v for _, v in pairs)), pairs
        if not pairs:
            return "{}" if quirky and rng.random() < 0.2 else ""
        if not quirky:
            return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"
        parts = []
        for k, v in pairs:
            eq = rng.choice(("=", "=", " = ", "= "))
            parts.append(f'{k}{eq}"{_escape(v)}"')
        sep = rng.choice((",", ",", ", ", " , "))
        body = sep.join(parts)
        if rng.random() < 0.2:
            body += ","  # a trailing comma
        if rng.random() < 0.2:
            body = " " + body + " "
        return "{" + body + "}"

    def sample(self, name: str, pairs: list[tuple[str, str]], value: str, timestamp: str | None) -> str:
        rng = self.rng
        lead = " " if self.quirky and rng.random() < 0.05 else ""
        between = " " if self.quirky and pairs and rng.random() < 0.05 else ""
        labels = self.labels(pairs)
        blank = self.blank()
        if not labels and blank.startswith("\t"):
            # The faster sample parser datadog-checks-base installs ends a bare name at a space
            # only, so stock V2 reads `name<TAB>value` as an unknown name and drops the sample,
            # where Prometheus (and the fast path) read it: not a difference this test is about.
            blank = " " + blank
        line = f"{lead}{name}{between}{labels}{blank}{value}"
        if timestamp is not None:
            line += self.blank() + timestamp
        if self.quirky and rng.random() < 0.05:
            line += rng.choice((" ", "\t"))
        return line

    def header(self, family: FamilySpec) -> list[str]:
        lines = []
        if family.type_line is not None:
            lines.append(f"# TYPE{self.blank()}{family.name}{self.blank()}{family.type_line}")
        if family.help is not None:
            help_line = f"# HELP {family.name}" + (f" {_escape_help(family.help)}" if family.help else "")
            if family.help_after_type:
                lines.append(help_line)
            else:
                lines.insert(0, help_line)
        return lines

    def series_lines(self, family: FamilySpec, spec: SeriesSpec, values: list[str] | None = None) -> list[str]:
        """The sample lines of one series (with `values` instead of its own, for a duplicate)."""
        values = spec.values if values is None else values
        name, layout, ts = family.name, family.layout, spec.timestamps
        if layout in ("counter", "gauge", "untyped"):
            return [self.sample(name, spec.labels, values[0], ts[0])]

        def with_bound(key: str, bound: str) -> list[tuple[str, str]]:
            return [(key, bound)] + spec.labels if spec.le_first else spec.labels + [(key, bound)]

        if layout == "histogram":
            bounds = spec.bounds + ["+Inf"]
            main = [self.sample(f"{name}_bucket", with_bound("le", b), v, t) for b, v, t in zip(bounds, values, ts)]
        else:
            main = [self.sample(name, with_bound("quantile", q), v, t) for q, v, t in zip(spec.bounds, values, ts)]
        tail = [
            self.sample(f"{name}_sum", spec.labels, values[-2], ts[-2]),
            self.sample(f"{name}_count", spec.labels, values[-1], ts[-1]),
        ]
        return tail + main if spec.sum_count_first else main + tail

    def blocks(self, family: FamilySpec, gen: _Generator) -> list[list[str]]:
        """The family's lines: one block, or two when it is split (each with its own header)."""
        series_lines = [self.series_lines(family, spec) for spec in family.series]
        if family.duplicate is not None:
            spec = family.series[family.duplicate]
            copy = _copy_series(spec)
            if self.rng.random() < 0.5:
                gen.revalue(family, copy)
            series_lines.insert(family.duplicate + 1, self.series_lines(family, copy))
        split = family.split_at
        if split is not None and family.duplicate is not None and family.duplicate < split:
            split += 1
        parts = [series_lines] if split is None else [series_lines[:split], series_lines[split:]]
        blocks = []
        for part in parts:
            block = self.header(family)
            for lines in part:
                block.extend(lines)
            blocks.append(block)
        return blocks


def _lay_out(expo: Exposition, rng: random.Random) -> None:
    """Decide where each family's blocks go, and the blank and comment lines between them."""
    order: list[tuple[int, int]] = [(i, 0) for i in range(len(expo.families))]
    for i, family in enumerate(expo.families):
        if family.split_at is not None:
            start = order.index((i, 0))
            # non-contiguous: at least one other family in between, when there is one
            if start + 2 <= len(order):
                order.insert(rng.randint(start + 2, len(order)), (i, 1))
            else:
                order.append((i, 1))
    expo.order = order
    expo.interludes = {}
    for position in range(len(order) + 1):
        if rng.random() < 0.15:
            expo.interludes[position] = [rng.choice(("", "", "   ") + COMMENTS) for _ in range(rng.randint(1, 2))]


def _assemble(expo: Exposition, blocks: dict[int, list[list[str]]]) -> str:
    """The payload text: each family's blocks where `expo.order` puts them, with the interludes."""
    lines: list[str] = []
    for position, (index, block) in enumerate(expo.order):
        lines.extend(expo.interludes.get(position, ()))
        if block < len(blocks[index]):
            lines.extend(blocks[index][block])
    lines.extend(expo.interludes.get(len(expo.order), ()))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# validation


def _number(token: str) -> str:
    """A sample value as prometheus_client reads it, printed for comparison."""
    try:
        return repr(int(token))
    except ValueError:
        value = float(token)
        return "nan" if math.isnan(value) else repr(value)


def _expected_series(family: FamilySpec) -> list[list[tuple | None]]:
    """What each printed series of a family must read back as: (labels, value) of each of its
    sample lines, in order; None for a line of the duplicate, whose values may be drawn anew."""
    out: list[list[tuple | None]] = []
    for position, spec in enumerate(family.series):
        labels = dict(spec.labels)
        values = spec.values
        if family.layout in ("counter", "gauge", "untyped"):
            out.append([(labels, _number(values[0]))])
        else:
            key = "le" if family.layout == "histogram" else "quantile"
            bounds = spec.bounds + (["+Inf"] if family.layout == "histogram" else [])
            main = [({**labels, key: b}, _number(v)) for b, v in zip(bounds, values)]
            tail = [(labels, _number(values[-2])), (labels, _number(values[-1]))]
            out.append(tail + main if spec.sum_count_first else main + tail)
        if position == family.duplicate:
            out.append([None] * len(_Generator.lines_of(family.layout, spec)))
    return out


def _expected_blocks(family: FamilySpec) -> list[list[tuple | None]]:
    """The expected samples of each block of a family (split as `_Printer.blocks` splits it)."""
    series = _expected_series(family)
    split = family.split_at
    if split is not None and family.duplicate is not None and family.duplicate < split:
        split += 1
    parts = [series] if split is None else [series[:split], series[split:]]
    return [[sample for chunk in part for sample in chunk] for part in parts]


def _parsed(text: str) -> list[tuple] | None:
    try:
        return [
            (dict(sample.labels), "nan" if math.isnan(sample.value) else repr(sample.value))
            for metric in text_string_to_metric_families(text)
            for sample in metric.samples
        ]
    except Exception:  # noqa: BLE001 - whatever the parser raises, the text is not well formed
        return None


def _matches(expected: list[tuple | None], parsed: list[tuple] | None) -> bool:
    if parsed is None or len(parsed) != len(expected):
        return False
    return all(e is None or e == p for e, p in zip(expected, parsed))


def _reads_back(family: FamilySpec, blocks: list[list[str]]) -> bool:
    """Whether prometheus_client parses the family's blocks into exactly the samples it was built from."""
    text = "\n".join(line for block in blocks for line in block) + "\n"
    expected = [sample for block in _expected_blocks(family) for sample in block]
    return _matches(expected, _parsed(text))


def _payload_reads_back(expo: Exposition, text: str) -> bool:
    expected = {i: _expected_blocks(family) for i, family in enumerate(expo.families)}
    flat = [sample for index, block in expo.order if block < len(expected[index]) for sample in expected[index][block]]
    return _matches(flat, _parsed(text))


def _finish(expo: Exposition, gen: _Generator, identifiable: bool) -> None:
    """Print the payload, rebuilding (then dropping) a family that does not read back, and pad it."""
    printer = _Printer(gen.rng, expo.quirky)
    blocks = {index: printer.blocks(family, gen) for index, family in enumerate(expo.families)}
    text = _assemble(expo, blocks)
    if not _payload_reads_back(expo, text):
        # Find the offending families one by one: rebuild each a few times, then drop it.
        for index in range(len(expo.families)):
            family = expo.families[index]
            for _ in range(3):
                if _reads_back(family, blocks[index]):
                    break
                if family.row is not None:
                    family = gen.mapped_family(family.row)
                else:
                    family = gen.unmapped_family(expo.families)
                expo.families[index] = family
                blocks[index] = printer.blocks(family, gen)
            else:
                family.series, family.type_line, family.help = [], None, None
                family.split_at = family.duplicate = None
                blocks[index] = [[]]
                expo.dropped += 1
        _lay_out_keep(expo)  # a rebuilt family may be split where it was not, or the reverse
        text = _assemble(expo, blocks)
    if identifiable:
        for attempt in range(5):
            if identify(text.split("\n"), COMPONENTS) == expo.component:
                break
            votes = _votes(text)
            deficit = max(votes.values(), default=0) - votes.get(expo.component, 0)
            padding = gen.padding_family(attempt, deficit + 2)
            expo.families.append(padding)
            blocks[len(expo.families) - 1] = printer.blocks(padding, gen)
            expo.order.append((len(expo.families) - 1, 0))
            text = _assemble(expo, blocks)
    if not _payload_reads_back(expo, text):
        raise AssertionError(f"generated payload does not read back as built:\n{text}")
    expo.text = text


def _lay_out_keep(expo: Exposition) -> None:
    """Fix the layout after families were rebuilt: every split family has exactly one second block."""
    order = [(i, b) for i, b in expo.order if b == 0 or expo.families[i].split_at is not None]
    for i, family in enumerate(expo.families):
        if family.split_at is not None and (i, 1) not in order:
            order.append((i, 1))
    expo.order = order


def _votes(text: str) -> dict[str, int]:
    from cilium_check.detect import votes

    return dict(votes(text.split("\n")))
