"""The OpenMetrics V2 scraper as the check uses it for one Cilium component."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper
from datadog_checks.base.constants import ServiceCheck
from prometheus_client import Metric

from .cardinality import ContextGuard, sum_labels_away
from .self_metrics import CONTEXTS, CONTEXTS_DROPPED, LINES_SKIPPED


class CiliumScraper(OpenMetricsScraper):
    """A V2 scraper for one component's endpoint.

    On top of the stock scraper it names the endpoint in its health messages, sums away labels
    with no upper bound, prefers a renamed family's successor when a release exposes both, and
    keeps the endpoint's contexts within its budget.
    """

    def __init__(
        self,
        check: Any,
        config: dict[str, Any],
        *,
        max_contexts: int = 0,
        sum_away: frozenset[str] = frozenset(),
        superseded: dict[str, str] | None = None,
    ):
        self.guard = ContextGuard(check, max_contexts)
        super().__init__(self.guard, config)
        self.sum_away = sum_away
        self.superseded = superseded or {}
        self.warned_about_contexts = False
        self.lines_skipped = 0  # malformed lines of the last payload (the stock parser stops at the first)

    def submit_health_check(self, status, **kwargs):
        message = kwargs.get("message")
        if status != ServiceCheck.OK and message and self.endpoint not in message:
            kwargs["message"] = f"{self.endpoint}: {message}"
        super().submit_health_check(status, **kwargs)

    def yield_metrics(self, runtime_data: dict) -> Iterator[Metric]:
        held: dict[str, Metric] = {}
        present: set[str] = set()
        for metric in super().yield_metrics(runtime_data):
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

    def scrape(self):
        self.guard.start()
        self.lines_skipped = 0
        try:
            super().scrape()
        finally:
            self.report_contexts()
        self.guard._check.gauge(LINES_SKIPPED.name.removeprefix("cilium."), self.lines_skipped, tags=self.tags)

    def report_contexts(self) -> None:
        """Submit the scrape's context counts, and warn once when the budget was exceeded."""
        guard, check = self.guard, self.guard._check
        if not guard.seen and not guard.dropped:
            return
        check.gauge(CONTEXTS.name.removeprefix("cilium."), len(guard.seen), tags=self.tags)
        check.gauge(CONTEXTS_DROPPED.name.removeprefix("cilium."), guard.dropped, tags=self.tags)
        if guard.dropped and not self.warned_about_contexts:
            self.warned_about_contexts = True
            check.warning(
                "%s exposes %d contexts, more than its max_contexts of %d: the check submitted the first %d and "
                "dropped %d. Raise `max_contexts` for this component, or narrow the Cilium metrics it exposes "
                "(for Hubble: fewer `hubble.metrics.enabled` context options).",
                self.endpoint,
                len(guard.seen) + guard.dropped,
                guard.limit,
                len(guard.seen),
                guard.dropped,
            )
