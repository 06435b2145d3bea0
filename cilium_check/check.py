"""The Cilium check: one OpenMetrics V2 scraper per configured Cilium component."""

from __future__ import annotations

import re
from typing import Any

from datadog_checks.base import OpenMetricsBaseCheckV2
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.base.errors import ConfigurationError
from datadog_checks.base.utils.http import RequestsWrapper

from .components import BY_NAME, Component
from .config import DETECT_OPTION, ConfigError, Settings
from .detect import identify
from .scraper import CiliumScraper
from .mapping import load_table
from .openmetrics_map import component_metrics
from .tags import COMPONENT_TAG, RESERVED_LABEL_RENAMES

_SEMVER = re.compile(r"^v?(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)(?:-(?P<release>[0-9A-Za-z.-]+))?")


def _component_version(key: str):
    """A metadata transformer that splits a release into `<key>.major`, `.minor`, ... like `version`."""

    def transform(value: str, options: dict) -> dict[str, str]:
        data = {f"{key}.raw": value, f"{key}.scheme": "semver"}
        match = _SEMVER.match(value)
        if match is None:
            raise ValueError(f"not a semantic version: {value!r}")
        data.update({f"{key}.{part}": v for part, v in match.groupdict().items() if v is not None})
        return data

    return transform


class CiliumCheck(OpenMetricsBaseCheckV2):
    """Collects the metrics of a Cilium agent and operator through their Prometheus endpoints."""

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
        self.component_by_endpoint: dict[str, Component] = {}
        self.scraper_configs = [self.scraper_config(c, url) for c, url in self.settings.endpoints.items()]
        self.undetected = self.settings.detect_endpoint

    def scraper_config(self, component: Component, url: str) -> dict[str, Any]:
        """The V2 scraper configuration of one component: the shared options plus its mapping."""
        options = self.settings.scraper_options
        self.component_by_endpoint[url] = component
        return {
            **options,
            "openmetrics_endpoint": url,
            "metrics": [component_metrics(component.name)],
            "rename_labels": {**RESERVED_LABEL_RENAMES, **options.get("rename_labels", {})},
            "tags": [*options.get("tags", []), f"{COMPONENT_TAG}:{component.name}"],
        }

    def check(self, _):
        """Scrape every component; one that fails does not keep the others from being collected."""
        self.refresh_scrapers()
        failures: list[tuple[str, Exception]] = []
        if self.undetected:
            try:
                self.detect_component(self.undetected)
            except Exception as e:
                failures.append((self.undetected, e))
        for endpoint, scraper in self.scrapers.items():
            self.log.debug("Scraping %s endpoint %s", self.component_by_endpoint[endpoint].name, endpoint)
            with self.adopt_namespace(scraper.namespace):
                try:
                    scraper.scrape()
                except Exception as e:
                    self.log.error("There was an error scraping endpoint %s: %s", endpoint, e)
                    failures.append((endpoint, e))
        if failures:
            message = "; ".join(f"There was an error scraping endpoint {url}: {e}" for url, e in failures)
            first = failures[0][1]
            try:
                error = type(first)(message)
            except Exception:
                error = RuntimeError(message)
            raise error from None

    def detect_component(self, url: str) -> None:
        """Find which component serves `url` and add a scraper for it; CRITICAL health if none does."""
        tags = [*self.settings.scraper_options.get("tags", []), f"endpoint:{url}"]
        try:
            http = RequestsWrapper(self.settings.scraper_options, self.init_config, self.HTTP_CONFIG_REMAPPER, self.log)
            with http.get(url, stream=True) as response:
                response.raise_for_status()
                response.encoding = response.encoding or "utf-8"
                name = identify(response.iter_lines(decode_unicode=True))
            if name is None:
                raise ValueError(f"{url} answers, but serves no Cilium agent or operator metrics")
        except Exception as e:
            message = str(e) if url in str(e) else f"{url}: {e}"
            self.service_check("openmetrics.health", ServiceCheck.CRITICAL, tags=tags, message=message)
            raise
        component = BY_NAME[name]
        self.log.info("`%s` %s serves the Cilium %s metrics", DETECT_OPTION, url, component.name)
        self.scrapers[url] = self.create_scraper(self.scraper_config(component, url))
        self.undetected = None

    def create_scraper(self, config: dict[str, Any]) -> CiliumScraper:
        # The configuration is complete already: the base class's defaults would add nothing.
        return CiliumScraper(self, config)
