"""Finding the URL that serves a component's metrics among the candidates an option lists.

An endpoint option holds one URL or a list of candidates (say 9962, 9090 and 9990 for the
agent). The check probes them in order, keeps the first that answers with that component's
metrics, and probes again only once it stops answering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import requests

from .components import Component
from .detect import identify

# A failing endpoint is reported (raised, hence logged by the Agent) at its first failing run
# and then once every this many runs, not at every run: its CRITICAL service check carries
# the news meanwhile.
REPORT_EVERY = 10


def describe(error: BaseException, timeout: float | None = None) -> str:
    """Why a request failed, in the words a user acts on."""
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS error: {error}"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connection timed out" + (f" after {timeout:g}s" if timeout else "")
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "no answer" + (f" within {timeout:g}s" if timeout else "")
    if isinstance(error, requests.exceptions.ConnectionError):
        text = str(error)
        if "Connection refused" in text:
            return "connection refused (nothing listens on that port)"
        if "Name or service not known" in text or "NameResolutionError" in text or "nodename nor servname" in text:
            return "the host name does not resolve"
        return f"connection failed: {text}"
    if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}".strip()
    return str(error)


class WrongComponent(Exception):
    """The URL answers with metrics, but not those of the component the option is for."""


@dataclass
class Endpoint:
    """One endpoint option of an instance: its candidates and the URL that answers."""

    option: str
    candidates: list[str]
    component: Component | None  # None: any component, recognised from what the URL serves
    optional: bool = False  # its absence is normal (Hubble with metrics off): no CRITICAL, no error
    current: str | None = None  # the candidate that answered last
    detected: Component | None = None  # the component `current` serves
    failing_runs: int = 0  # consecutive runs without a successful scrape
    tried: list[tuple[str, str]] = field(default_factory=list)  # (url, why) of the last failed probe

    @property
    def health_url(self) -> str:
        """The URL the health service check names: the one in use, else the preferred candidate."""
        return self.current or self.candidates[0]

    def should_report(self) -> bool:
        """Whether this run's failure is raised and logged (first failure, then every tenth)."""
        return self.failing_runs % REPORT_EVERY == 1

    def resolve(
        self,
        fetch_lines: Callable[[str], Iterable[str]],
        known: dict[str, Component],
        taken: set[str],
        timeout: float | None = None,
    ) -> Component | None:
        """Probe the candidates in order; remember and return the component of the first that fits."""
        self.tried = []
        for url in self.candidates:
            if url in taken:
                self.tried.append((url, "already scraped for another option of this instance"))
                continue
            try:
                name = identify(fetch_lines(url), known)
                if name is None:
                    raise WrongComponent("answers, but serves no Cilium metrics")
                component = known[name]
                if self.component is not None and component.name != self.component.name:
                    raise WrongComponent(f"serves the Cilium {component.name}, not the {self.component.name}")
            except Exception as e:  # each candidate's failure is recorded; the next one is tried
                self.tried.append((url, describe(e, timeout)))
                continue
            self.current, self.detected = url, component
            return component
        self.current = self.detected = None
        return None

    def failure_message(self) -> str:
        """One error naming every URL tried, why each failed, and what turns the endpoint on."""
        what = f"Cilium {self.component.name} metrics" if self.component else "Cilium metrics"
        hint = (
            f" Cilium serves them when its Helm values set `{self.component.helm_value}`"
            f" (port {self.component.port} since Cilium 1.12)."
            if self.component
            else ""
        )
        if len(self.tried) == 1:
            (url, why), = self.tried
            return f"`{self.option}`: {url} does not serve {what}: {why}.{hint}"
        tried = "; ".join(f"{url} ({why})" for url, why in self.tried)
        return f"`{self.option}`: none of the {len(self.tried)} candidate URLs serves {what}: {tried}.{hint}"
