"""Instance configuration: validation, legacy option names, and one scraper config per component.

The check accepts every option of the bundled Cilium check and of OpenMetrics V2. This module
turns an instance into typed settings, rejects what cannot work with an error that names the
option, and warns about keys it does not know (a typo would otherwise be ignored silently).
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .components import BY_NAME, COMPONENTS
from .endpoints import Endpoint

# Options of OpenMetrics V2's scraper and transformer, and of the Agent's instance defaults.
OPENMETRICS_OPTIONS = frozenset(
    {
        "raw_metric_prefix",
        "extra_metrics",
        "exclude_metrics",
        "exclude_metrics_by_labels",
        "exclude_labels",
        "include_labels",
        "rename_labels",
        "share_labels",
        "cache_shared_labels",
        "target_info",
        "tags",
        "ignore_tags",
        "tag_by_endpoint",
        "hostname_label",
        "hostname_format",
        "enable_health_service_check",
        "ignore_connection_errors",
        "raw_line_filters",
        "use_latest_spec",
        "use_process_start_time",
        "telemetry",
        "collect_histogram_buckets",
        "non_cumulative_histogram_buckets",
        "histogram_buckets_as_distributions",
        "collect_counters_with_distributions",
        "collect_histograms_as_distributions",
        "cache_metric_wildcards",
        "service",
        "min_collection_interval",
        "empty_default_hostname",
        "metric_patterns",
        "disable_generic_tags",
        "name",
        "max_body_size",
        "max_line_length",
    }
)

HTTP_OPTIONS = frozenset(
    {
        "allow_redirects",
        "auth_token",
        "auth_type",
        "aws_host",
        "aws_region",
        "aws_service",
        "connect_timeout",
        "extra_headers",
        "headers",
        "kerberos_auth",
        "kerberos_cache",
        "kerberos_delegate",
        "kerberos_force_initiate",
        "kerberos_hostname",
        "kerberos_keytab",
        "kerberos_principal",
        "log_requests",
        "ntlm_domain",
        "password",
        "persist_connections",
        "proxy",
        "read_timeout",
        "request_size",
        "skip_proxy",
        "timeout",
        "tls_ca_cert",
        "tls_cert",
        "tls_ciphers",
        "tls_ignore_warning",
        "tls_intermediate_ca_certs",
        "tls_private_key",
        "tls_private_key_password",
        "tls_protocols_allowed",
        "tls_use_host_header",
        "tls_validate_hostname",
        "tls_verify",
        "use_legacy_auth_encoding",
        "username",
    }
)

# Options of the bundled check's legacy (OpenMetrics V1) mode, and their V2 names. An existing
# configuration keeps working: the value is carried over to the V2 option.
LEGACY_RENAMES = {
    "health_service_check": "enable_health_service_check",
    "send_histograms_buckets": "collect_histogram_buckets",
    "non_cumulative_buckets": "non_cumulative_histogram_buckets",
    "send_distribution_buckets": "histogram_buckets_as_distributions",
    "prometheus_metrics_prefix": "raw_metric_prefix",
    "label_to_hostname": "hostname_label",
    "labels_mapper": "rename_labels",
    "prometheus_timeout": "timeout",
}
# Legacy options with no V2 counterpart: accepted and ignored, with a debug log.
LEGACY_IGNORED = frozenset(
    {
        "send_monotonic_counter",
        "send_monotonic_with_gauge",
        "send_distribution_counts_as_monotonic",
        "send_distribution_sums_as_monotonic",
        "max_returned_metrics",
        "type_overrides",
        "label_joins",
        "bearer_token_refresh_interval",
    }
)
LEGACY_TRANSLATED = frozenset(
    {"ignore_metrics", "ignore_metrics_by_labels", "label_to_hostname_suffix", "bearer_token_auth", "bearer_token_path"}
)

# An endpoint of a component the check recognises from what it serves (used by Autodiscovery,
# where one template covers the agent and the operator containers).
DETECT_OPTION = "metrics_endpoint"
ENDPOINT_OPTIONS = tuple(component.option for component in COMPONENTS) + (DETECT_OPTION,)
CILIUM_OPTIONS = frozenset(
    ENDPOINT_OPTIONS
    + ("use_openmetrics", "optional_components", "max_contexts", "hubble_unbounded_labels", "fast_path")
)

# Hubble labels with no upper bound (one value per IP, pod or DNS name): the check sums them
# away unless an instance lists them in `hubble_unbounded_labels`.
HUBBLE_UNBOUNDED_LABELS = ("source_ip", "destination_ip", "source_pod", "destination_pod", "query")

KNOWN_OPTIONS = (
    OPENMETRICS_OPTIONS | HTTP_OPTIONS | CILIUM_OPTIONS | set(LEGACY_RENAMES) | LEGACY_IGNORED | LEGACY_TRANSLATED
)

# Options the check owns: a user value would replace the built-in scrapers or mapping.
REJECTED_OPTIONS = {
    "openmetrics_endpoint": "the cilium check builds one scraper per component; set "
    + " and/or ".join(f"`{c.option}`" for c in COMPONENTS)
    + " instead",
    "prometheus_url": "this is the legacy name of the scraped URL; set "
    + " and/or ".join(f"`{c.option}`" for c in COMPONENTS)
    + f" instead (or `{DETECT_OPTION}` to let the check recognise the component)",
    "namespace": "the check always submits under the `cilium` namespace",
}

MetricEntry = Union[str, dict[str, Union[str, dict[str, Any]]]]


def _check_urls(value: str | list[str] | None) -> list[str] | None:
    """One URL or a list of candidate URLs, as a list; each must be an http(s) URL."""
    if value is None:
        return value
    urls = [value] if isinstance(value, str) else list(value)
    if not urls:
        raise ValueError("the list of candidate URLs is empty")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL such as http://localhost:9962/metrics")
    return urls


class InstanceModel(BaseModel):
    """The typed view of an instance. Options not listed here are validated by datadog-checks-base."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    agent_endpoint: Union[str, list[str], None] = None
    operator_endpoint: Union[str, list[str], None] = None
    hubble_endpoint: Union[str, list[str], None] = None
    clustermesh_apiserver_endpoint: Union[str, list[str], None] = None
    kvstoremesh_endpoint: Union[str, list[str], None] = None
    metrics_endpoint: Union[str, list[str], None] = None
    optional_components: list[Literal["agent", "operator", "hubble", "clustermesh-apiserver", "kvstoremesh"]] = Field(
        default_factory=list
    )
    max_contexts: Union[int, dict[str, int], None] = None
    hubble_unbounded_labels: list[str] = Field(default_factory=list)
    fast_path: bool = True
    max_body_size: int | None = Field(default=None, gt=0)
    max_line_length: int | None = Field(default=None, gt=0)
    use_openmetrics: bool | None = None

    tags: list[str] = Field(default_factory=list)
    extra_metrics: list[MetricEntry] = Field(default_factory=list)
    metrics: list[MetricEntry] = Field(default_factory=list)
    exclude_metrics: list[str] = Field(default_factory=list)
    exclude_labels: list[str] = Field(default_factory=list)
    include_labels: list[str] = Field(default_factory=list)
    rename_labels: dict[str, str] = Field(default_factory=dict)
    exclude_metrics_by_labels: dict[str, Union[bool, list[str]]] = Field(default_factory=dict)
    raw_line_filters: list[str] = Field(default_factory=list)
    ignore_tags: list[str] = Field(default_factory=list)
    tag_by_endpoint: bool = True
    enable_health_service_check: bool = True
    ignore_connection_errors: bool = False
    collect_histogram_buckets: bool = True
    non_cumulative_histogram_buckets: bool = False
    histogram_buckets_as_distributions: bool = False
    collect_counters_with_distributions: bool = False
    timeout: float | None = Field(default=None, gt=0)
    connect_timeout: float | None = Field(default=None, gt=0)
    read_timeout: float | None = Field(default=None, gt=0)
    min_collection_interval: float | None = Field(default=None, gt=0)
    tls_verify: bool | None = None
    headers: dict[str, str] | None = None
    extra_headers: dict[str, str] | None = None

    _check_endpoints = field_validator(*ENDPOINT_OPTIONS)(_check_urls)

    @field_validator("max_contexts")
    @classmethod
    def _check_max_contexts(cls, value):
        limits = value if isinstance(value, dict) else {"every component": value} if value is not None else {}
        for name, limit in limits.items():
            if name != "every component" and name not in BY_NAME:
                raise ValueError(f"{name!r} is not a component ({', '.join(BY_NAME)})")
            if limit < 0:
                raise ValueError(f"the limit of {name} must be 0 (no limit) or more")
        return value


class ConfigError(ValueError):
    """An instance cannot be used; the message names the option and what to do."""


def _format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"]
        if item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        lines.append(f"`{where}`: {message} (got {item['input']!r})")
    return "; ".join(lines)


def _translate_legacy(raw: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    config = dict(raw)
    for old, new in LEGACY_RENAMES.items():
        if old in config:
            value = config.pop(old)
            if new in config:
                notes.append(f"`{old}` is the legacy name of `{new}`; both are set, so `{new}` wins")
            else:
                config[new] = value
                notes.append(f"`{old}` is the legacy name of `{new}`; its value is used for `{new}`")
    if "ignore_metrics" in config:
        patterns = [fnmatch.translate(glob) for glob in config.pop("ignore_metrics") or []]
        config["exclude_metrics"] = list(config.get("exclude_metrics") or []) + patterns
        notes.append("`ignore_metrics` (globs) is added to `exclude_metrics`")
    if "ignore_metrics_by_labels" in config:
        legacy = config.pop("ignore_metrics_by_labels") or {}
        merged = dict(config.get("exclude_metrics_by_labels") or {})
        for label, values in legacy.items():
            merged.setdefault(label, True if "*" in values else values)
        config["exclude_metrics_by_labels"] = merged
        notes.append("`ignore_metrics_by_labels` is added to `exclude_metrics_by_labels`")
    if "label_to_hostname_suffix" in config:
        suffix = config.pop("label_to_hostname_suffix")
        config.setdefault("hostname_format", f"<HOSTNAME>{suffix}")
    bearer_path = config.pop("bearer_token_path", "/var/run/secrets/kubernetes.io/serviceaccount/token")
    if config.pop("bearer_token_auth", False) and "auth_token" not in config:
        config["auth_token"] = {
            "reader": {"type": "file", "path": bearer_path},
            "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"},
        }
        notes.append("`bearer_token_auth` is translated to `auth_token` reading the token file")
    for option in LEGACY_IGNORED & config.keys():
        config.pop(option)
        notes.append(f"`{option}` is a legacy OpenMetrics V1 option with no effect here; it is ignored")
    return config


class Settings:
    """A validated instance: the endpoint of each component and the options every scraper shares."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        scraper_options: dict[str, Any],
        max_contexts: dict[str, int],
        hubble_unbounded_labels: list[str],
        fast_path: bool,
        notes: list[str],
    ):
        self.endpoints = endpoints  # `metrics_endpoint` first: other options depend on what it finds
        self.scraper_options = scraper_options
        self.max_contexts = max_contexts  # by component name; 0 means no limit
        self.hubble_unbounded_labels = hubble_unbounded_labels
        self.fast_path = fast_path  # False: stock OpenMetrics V2 parsing
        self.notes = notes  # what the check did with the configuration, for the log
        self.warnings: list[str] = []  # what the user should fix

    @classmethod
    def parse(cls, instance: dict[str, Any]) -> Settings:
        if not isinstance(instance, dict):
            raise ConfigError(f"an instance must be a mapping of options, got {type(instance).__name__}")
        notes: list[str] = []
        for option, reason in REJECTED_OPTIONS.items():
            if instance.get(option):
                raise ConfigError(f"`{option}` is not supported: {reason}")

        config = _translate_legacy(instance, notes)
        try:
            model = InstanceModel.model_validate(config)
        except ValidationError as e:
            raise ConfigError(_format_validation_error(e)) from None

        optional = set(model.optional_components)
        endpoints = []
        if model.metrics_endpoint:
            endpoints.append(Endpoint(DETECT_OPTION, model.metrics_endpoint, None))
        for component in COMPONENTS:
            candidates = getattr(model, component.option)
            if candidates:
                endpoints.append(Endpoint(component.option, candidates, component, component.name in optional))
        if not endpoints:
            options = ", ".join(f"`{option}`" for option in ENDPOINT_OPTIONS)
            raise ConfigError(f"no endpoint to scrape: set at least one of {options}")
        owners: dict[str, str] = {}
        for endpoint in endpoints:
            for url in endpoint.candidates:
                if owners.setdefault(url, endpoint.option) != endpoint.option:
                    raise ConfigError(
                        f"`{owners[url]}` and `{endpoint.option}` both list {url}: each component needs its own endpoint"
                    )

        limits = {c.name: c.max_contexts for c in COMPONENTS}
        if isinstance(model.max_contexts, int):
            limits = dict.fromkeys(limits, model.max_contexts)
        elif model.max_contexts:
            limits.update(model.max_contexts)
        unknown_labels = set(model.hubble_unbounded_labels) - set(HUBBLE_UNBOUNDED_LABELS)
        if unknown_labels:
            raise ConfigError(
                f"`hubble_unbounded_labels`: {', '.join(sorted(unknown_labels))} is not one of "
                f"{', '.join(HUBBLE_UNBOUNDED_LABELS)}"
            )

        if model.use_openmetrics is not None:
            notes.append("`use_openmetrics` is accepted for compatibility: this check only has the OpenMetrics V2 mode")
        options = {k: v for k, v in config.items() if k not in CILIUM_OPTIONS and v is not None}
        if model.metrics:
            options["extra_metrics"] = list(model.metrics) + list(model.extra_metrics)
            options.pop("metrics")
            notes.append("`metrics` entries are added to the built-in mapping, as `extra_metrics` would be")

        settings = cls(endpoints, options, limits, list(model.hubble_unbounded_labels), model.fast_path, notes)
        for key in sorted(config.keys() - KNOWN_OPTIONS - {"metrics"}):
            guess = difflib.get_close_matches(key, sorted(KNOWN_OPTIONS), n=1)
            hint = f"; did you mean `{guess[0]}`?" if guess else ""
            settings.warnings.append(f"unknown option `{key}` is ignored{hint}")
        return settings
