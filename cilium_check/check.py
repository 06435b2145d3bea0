"""The Cilium check: one OpenMetrics V2 scraper per configured Cilium component."""

from __future__ import annotations

from typing import Any

import itertools
import time

from datadog_checks.base import OpenMetricsBaseCheckV2
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.base.errors import ConfigurationError
from datadog_checks.base.utils.http import RequestsWrapper
from datadog_checks.base.utils.metadata.version import parse_version

from .components import AGENT, BY_NAME, HUBBLE, Component
from .config import HUBBLE_UNBOUNDED_LABELS, ConfigError, Settings
from .body import BodyLimits, BodyReader, Truncated
from .detect import identify, looks_like_sample
from .endpoints import Endpoint, WrongComponent, describe, redact
from .mapping import load_table
from .openmetrics_map import component_metrics, superseded_families
from .fast.scraper import FastScraper
from .scraper import CiliumScraper
from .secrets import protect_logs, secrets_of
from .tags import COMPONENT_TAG, RESERVED_LABEL_RENAMES

# Enough of a payload to tell which component serves it (Cilium sorts families by name).
PROBE_LINES = 20000

def _component_version(key: str):
    """A metadata transformer that splits a release into `<key>.major`, `.minor`, ... as the base
    class splits `version`, for the components other than the agent."""

    def transform(value: str, options: dict) -> dict[str, str]:
        scheme, parts = parse_version(value, options)
        return {f"{key}.{part}": v for part, v in parts.items()} | {f"{key}.raw": value, f"{key}.scheme": scheme}

    return transform


class CiliumCheck(OpenMetricsBaseCheckV2):
    """Collects the metrics of Cilium's agent, operator, Hubble, clustermesh-apiserver and
    kvstoremesh through their Prometheus endpoints, one scraper per component."""

    __NAMESPACE__ = "cilium"
    DEFAULT_METRIC_LIMIT = 0

    # `version` has the base class's own transformer; the other components' releases get the same split.
    METADATA_TRANSFORMERS = {
        key: _component_version(key)
        for key in (row.datadog_name for row in load_table() if row.type == "metadata")
        if key != "version"
    }

    def __init__(self, name: str, init_config: dict, instances: list[dict]):
        super().__init__(name, init_config, instances)
        try:
            self.settings = Settings.parse(self.instance or {})
        except ConfigError as e:
            raise ConfigurationError(f"cilium instance configuration: {e}") from None
        for note in self.settings.notes:
            self.log.debug(note)
        for warning in self.settings.warnings:
            self.warning("cilium instance configuration: %s", warning)
        # Scrapers are created as endpoints are found, not up front: see `check`.
        self.scraper_configs = []
        self._probe_http: RequestsWrapper | None = None
        self._probing: BodyReader | None = None
        self.cancelled = False
        secrets = secrets_of(self.instance or {})
        for secret in secrets:
            self.register_secret(secret)
        protect_logs(self.log.logger, secrets)

    def cancel(self):
        """Called by the Agent when it unschedules the check: stop a run in flight, free its sockets."""
        self.cancelled = True
        if self._probing is not None:
            self._probing.cancel()
        for scraper in self.scrapers.values():
            scraper.cancel()
        if self._probe_http is not None:
            try:
                self._probe_http.session.close()
            except Exception:
                pass

    def scraper_config(self, component: Component, url: str) -> dict[str, Any]:
        """The V2 scraper configuration of one component: the shared options plus its mapping."""
        options = self.settings.scraper_options
        return {
            **options,
            "openmetrics_endpoint": url,
            "metrics": [component_metrics(component.name)],
            "rename_labels": {**RESERVED_LABEL_RENAMES, **options.get("rename_labels", {})},
            "tags": [*options.get("tags", []), f"{COMPONENT_TAG}:{component.name}"],
        }

    def create_scraper(self, config: dict[str, Any]) -> CiliumScraper:
        component = BY_NAME[config["tags"][-1].split(":", 1)[1]]
        sum_away = frozenset()
        if component is HUBBLE:
            sum_away = frozenset(HUBBLE_UNBOUNDED_LABELS) - set(self.settings.hubble_unbounded_labels)
        scraper_class = FastScraper if self.settings.fast_path else CiliumScraper
        return scraper_class(
            self,
            config,
            max_contexts=self.settings.max_contexts.get(component.name, 0),
            sum_away=sum_away,
            superseded=superseded_families(component.name),
        )

    def probe(self, url: str) -> str:
        """The component a URL serves, from the first lines of its payload; raises saying why not."""
        if self._probe_http is None:
            options = self.settings.scraper_options
            self._probe_http = RequestsWrapper(options, self.init_config, self.HTTP_CONFIG_REMAPPER, self.log)
        options = self.settings.scraper_options
        started = time.monotonic()
        with self._probe_http.get(url, stream=True) as response:
            response.raise_for_status()
            response.encoding = response.encoding or "utf-8"
            reader = BodyLimits.from_config(options).reader(response, started)
            self._probing = reader
            seen = {"first": "", "samples": 0, "cut": ""}

            def lines():
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
                self._probing = None
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

    def check(self, _):
        """Find and scrape every configured component; one that fails does not stop the others."""
        failures: list[str] = []
        taken: set[str] = set()
        timeout = BodyLimits.from_config(self.settings.scraper_options).timeout
        for endpoint in self.settings.endpoints:
            if self.cancelled:
                return
            if endpoint.component is HUBBLE and self._beside_non_agent():
                continue
            if endpoint.current is None:
                component = endpoint.resolve(self.probe, BY_NAME, taken, timeout)
                if component is None:
                    self._endpoint_failed(endpoint, endpoint.failure_message(), failures, send_health=True)
                    continue
                self.log.info("`%s`: %s serves the Cilium %s", endpoint.option, redact(endpoint.current), component.name)
                if endpoint.current not in self.scrapers:
                    self.scrapers[endpoint.current] = self.create_scraper(
                        self.scraper_config(component, endpoint.current)
                    )
            url = endpoint.current
            taken.add(url)
            scraper = self.scrapers[url]
            with self.adopt_namespace(scraper.namespace):
                try:
                    scraper.scrape()
                except Exception as e:
                    # Probe the candidates again next run: the component may have moved port.
                    endpoint.current = None
                    if self.cancelled:
                        return
                    message = f"There was an error scraping endpoint {redact(url)}: {describe(e, timeout)}"
                    self._endpoint_failed(endpoint, message, failures, send_health=False)
                    continue
            endpoint.failing_runs = 0
        if failures:
            raise ScrapeError("; ".join(failures))

    def _beside_non_agent(self) -> bool:
        """Whether `metrics_endpoint` found a component other than the agent (Hubble runs in the agent)."""
        return any(e.component is None and e.detected not in (None, AGENT) for e in self.settings.endpoints)

    def _endpoint_failed(self, endpoint: Endpoint, message: str, failures: list[str], send_health: bool) -> None:
        endpoint.failing_runs += 1
        if endpoint.optional and send_health:
            # An optional component that none of the candidates serves is simply not running.
            if endpoint.failing_runs == 1:
                self.log.info("%s (optional: not collected)", message)
            return
        if send_health and self.settings.scraper_options.get("enable_health_service_check", True):
            name = endpoint.component.name if endpoint.component else "unknown"
            tags = [*self.settings.scraper_options.get("tags", []), f"{COMPONENT_TAG}:{name}"]
            if self.settings.scraper_options.get("tag_by_endpoint", True):
                tags.append(f"endpoint:{endpoint.health_url}")
            self.service_check("openmetrics.health", ServiceCheck.CRITICAL, tags=tags, message=message)
        if endpoint.should_report():
            self.log.error("%s", message)
            failures.append(message)
        else:
            self.log.debug("%s (failing for %d runs)", message, endpoint.failing_runs)


class ScrapeError(Exception):
    """One or more endpoints of the instance could not be scraped; the message names each."""
