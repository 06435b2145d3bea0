"""Finding the URL that serves a component's metrics among the candidates an option lists.

An endpoint option holds one URL or a list of candidates (say 9962, 9090 and 9990 for the
agent). The check probes them in order, keeps the first that answers with that component's
metrics, and probes again only once it stops answering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import requests

from .components import Component

# A failing endpoint is reported (raised, hence logged by the Agent) at its first failing run
# and then once every this many runs, not at every run: its CRITICAL service check carries
# the news meanwhile.
REPORT_EVERY = 10


HTTP_HINTS = {
    401: "check the credentials (`auth_token`, `username`/`password`, `headers`)",
    403: "the credentials are not allowed to read the metrics (check `auth_token` and the RBAC of the proxy)",
    404: "is the path /metrics?",
    407: "the proxy wants credentials (`proxy`)",
    429: "the endpoint is rate limiting the check (raise `min_collection_interval`)",
}


def redact(url: str) -> str:
    """The URL without what may be a credential (the userinfo, the query's values), for tags,
    messages and logs."""
    try:
        parts = urlsplit(url)
        username, password, port = parts.username, parts.password, parts.port
    except ValueError:
        return "(an unparsable URL)"
    if not parts.netloc and "@" in url:
        return f"{parts.scheme}:***"  # userinfo where no host is: it may still be a credential
    if username is None and password is None and not parts.query:
        return url
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    netloc = f"***@{host}" if username is not None or password is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", parts.fragment))


def plain_http_behind_https(error: BaseException) -> bool:
    """Whether a TLS handshake failed because the server answered in plain HTTP."""
    text = str(error)
    return any(sign in text for sign in ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure"))


def nothing_listens(error: BaseException) -> bool:
    """Whether a request failed because nothing listens on the port (the endpoint is not turned on)."""
    return isinstance(error, requests.exceptions.ConnectionError) and "Connection refused" in str(error)


def describe(error: BaseException, timeout: float | None = None) -> str:
    """Why a request failed, in the words a user acts on."""
    if getattr(error, "described", False):
        return str(error)
    if isinstance(error, requests.exceptions.SSLError):
        text = str(error)
        if plain_http_behind_https(error):
            return "TLS error: the endpoint answers in plain HTTP, not TLS: use an http:// URL"
        reason = "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in text else "handshake failed"
        hint = (
            "; set `tls_ca_cert` to the CA that signed the endpoint's certificate"
            if "verify failed" in reason
            else "; check `tls_cert`/`tls_private_key` if the endpoint requires a client certificate"
        )
        detail = text.split("(Caused by ")[-1].rstrip(")") if "(Caused by " in text else text
        return f"TLS error: {reason}{hint} ({detail})"
    if isinstance(error, requests.exceptions.TooManyRedirects):
        return "too many redirects (the endpoint redirects in a loop)"
    if isinstance(error, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return f"the connection broke while reading the body: {error}"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connection timed out" + (f" after {timeout:g}s" if timeout else "")
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "no answer" + (f" within {timeout:g}s" if timeout else "")
    if isinstance(error, requests.exceptions.ConnectionError):
        text = str(error)
        if nothing_listens(error):
            return "connection refused (nothing listens on that port)"
        if "Name or service not known" in text or "NameResolutionError" in text or "nodename nor servname" in text:
            return "the host name does not resolve"
        return f"connection failed: {text}"
    if isinstance(error, requests.exceptions.HTTPError) and error.response is not None:
        code = error.response.status_code
        status = f"HTTP {code} {error.response.reason or ''}".strip()
        hint = HTTP_HINTS.get(code) or ("a server error on the Cilium side" if code >= 500 else "")
        return f"{status}: {hint}" if hint else status
    return str(error)


def raise_described(error: BaseException, http: Any = None, timeout: float | None = None) -> NoReturn:
    """Raise `error` again as the same kind of exception, its message in a user's words.

    The stock scraper reports `str(error)` in its health service check; a `requests` error's text
    names urllib3's internals (and the URL, credentials included). Raising the same type keeps
    every `except` clause of the base library working.
    """
    if isinstance(error, requests.exceptions.SSLError) and http is not None:
        # The base library chases the certificate chain (AIA) after a TLS failure and logs an
        # ERROR when that fails: once is news, at every run it is noise.
        http.aia_chasing_max_depth = 0
    if not isinstance(error, requests.exceptions.RequestException) or getattr(error, "described", False):
        raise error
    described = type(error)(describe(error, timeout), request=error.request, response=error.response)
    described.described = True
    described.nothing_listens = nothing_listens(error)
    raise described from None


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
    nothing_listens: bool = False  # the last probe found no server on some candidate: is it turned on?

    @property
    def health_url(self) -> str:
        """The URL the health service check names: the one in use, else the preferred candidate."""
        return redact(self.current or self.candidates[0])

    def should_report(self) -> bool:
        """Whether this run's failure is raised and logged (first failure, then every tenth)."""
        return self.failing_runs % REPORT_EVERY == 1

    def resolve(
        self,
        probe: Callable[[str], str],
        known: dict[str, Component],
        taken: set[str],
        timeout: float | None = None,
    ) -> Component | None:
        """Probe the candidates in order; remember and return the component of the first that fits.

        `probe(url)` returns the name of the component a URL serves, or raises saying why not.
        """
        self.tried = []
        self.nothing_listens = False
        for url in self.candidates:
            if url in taken:
                self.tried.append((url, "already scraped for another option of this instance"))
                continue
            try:
                component = known[probe(url)]
                if self.component is not None and component.name != self.component.name:
                    raise WrongComponent(f"serves the Cilium {component.name}, not the {self.component.name}")
            except Exception as e:  # each candidate's failure is recorded; the next one is tried
                self.tried.append((url, describe(e, timeout)))
                self.nothing_listens |= nothing_listens(e) or getattr(e, "nothing_listens", False)
                continue
            self.current, self.detected = url, component
            return component
        self.current = self.detected = None
        return None

    def failure_message(self) -> str:
        """One error naming every URL tried and why each failed; where nothing listened, what turns
        the endpoint on (after a 404, a TLS error or a timeout, the Helm values are not the problem)."""
        what = f"Cilium {self.component.name} metrics" if self.component else "Cilium metrics"
        hint = (
            f" Cilium serves them when its Helm values set `{self.component.helm_value}`"
            f" (port {self.component.port} since Cilium {self.component.port_since})."
            if self.component and self.nothing_listens
            else ""
        )
        if len(self.tried) == 1:
            ((url, why),) = self.tried
            stop = "" if why.endswith((".", "?", "!")) else "."
            return f"{redact(url)}: {why}{stop} `{self.option}` found no {what} there.{hint}"
        tried = "; ".join(f"{redact(url)} ({why})" for url, why in self.tried)
        first = redact(self.tried[0][0])
        return (
            f"{first}: none of the {len(self.tried)} candidate URLs of `{self.option}` serves {what}: {tried}.{hint}"
        )
