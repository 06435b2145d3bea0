"""The OpenMetrics V2 scraper as the check uses it for one Cilium component."""

from __future__ import annotations

import re
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper
from datadog_checks.base.constants import ServiceCheck
from prometheus_client import Metric

from .body import TOO_LONG, BodyLimits, BodyReader, Truncated, cancel_reading
from .cardinality import ContextGuard, sum_labels_away
from .endpoints import describe, raise_described, redact
from .restarts import CounterHold
from .transformers import CiliumMetricTransformer
from .tags import COMPONENT_TAG
from .self_metrics import CONTEXTS, CONTEXTS_DROPPED, LINES_SKIPPED

FIRST_LINE_CHARS = 80
VALID_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
LEGACY_HEALTH = "prometheus.health"  # the bundled check's V1 health service check, under the namespace
EXPECTED_MEDIA_TYPES = ("", "text/plain", "application/openmetrics-text")


class ScrapeProblem(Exception):
    """The endpoint answered, but not with metrics; the message says what it served."""


class CiliumScraper(OpenMetricsScraper):
    """A V2 scraper for one component's endpoint.

    On top of the stock scraper it reads the body within bounds (size, line length, time), says
    in its health check what went wrong and where, sums away labels with no upper bound, prefers
    a renamed family's successor when a release exposes both, and keeps the endpoint's contexts
    within its budget.
    """

    def __init__(
        self,
        check: Any,
        config: Mapping[str, Any],
        *,
        component: str = "",
        max_contexts: int = 0,
        sum_away: frozenset[str] = frozenset(),
        superseded: dict[str, str] | None = None,
        legacy: bool = False,
        start_time_family: str = "",
    ):
        self.agent_check = check  # where submissions go; the stock code submits through the guard
        self.counter_hold = CounterHold()
        self.guard = ContextGuard(check, max_contexts, self.counter_hold)
        # The stock scraper builds a metric transformer from the configuration's metrics, and would
        # refuse the legacy types: it gets none, and the transformer that knows them replaces it.
        super().__init__(self.guard, ChainMap({"metrics": [], "extra_metrics": []}, config))
        self.metric_transformer = CiliumMetricTransformer(self.guard, config)
        self.legacy = legacy
        if legacy:
            # The bundled check's V1 mode: `cilium.prometheus.health`, tagged with the URL, while the
            # metrics carry no `endpoint` tag (the configuration sets `tag_by_endpoint: false`).
            self.SERVICE_CHECK_HEALTH = LEGACY_HEALTH
        self.sum_away = sum_away
        self.superseded = superseded or {}
        self.warned_about_contexts = False
        self.display_url = redact(self.endpoint)
        if self.display_url != self.endpoint:
            # Credentials in the URL never reach a tag.
            self.static_tags = tuple(
                f"endpoint:{self.display_url}" if t == f"endpoint:{self.endpoint}" else t for t in self.static_tags
            )
            self.tags = self.static_tags
        # The check's own metrics always say which component and URL they are about.
        own = [f"{COMPONENT_TAG}:{component}", f"endpoint:{self.display_url}"] if component else []
        self.own_tags = [*dict.fromkeys([*self.static_tags, *own])]
        self.limits = BodyLimits.from_config(config)
        # Counter accounting across outages (`cilium_check.restarts`).
        self.start_time_family = start_time_family
        self.start_time: float | None = None  # the process start time at the last good scrape
        self.restarted: bool | None = None  # whether the last good scrape found the process restarted
        self.restart_hint: Callable[[], bool | None] | None = None  # for a component without a start time
        self.had_good_scrape = False
        self.failed_since_good = False
        self.warned_content_type = False
        self.started = time.monotonic()
        self.reset_run()

    def reset_run(self) -> None:
        self.lines_skipped = 0  # malformed or over-long lines of the last payload
        self.first_offender: tuple[int, str] = (0, "")
        self.samples = 0  # sample lines read (the fast path counts them; the stock one counts families)
        self.partial: str | None = None  # why the body was cut short, if it was
        self.payload_size_pending = False
        self.first_line = ""
        self.content_type = ""
        self.connected = False
        self.reader: BodyReader | None = None
        self.seen_start_time: float | None = None  # the process start time in this payload

    # -- the request and the health verdict ------------------------------------------------------

    def send_request(self, **kwargs):
        """The stock request, with its failures described in a user's words.

        The stock `get_connection` reports `str(error)` as the health message; raising the same kind
        of error with a message that says what to check keeps its logic and its `except` clauses.
        """
        self.started = time.monotonic()
        try:
            response = super().send_request(**kwargs)
        except Exception as e:
            self.agent_check.refresh_secrets()
            raise_described(e, self.http, self.limits.timeout)
        # A rotated token the request just sent is scrubbed from whatever the answer says.
        self.agent_check.refresh_secrets()
        try:
            response.raise_for_status()
        except Exception as e:
            response.close()
            raise_described(e, self.http, self.limits.timeout)
        return response

    def submit_health_check(self, status, **kwargs):
        # The stock scraper reports OK as soon as the headers arrive; this one gives its verdict
        # once the body is read (WARNING if it was cut short or had bad lines): `report_health`.
        if status != ServiceCheck.OK:
            self.report_health(status, kwargs.get("message"))

    def submit_telemetry_endpoint_response_size(self, response):
        # Without a Content-Length the stock method measures `response.content`, which reads the
        # whole body past the body limits and leaves nothing to parse: the size is then reported
        # once the bounded reader has read the body (`report_payload_size`). With `telemetry` off
        # the stock scraper has already replaced this method by a no-op on the instance.
        if response.headers.get("Content-Length") is not None:
            super().submit_telemetry_endpoint_response_size(response)
        else:
            self.payload_size_pending = True

    def report_payload_size(self) -> None:
        if self.payload_size_pending and self.reader is not None:
            self.gauge("telemetry.payload.size", self.reader.bytes_read, tags=self.tags)
        self.payload_size_pending = False

    def report_health(self, status: int, message: str | None = None) -> None:
        """The endpoint's health service check; a message always starts with the URL it is about."""
        if status != ServiceCheck.OK and message and not message.startswith(self.display_url):
            message = f"{self.display_url}: {message}"
        if not self.enable_health_service_check:
            return
        tags = [f"endpoint:{self.display_url}", *self.static_tags] if self.legacy else self.static_tags
        self.service_check(self.SERVICE_CHECK_HEALTH, status, tags=tags, **({"message": message} if message else {}))

    def body(self, response) -> BodyReader:
        """The lines of a response, read within this endpoint's limits."""
        self.connected = True
        self.content_type = response.headers.get("Content-Type", "")
        media_type = self.content_type.split(";")[0].strip().lower()
        if media_type not in EXPECTED_MEDIA_TYPES and not self.warned_content_type:
            self.warned_content_type = True
            self.log.info(
                "%s answers with Content-Type %r; reading it as the Prometheus text format",
                self.display_url,
                self.content_type,
            )
        self.reader = self.limits.reader(response, self.started)
        return self.reader

    def skip_line(self, number: int, text: str, why: str) -> None:
        """Count a line that could not be used; the first one is logged with its number."""
        self.lines_skipped += 1
        if self.lines_skipped == 1:
            self.first_offender = (number, text[:FIRST_LINE_CHARS])
            where = f"line {number}" if number else "a sample"
            self.log.warning("%s: skipping malformed %s (%s): %r", self.display_url, where, why, text[:FIRST_LINE_CHARS])

    def stream_connection_lines(self):
        """The stock parser's input: the body's lines, within bounds, over-long lines skipped."""
        with self.get_connection() as connection:
            reader = self.body(connection)
            self._content_type = self.content_type  # the stock parser picks its format by it
            try:
                for line in reader:
                    if line is TOO_LONG:
                        self.skip_line(self.reader.lines, "", f"longer than max_line_length ({self.limits.max_line_length})")
                        continue
                    if not self.first_line and line.strip():
                        self.first_line = line.strip()[:FIRST_LINE_CHARS]
                    yield line
            except Truncated as e:
                # A body cut short ends the exposition there: what was read is a scrape like any
                # other (reported WARNING), not a failure of the stock scraper.
                self.partial = e.reason

    def not_metrics(self) -> ScrapeProblem:
        """What to say about a 200 answer that held no sample at all."""
        if self.reader is not None and self.reader.bytes_read == 0:
            return ScrapeProblem("answered HTTP 200 with an empty body")
        first = self.first_line or (self.first_offender[1] if self.first_offender[0] else "")
        return ScrapeProblem(
            f"answered HTTP 200 but served no Prometheus metrics "
            f"(Content-Type: {self.content_type or 'none'}; first line: {first!r})"
        )

    # -- the scrape ---------------------------------------------------------------------------

    def scrape(self):
        self.guard.start()
        self.reset_run()
        recovering = self.failed_since_good
        if recovering:
            self.counter_hold.start()
        try:
            self.read_and_judge()
        except BaseException:
            # The stock behaviour for what was read of a failed scrape: no first value flushed.
            self.counter_hold.release(False)
            self.failed_since_good = self.had_good_scrape
            raise
        restarted = self.restart_verdict()
        if recovering:
            self.counter_hold.release(bool(restarted))
        self.restarted = restarted
        if self.seen_start_time is not None:
            self.start_time = self.seen_start_time
        self.had_good_scrape, self.failed_since_good = True, False

    def restart_verdict(self) -> bool | None:
        """Whether the process restarted since the last good scrape; None when nothing tells."""
        if self.seen_start_time is not None and self.start_time is not None:
            return self.seen_start_time != self.start_time
        if self.restart_hint is not None:
            return self.restart_hint()
        return None

    def read_and_judge(self) -> None:
        """One scrape, then its health verdict: OK, WARNING (part of it lost) or CRITICAL (raised)."""
        try:
            try:
                super().scrape()
            except Truncated as e:
                self.partial = e.reason
            except Exception as e:
                if self.connected:
                    # The body failed us after the headers were fine; the stock parser raises on the
                    # first bad line, and an HTML or JSON page is not metrics at all.
                    problem = e if isinstance(e, ScrapeProblem) else None
                    if problem is None and isinstance(e, ValueError | KeyError | IndexError):
                        # prometheus_client's own words ("substring not found") do not say where.
                        problem = self.not_metrics() if not self.samples else ScrapeProblem(
                            f"the stock parser (`fast_path: false`) stopped at a malformed line ({e!r}) after "
                            f"{self.samples} samples; the fast path skips such lines and keeps the rest"
                        )
                    self.report_health(ServiceCheck.CRITICAL, str(problem or describe(e, self.limits.timeout)))
                    if problem is not None and problem is not e:
                        raise problem from None
                raise
        finally:
            self.report_payload_size()
            self.report_contexts()
        empty = self.reader is not None and self.reader.bytes_read == 0
        if self.partial is None and not self.samples and (self.lines_skipped or empty):
            problem = self.not_metrics()
            self.flush_first_value = False
            self.report_health(ServiceCheck.CRITICAL, str(problem))
            raise problem
        invalid = self.reader.invalid_bytes if self.reader is not None else 0
        if self.partial is not None:
            self.report_health(ServiceCheck.WARNING, self.partial)
        elif invalid:
            self.report_health(
                ServiceCheck.WARNING,
                f"the payload held {invalid} byte(s) that are not UTF-8, shown as U+FFFD in the tags",
            )
        elif self.lines_skipped:
            number, text = self.first_offender
            self.report_health(
                ServiceCheck.WARNING,
                f"skipped {self.lines_skipped} malformed line(s); the first, "
                f"{f'line {number}' if number else 'a sample'}: {text!r}",
            )
        else:
            self.report_health(ServiceCheck.OK)
        self.agent_check.gauge(LINES_SKIPPED.name.removeprefix("cilium."), self.lines_skipped, tags=self.own_tags)

    def cancel(self) -> None:
        """Stop a scrape in flight (from the Agent's thread) and let go of the connection."""
        cancel_reading(self.reader, self.http)

    def yield_metrics(self, runtime_data: dict) -> Iterator[Metric]:
        held: dict[str, Metric] = {}
        present: set[str] = set()
        for metric in super().yield_metrics(runtime_data):
            self.samples += len(metric.samples)
            metric.samples = self.usable_samples(metric)
            if metric.name == self.start_time_family and metric.samples:
                self.seen_start_time = metric.samples[0].value
            if self.sum_away:
                metric.samples = sum_labels_away(metric.samples, self.sum_away)
            successor = self.superseded.get(metric.name)
            if successor is not None:
                # Families are sorted by name, so the successor may come later: hold this one.
                if successor not in present:
                    held[metric.name] = metric
                continue
            present.add(metric.name)
            yield metric
        for name, metric in held.items():
            if self.superseded[name] not in present:
                yield metric

    def usable_samples(self, metric: Metric) -> list:
        """The samples the stock parser read that can be submitted; the others are skipped and
        counted like bad lines: a label name that is not one (datadog-checks-base's faster sample
        parser reads the text after an exemplar's `#` as labels), and a histogram bucket without
        `le` (the stock transformer fails on it, which would end the scrape)."""
        kept = []
        histogram = metric.type == "histogram"
        for sample in metric.samples:
            why = ""
            if not all(VALID_LABEL.match(name) for name in sample.labels):
                why = "text that is not a label (an exemplar is not part of the Prometheus text format)"
            elif histogram and sample.name.endswith("_bucket") and "le" not in sample.labels:
                why = "a histogram bucket without an `le` label"
            if why:
                self.skip_line(0, f"{sample.name}{{...}} {sample.value}", why)
                continue
            kept.append(sample)
        return kept

    def report_contexts(self) -> None:
        """Submit the scrape's context counts, and warn once when the budget was exceeded."""
        guard, check = self.guard, self.agent_check
        if not guard.seen and not guard.dropped:
            return
        check.gauge(CONTEXTS.name.removeprefix("cilium."), len(guard.seen), tags=self.own_tags)
        check.gauge(CONTEXTS_DROPPED.name.removeprefix("cilium."), guard.dropped, tags=self.own_tags)
        if guard.dropped and not self.warned_about_contexts:
            self.warned_about_contexts = True
            check.warning(
                "%s exposes %d contexts, more than its max_contexts of %d: the check submitted the first %d and "
                "dropped %d. Raise `max_contexts` for this component, or narrow the Cilium metrics it exposes "
                "(for Hubble: fewer `hubble.metrics.enabled` context options).",
                self.display_url,
                len(guard.seen) + guard.dropped,
                guard.limit,
                len(guard.seen),
                guard.dropped,
            )
