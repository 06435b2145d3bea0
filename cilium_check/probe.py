"""Telling which Cilium component a URL serves, from the first lines of its payload."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from logging import Logger
from typing import Any

from datadog_checks.base.utils.http import RequestsWrapper

from .body import BodyLimits, BodyReader, Truncated, cancel_reading
from .components import BY_NAME
from .detect import identify, looks_like_sample
from .endpoints import WrongComponent, raise_described

# Enough of a payload to tell which component serves it (Cilium sorts families by name).
PROBE_LINES = 20000


class Prober:
    """Probes candidate URLs with the instance's HTTP options and body limits."""

    def __init__(
        self,
        options: Mapping[str, Any],
        init_config: Mapping[str, Any],
        remapper: dict,
        log: Logger,
        after_request: Callable[[], None] | None = None,
    ):
        self.http = RequestsWrapper(options, init_config, remapper, log)
        self.after_request = after_request or (lambda: None)
        self.limits = BodyLimits.from_config(options)
        self.reading: BodyReader | None = None

    def cancel(self) -> None:
        """Stop a probe in flight (from the Agent's thread) and let go of its connections."""
        cancel_reading(self.reading, self.http)

    def __call__(self, url: str) -> str:
        """The name of the component `url` serves; raises saying why it serves none."""
        started = time.monotonic()
        try:
            response = self.http.get(url, stream=True)
            response.raise_for_status()
        except Exception as e:
            self.after_request()
            raise_described(e, self.http, self.limits.timeout)
        self.after_request()
        with response:
            response.encoding = response.encoding or "utf-8"
            reader = self.limits.reader(response, started)
            self.reading = reader
            seen = {"first": "", "samples": 0, "cut": ""}

            def lines() -> Iterator[str]:
                try:
                    for line in itertools.islice(reader, PROBE_LINES):
                        if line is None:
                            continue
                        stripped = line.strip()
                        if stripped and not seen["first"]:
                            seen["first"] = stripped[:80]
                        if looks_like_sample(stripped):
                            seen["samples"] += 1
                        yield line
                except Truncated as e:
                    # Enough may have been read to tell the component; the scrape reports the cut.
                    seen["cut"] = e.reason

            try:
                name = identify(lines(), BY_NAME)
            finally:
                self.reading = None
        if name is not None:
            return name
        if seen["cut"] and not seen["samples"]:
            raise WrongComponent(seen["cut"])
        if reader.bytes_read == 0:
            raise WrongComponent("answered HTTP 200 with an empty body")
        if not seen["samples"]:
            content_type = response.headers.get("Content-Type", "none")
            raise WrongComponent(
                f"answered HTTP 200 but served no Prometheus metrics "
                f"(Content-Type: {content_type}; first line: {seen['first']!r})"
            )
        raise WrongComponent("serves Prometheus metrics, but none of Cilium's")
