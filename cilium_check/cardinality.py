"""Keeping one endpoint's contexts within a budget, and summing unbounded labels away."""

from __future__ import annotations

from typing import Any

from prometheus_client.samples import Sample


class ContextGuard:
    """Stands in for the check in one scraper's transformers: counts the contexts each scrape
    submits and, past `limit` (0: no limit), drops the rest.

    Everything but the submission methods is forwarded to the check.
    """

    def __init__(self, check: Any, limit: int, hold: Any = None):
        self._check = check
        self.limit = limit
        self.hold = hold  # a `restarts.CounterHold`: monotonic counts of a recovery scrape wait in it
        self.seen: set[int] = set()
        self.rejected: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._check, name)

    @property
    def dropped(self) -> int:
        return len(self.rejected)

    def start(self) -> None:
        self.seen = set()
        self.rejected = set()

    def _admit(self, key: tuple) -> bool:
        # The fast path keeps the same per-run set, keyed by the hash of the same tuple.
        context = hash(key)
        if context in self.seen:
            return True
        if self.limit and len(self.seen) >= self.limit:
            self.rejected.add(context)
            return False
        self.seen.add(context)
        return True

    def gauge(self, name, value, tags=None, hostname=None, **kwargs):
        if self._admit((name, tuple(tags or ()), hostname)):
            self._check.gauge(name, value, tags=tags, hostname=hostname, **kwargs)

    def count(self, name, value, tags=None, hostname=None, **kwargs):
        if self._admit((name, tuple(tags or ()), hostname)):
            self._check.count(name, value, tags=tags, hostname=hostname, **kwargs)

    def monotonic_count(self, name, value, tags=None, hostname=None, **kwargs):
        if self._admit((name, tuple(tags or ()), hostname)):
            if self.hold is not None and self.hold.holding:
                self.hold.hold_call(self._check.monotonic_count, name, value, tags, hostname, kwargs)
            else:
                self._check.monotonic_count(name, value, tags=tags, hostname=hostname, **kwargs)

    def rate(self, name, value, tags=None, hostname=None, **kwargs):
        if self._admit((name, tuple(tags or ()), hostname)):
            self._check.rate(name, value, tags=tags, hostname=hostname, **kwargs)

    def histogram(self, name, value, tags=None, hostname=None, **kwargs):
        if self._admit((name, tuple(tags or ()), hostname)):
            self._check.histogram(name, value, tags=tags, hostname=hostname, **kwargs)

    def submit_histogram_bucket(self, name, value, lower_bound, upper_bound, monotonic, hostname, tags, *a, **kw):
        if self._admit((name, tuple(tags or ()), hostname, lower_bound, upper_bound)):
            self._check.submit_histogram_bucket(name, value, lower_bound, upper_bound, monotonic, hostname, tags, *a, **kw)


def sum_labels_away(samples: list[Sample], labels: frozenset[str]) -> list[Sample]:
    """The samples with `labels` removed, summing those that become identical.

    Counters, histogram buckets, sums and counts stay exact (a sum over pods or IPs is the
    workload's total); the order of first appearance is kept, so histogram buckets stay in order.
    """
    if not any(labels.intersection(sample.labels) for sample in samples):
        return samples
    merged: dict[tuple, list] = {}
    for sample in samples:
        kept = {k: v for k, v in sample.labels.items() if k not in labels}
        key = (sample.name, tuple(sorted(kept.items())))
        entry = merged.get(key)
        if entry is None:
            merged[key] = [sample.name, kept, sample.value, sample.timestamp, sample.exemplar]
        else:
            entry[2] += sample.value
    return [Sample(*entry) for entry in merged.values()]
