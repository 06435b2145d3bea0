"""Counter accounting on the first good scrape after a failed one: no spike, no lost interval.

The Agent turns a monotonic count into the difference with the previous sample of the same
context, which it keeps for 25 hours (`check_sampler_stateful_metric_expiration_time`). A sample
lower than the previous one is dropped, unless the submission says `flush_first_value`: then the
Agent takes the counter for one that restarted from 0 and counts its whole value.

The stock scraper sends `flush_first_value=False` on the first good scrape after a failure, in case
the Agent has lost the previous sample: no spike, but when Cilium restarted during the outage, the
counts since the restart are dropped. Whether it restarted is known once the payload's process
start time is read, which comes after most counters (families are sorted by name). So on that one
scrape the scraper holds its monotonic submissions back, reads the start time, and then sends them:
with `flush_first_value` if the process restarted (the Agent counts what it counted since), without
if it did not (the Agent counts the difference with the sample it kept, which covers the outage).
Components without a start time of their own (Hubble runs in the agent) take the verdict of the
instance's agent; with neither, the stock behaviour remains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CounterHold:
    """Monotonic submissions held back during a recovery scrape, then sent with the verdict's flag."""

    def __init__(self) -> None:
        self.held: list[tuple] | None = None  # None: not holding

    @property
    def holding(self) -> bool:
        return self.held is not None

    def start(self) -> None:
        self.held = []

    def wrap(self, submit_metric: Callable, monotonic: int) -> Callable:
        """The aggregator's `submit_metric`, holding back monotonic counts (the fast path's route)."""
        held = self.held

        def submit(check, check_id, mtype, name, value, tags, hostname, flush_first_value):
            if mtype == monotonic:
                held.append((submit_metric, check, check_id, mtype, name, value, tags, hostname))
            else:
                submit_metric(check, check_id, mtype, name, value, tags, hostname, flush_first_value)

        return submit

    def hold_call(self, monotonic_count: Callable, name: str, value: float, tags: Any, hostname: Any, kwargs: dict):
        """A `check.monotonic_count` call of a stock transformer, held back."""
        self.held.append((monotonic_count, name, value, tags, hostname, kwargs))

    def release(self, flush_first_value: bool) -> int:
        """Send what was held, every counter with `flush_first_value`; how many there were."""
        held, self.held = self.held or [], None
        for item in held:
            if len(item) == 8:
                submit_metric, check, check_id, mtype, name, value, tags, hostname = item
                submit_metric(check, check_id, mtype, name, value, tags, hostname, flush_first_value)
            else:
                monotonic_count, name, value, tags, hostname, kwargs = item
                monotonic_count(name, value, tags=tags, hostname=hostname, **{**kwargs, "flush_first_value": flush_first_value})
        return len(held)
