"""The Cilium check: one OpenMetrics V2 scraper per configured Cilium component."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cilium_check.body import BodyLimits
from cilium_check.components import AGENT, BY_NAME, HUBBLE, Component
from cilium_check.config import (
    BASE_OPTIONS,
    LEGACY_OPTIONS,
    LEGACY_SWITCH,
    Settings,
    did_you_mean,
    explain,
    legacy_mode,
    translate_legacy,
)
from cilium_check.endpoints import Endpoint, describe, redact
from cilium_check.fast.scraper import FastScraper
from cilium_check.mapping import load_table
from cilium_check.openmetrics_map import component_metrics, superseded_families
from cilium_check.probe import Prober
from cilium_check.scraper import LEGACY_HEALTH, CiliumScraper
from cilium_check.secrets import TokenFile, protect_logs, secrets_of, token_file_path
from cilium_check.tags import COMPONENT_TAG, RESERVED_LABEL_RENAMES
from cilium_check.versions import component_version
from datadog_checks.base import OpenMetricsBaseCheckV2
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.base.errors import ConfigurationError

from .config_models import ConfigMixin

# The section each generated model validates, and how an error about it starts.
LEGACY_NOTICE = (
    "legacy mode: the names and types of the bundled check's OpenMetrics V1 mode (`use_openmetrics` is "
    f"false or absent), with `cilium.prometheus.health`; {LEGACY_SWITCH}"
)

SECTIONS = {"InstanceConfig": "instances", "SharedConfig": "init_config"}
LABELS = {"instances": "cilium instance configuration", "init_config": "cilium shared configuration (init_config)"}


class CiliumCheck(OpenMetricsBaseCheckV2, ConfigMixin):
    """Collects the metrics of Cilium's agent, operator, Hubble, clustermesh-apiserver and
    kvstoremesh through their Prometheus endpoints, one scraper per component."""

    __NAMESPACE__ = "cilium"
    DEFAULT_METRIC_LIMIT = 0

    # `version` has the base class's own transformer; the other components' releases get the same split.
    METADATA_TRANSFORMERS = {
        key: component_version(key)
        for key in (row.datadog_name for row in load_table() if row.type == "metadata")
        if key != "version"
    }

    def __init__(self, name: str, init_config: dict, instances: list[dict]):
        raw = instances[0] if instances else {}
        if not isinstance(raw, dict):
            raise ConfigurationError(
                f"{LABELS['instances']}: an instance must be a mapping of options, got {type(raw).__name__}"
            )
        # The models and the base class read V2 option names: the bundled check's V1 names are
        # translated before either sees the instance.
        instance, notes = translate_legacy(raw)
        super().__init__(name, init_config, [instance])
        # Validated now rather than at the first run, so that the Agent reports a configuration
        # that cannot work as a loader error, before it schedules anything.
        self.load_configuration_models()
        self.settings = Settings.from_config(self.config, self.instance, notes, legacy=legacy_mode(raw))
        for note in self.settings.notes:
            self.log.debug(note)
        if self.settings.legacy:
            self.log.info("%s", LEGACY_NOTICE)
        self.mode_reported = False
        # Scrapers are created as endpoints are found, not up front: see `check`.
        self.scraper_configs = []
        self.prober: Prober | None = None
        self.cancelled = False
        # Every credential the HTTP layer can send is scrubbed from messages and logs before the
        # first request; a rotated token file's new content, as soon as a request may have sent it.
        self.token_file = TokenFile(token_file_path(self.instance))
        self.token_file.changed()
        self.protect(secrets_of(self.instance))

    # -- configuration -------------------------------------------------------------------------

    @staticmethod
    def load_configuration_model(import_path, model_name, config, context):
        # The base class loads the model; when it refuses the configuration, the error is said
        # again in this check's words (the option named once, no union branches, no secret).
        try:
            return OpenMetricsBaseCheckV2.load_configuration_model(import_path, model_name, config, context)
        except ConfigurationError:
            model = getattr(importlib.import_module(import_path), model_name)
            try:
                model.model_validate(config, context=context)
            except ValidationError as e:
                section = SECTIONS.get(model_name, model_name)
                raise ConfigurationError(f"{LABELS[section]}: {explain(e, model, config, section)}") from None
            raise

    def log_typos_in_options(self, user_config, models_config, level):
        # Every option the check does not know is reported, not only those close to a known one,
        # and as a warning of the instance (shown by `agent status`), not a log line alone.
        known = set(type(models_config).model_fields) | BASE_OPTIONS | LEGACY_OPTIONS
        typos = set()
        for hint in did_you_mean(user_config or {}, known):
            self.warning("%s: %s", LABELS.get(level, level), hint)
            typos.add(hint.split("`")[1])
        return typos

    def get_default_config(self) -> dict:
        return {"rename_labels": dict(RESERVED_LABEL_RENAMES)}

    def scraper_config(self, component: Component, url: str) -> Mapping[str, Any]:
        """The V2 scraper configuration of one component: the shared options plus its mapping."""
        options = self.settings.scraper_options
        # Legacy mode tags metrics as the bundled check's V1 mode did: labels and instance tags only.
        own_tags = [] if self.settings.legacy else [f"{COMPONENT_TAG}:{component.name}"]
        config = {
            **options,
            "openmetrics_endpoint": url,
            "metrics": [component_metrics(component.name, self.settings.legacy)],
            "tags": [*options.get("tags", []), *own_tags],
        }
        return self.get_config_with_defaults(config)

    def create_scraper(self, config: Mapping[str, Any], component: Component) -> CiliumScraper:
        sum_away = frozenset(component.unbounded_labels) - set(self.settings.hubble_unbounded_labels)
        scraper_class = FastScraper if self.settings.fast_path else CiliumScraper
        return scraper_class(
            self,
            config,
            component=component.name,
            max_contexts=self.settings.max_contexts.get(component.name, 0),
            sum_away=sum_away,
            superseded=superseded_families(component.name),
            legacy=self.settings.legacy,
            start_time_family=component.start_time_family,
        )

    # -- a run ---------------------------------------------------------------------------------

    def protect(self, secrets: list[str]) -> None:
        for secret in secrets:
            self.register_secret(secret)
        protect_logs(self.log.logger, secrets)

    def refresh_secrets(self) -> None:
        """Register the token file's content when it changed (called after every request)."""
        token = self.token_file.changed()
        if token and len(token) >= 4:
            self.protect([token])

    def cancel(self):
        """Called by the Agent when it unschedules the check: stop a run in flight, free its sockets."""
        self.cancelled = True
        if self.prober is not None:
            self.prober.cancel()
        for scraper in self.scrapers.values():
            scraper.cancel()

    def probe(self, url: str) -> str:
        """The component a URL serves, from the first lines of its payload; raises saying why not."""
        if self.prober is None:
            self.prober = Prober(
                self.settings.scraper_options, self.init_config, self.HTTP_CONFIG_REMAPPER, self.log, self.refresh_secrets
            )
        return self.prober(url)

    def check(self, _):
        """Find and scrape every configured component; one that fails does not stop the others."""
        if self.settings.legacy and not self.mode_reported:
            # Shown by `agent check` and `agent status` with the version metadata.
            self.set_metadata("collection_mode", LEGACY_NOTICE)
            self.mode_reported = True
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
                        self.scraper_config(component, endpoint.current), component
                    )
                    if component is HUBBLE:
                        # Hubble restarts with the agent, whose start time tells.
                        self.scrapers[endpoint.current].restart_hint = self._agent_restarted
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

    def _agent_restarted(self) -> bool | None:
        """Whether this instance's agent restarted since its last good scrape (None: no agent here)."""
        for endpoint in self.settings.endpoints:
            if endpoint.detected is AGENT and endpoint.current in self.scrapers:
                return self.scrapers[endpoint.current].restarted
        return None

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
        options = self.settings.scraper_options
        if send_health and options.get("enable_health_service_check", True):
            name = endpoint.component.name if endpoint.component else "unknown"
            if self.settings.legacy:
                tags = [f"endpoint:{endpoint.health_url}", *options.get("tags", [])]
                self.service_check(LEGACY_HEALTH, ServiceCheck.CRITICAL, tags=tags, message=message)
            else:
                tags = [*options.get("tags", []), f"{COMPONENT_TAG}:{name}"]
                if options.get("tag_by_endpoint", True):
                    tags.append(f"endpoint:{endpoint.health_url}")
                self.service_check("openmetrics.health", ServiceCheck.CRITICAL, tags=tags, message=message)
        if endpoint.should_report():
            self.log.error("%s", message)
            failures.append(message)
        else:
            self.log.debug("%s (failing for %d runs)", message, endpoint.failing_runs)


class ScrapeError(Exception):
    """One or more endpoints of the instance could not be scraped; the message names each."""
