"""The instance configuration: legacy names, the rules the spec cannot state, and the check's settings.

The options are those of `assets/configuration/spec.yaml`. The models `ddev` generates from it
(`datadog_checks.cilium.config_models`) check their types when the base class loads them; the
rules below are wired into those models by `config_models/validators.py`. What this module adds
on top of the models:

- the bundled check's legacy (OpenMetrics V1) option names, translated to their V2 names before
  anything else reads the instance;
- errors in a user's words: the option named (`init_config.<option>` for the shared section),
  one message per option rather than one per branch of a type union, a "did you mean" for a
  misspelt option, and never a value that can hold a secret;
- `Settings`, what the check runs with: the endpoints, the options every scraper shares, the
  context budgets and the fast-path switch.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from datadog_checks.base.config import is_affirmative
from datadog_checks.base.utils.http import DEFAULT_REMAPPED_FIELDS, STANDARD_FIELDS

from .components import AGENT, BY_NAME, COMPONENTS, DETECT_OPTION, ENDPOINT_OPTIONS, HUBBLE, NAMES, OPERATOR
from .endpoints import Endpoint
from .transformers import V1_OPTIONS
from .secrets import SECRET_BEARING_OPTIONS

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
LEGACY_IGNORED = frozenset({"type_overrides", "label_joins", "bearer_token_refresh_interval"})
LEGACY_TRANSLATED = frozenset(
    {"ignore_metrics", "ignore_metrics_by_labels", "label_to_hostname_suffix", "bearer_token_auth", "bearer_token_path"}
)
LEGACY_OPTIONS = frozenset(LEGACY_RENAMES) | LEGACY_IGNORED | LEGACY_TRANSLATED | frozenset(V1_OPTIONS)

# Options of this check that the bundled check never had: an instance that sets one of them was
# written for this check (see `legacy_mode`).
BUNDLED_ENDPOINT_OPTIONS = (AGENT.option, OPERATOR.option)
NEW_OPTIONS = frozenset(
    tuple(option for option in ENDPOINT_OPTIONS if option not in BUNDLED_ENDPOINT_OPTIONS)
    + ("optional_components", "max_contexts", "hubble_unbounded_labels", "fast_path", "max_body_size", "max_line_length")
)
LEGACY_SWITCH = "set `use_openmetrics: true` in the instance for the current names"

# Options read by the Agent or the base class that the spec's templates do not document: the
# HTTP wrapper's whole set (the template lists the common ones), its remapped legacy names, the
# instance `name` of the Agent, and the base class's context limit.
BASE_OPTIONS = frozenset(STANDARD_FIELDS) | frozenset(DEFAULT_REMAPPED_FIELDS) | {"name", "max_returned_metrics"}

# This check's own options: the scrapers never see them.
CILIUM_OPTIONS = frozenset(
    ENDPOINT_OPTIONS + ("use_openmetrics", "optional_components", "max_contexts", "hubble_unbounded_labels", "fast_path")
)

# Options the check owns: a user value would replace the built-in scrapers or mapping.
_EACH_OPTION = " and/or ".join(f"`{c.option}`" for c in COMPONENTS)
REJECTED_OPTIONS = {
    "openmetrics_endpoint": f"the cilium check builds one scraper per component; set {_EACH_OPTION} instead",
    "prometheus_url": f"this is the legacy name of the scraped URL; set {_EACH_OPTION} instead"
    f" (or `{DETECT_OPTION}` to let the check recognise the component)",
    "namespace": "the check always submits under the `cilium` namespace",
}

_TEMPLATE_VARIABLE = re.compile(r"%%[A-Za-z0-9_]+%%")


# -- legacy names ---------------------------------------------------------------------------------


def translate_legacy(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The instance with the bundled check's V1 option names turned into V2 ones, and what was done."""
    config = dict(raw)
    notes: list[str] = []
    for old, new in LEGACY_RENAMES.items():
        if old in config:
            value = config.pop(old)
            if new in config:
                notes.append(f"`{old}` is the legacy name of `{new}`; both are set, so `{new}` wins")
            else:
                config[new] = value
                notes.append(f"`{old}` is the legacy name of `{new}`; its value is used for `{new}`")
    if "ignore_metrics" in config:
        globs = config.pop("ignore_metrics") or []
        patterns = [fnmatch.translate(glob) for glob in globs if isinstance(glob, str)]
        config["exclude_metrics"] = list(config.get("exclude_metrics") or []) + patterns
        notes.append("`ignore_metrics` (globs) is added to `exclude_metrics`")
    if "ignore_metrics_by_labels" in config:
        legacy = config.pop("ignore_metrics_by_labels") or {}
        merged = dict(config.get("exclude_metrics_by_labels") or {})
        for label, values in dict(legacy).items():
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
    for option in sorted(LEGACY_IGNORED & config.keys()):
        config.pop(option)
        notes.append(f"`{option}` is a legacy OpenMetrics V1 option with no effect here; it is ignored")
    if config.get("metrics"):
        notes.append("`metrics` entries are added to the built-in mapping, as `extra_metrics` would be")
    return config, notes


def legacy_mode(instance: Mapping[str, Any]) -> bool:
    """Whether an instance runs in legacy mode, submitting the names of the bundled check's V1 mode.

    `use_openmetrics` decides when it is set, as in the bundled check. When it is absent, the
    bundled check ran its legacy mode: an instance it could have run (one of `agent_endpoint` or
    `operator_endpoint`, a single URL, none of this check's own options) keeps that mode, so that
    its series keep their names on upgrade; any other instance was written for this check and
    gets the current names.
    """
    value = instance.get("use_openmetrics")
    if value is not None:
        return not is_affirmative(value)
    endpoints = [instance.get(option) for option in BUNDLED_ENDPOINT_OPTIONS if instance.get(option)]
    return len(endpoints) == 1 and isinstance(endpoints[0], str) and not NEW_OPTIONS & instance.keys()


# -- rules the generated models call (config_models/validators.py) -------------------------------


def reject_owned_options(values: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Refuse the options that would replace the check's own scrapers or namespace."""
    for option, reason in REJECTED_OPTIONS.items():
        if values.get(option):
            raise ValueError(f"`{option}` is not supported: {reason}")
    return values


def check_endpoint(value: Any, **kwargs: Any) -> Any:
    """One http(s) URL, or a non-empty list of them. A message never quotes a URL, which may hold
    credentials: it says which candidate, and what is wrong with it."""
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list | tuple):
        return value  # the model's type check names the expected type
    if not urls:
        raise ValueError("the list of candidate URLs is empty")
    for index, url in enumerate(urls, 1):
        if not isinstance(url, str):
            return value
        which = "the URL" if isinstance(value, str) else f"candidate {index} of {len(urls)}"
        variable = _TEMPLATE_VARIABLE.search(url)
        if variable:
            raise ValueError(
                f"{which} holds the Autodiscovery template variable `{variable.group()}`, which was not "
                "resolved: template variables work in auto_conf.yaml, pod annotations and Cluster Agent "
                "checks; in conf.d give the address itself (such as http://localhost:9962/metrics)"
            )
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            raise ValueError(f"{which} has a port that is not a number") from None
        if parts.scheme not in ("http", "https"):
            shown = f"it starts with `{parts.scheme}://`" if "://" in url and parts.scheme.isalnum() else "`http://` is missing"
            raise ValueError(f"{which} is not an http(s) URL ({shown}); use one such as http://localhost:9962/metrics")
        if not parts.netloc:
            raise ValueError(f"{which} has no host after `{parts.scheme}://`; use one such as http://localhost:9962/metrics")
    return value


def check_headers(value: Any, **kwargs: Any) -> Any:
    """Header values are strings (`requests` would quote any other in its error, credentials included)."""
    if isinstance(value, Mapping):
        for name, header in value.items():
            if not isinstance(header, str):
                raise ValueError(f"the value of header `{name}` must be a string, got {describe_value('headers', header)}")
    return value


def check_max_contexts(value: Any, **kwargs: Any) -> Any:
    """A whole number of contexts for every endpoint, or one per component; 0 means no limit."""
    example = "such as `max_contexts: 50000` or `max_contexts: {hubble: 50000}`"
    if isinstance(value, Mapping):
        for name, limit in value.items():
            if name not in BY_NAME:
                raise ValueError(f"{name!r} is not a component (one of {', '.join(NAMES)})")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(
                    f"the limit of {name} must be a whole number of contexts, 0 for no limit, {example};"
                    f" got {describe_value('max_contexts', limit)}"
                )
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            "must be a whole number of contexts (0 for no limit) or a mapping of component to number, "
            f"{example}; got {describe_value('max_contexts', value)}"
        )
    return value


def check_hubble_unbounded_labels(value: Any, **kwargs: Any) -> Any:
    """Labels among Hubble's unbounded ones."""
    if isinstance(value, list | tuple):
        unknown = [label for label in value if label not in HUBBLE.unbounded_labels]
        if unknown:
            raise ValueError(
                f"{', '.join(map(str, unknown))} is not one of the labels it keeps: {', '.join(HUBBLE.unbounded_labels)}"
            )
    return value


def safe_url(url: str) -> str:
    """A URL as a message may show it: scheme, host, port and path, none of what may be a credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "a URL with a port that is not a number"
    if not host:
        return "a URL without a host"
    return f"{parts.scheme}://{host}{parts.path}"


def check_positive(value: Any, **kwargs: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
        raise ValueError(f"must be more than 0, got {value}")
    return value


def check_instance(model: Any) -> Any:
    """Rules on the whole instance: at least one endpoint, and never one URL under two options."""
    configured = [(option, getattr(model, option)) for option in ENDPOINT_OPTIONS if getattr(model, option)]
    if not configured:
        options = ", ".join(f"`{option}`" for option in ENDPOINT_OPTIONS)
        raise ValueError(f"no endpoint to scrape: set at least one of {options}")
    owners: dict[str, str] = {}
    for option, value in configured:
        for url in [value] if isinstance(value, str) else value:
            if owners.setdefault(url, option) != option:
                raise ValueError(
                    f"`{owners[url]}` and `{option}` list the same URL ({safe_url(url)}): each component needs its own endpoint"
                )
    return model


# -- errors in a user's words ---------------------------------------------------------------------


def describe_value(option: str, value: Any) -> str:
    """What a user gave, without the value itself where the option can hold a secret."""
    kind = {str: "a string", bool: "a boolean", int: "a whole number", float: "a number"}.get(type(value))
    if kind is None:
        kind = "a list" if isinstance(value, list | tuple) else "a mapping" if isinstance(value, Mapping) else "null"
        if value is None:
            return "nothing (null)"
        return kind
    if option in SECRET_BEARING_OPTIONS:
        return kind
    text = repr(value)
    return f"{kind} ({text[:60]}{'...' if len(text) > 60 else ''})"


def describe_type(annotation: Any) -> str:
    """A model field's type in words: `a string or a list of strings`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [describe_type(arg) for arg in args if arg is not type(None)]
        return " or ".join(dict.fromkeys(kinds))
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in args)
    if origin is tuple:
        item = describe_type(args[0]) if args else "values"
        plural = {"a string": "strings", "a whole number": "whole numbers", "a number": "numbers"}.get(item, "items")
        return f"a list of {plural}"
    if origin is types.MappingProxyType or annotation is types.MappingProxyType:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping"
    return {str: "a string", bool: "true or false", int: "a whole number", float: "a number"}.get(annotation, "a value")


def _path(option: str, location: tuple, value: Any) -> tuple[str, Any]:
    """`option`, `option[2]` or `option.key`: the part of an error's location that a user wrote (not
    the branches of a type union), and the value found there."""
    path = option
    for part in location:
        if isinstance(part, int) and isinstance(value, list | tuple) and part < len(value):
            path, value = f"{path}[{part}]", value[part]
        elif isinstance(part, str) and isinstance(value, Mapping) and part in value:
            path, value = f"{path}.{part}", value[part]
        else:
            break
    return path, value


def did_you_mean(config: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """A hint for each option of `config` that is not known but close to one that is."""
    known = sorted(set(known))
    hints = []
    for key in sorted(k for k in config if isinstance(k, str) and k not in known):
        guess = difflib.get_close_matches(key, known, n=1)
        hints.append(f"unknown option `{key}` is ignored" + (f"; did you mean `{guess[0]}`?" if guess else ""))
    return hints


def explain(error: ValidationError, model: type[BaseModel], config: Mapping[str, Any], section: str) -> str:
    """One message per option that failed validation, in a user's words."""
    prefix = "" if section == "instances" else f"{section}."
    general: list[str] = []
    by_option: dict[str, list[dict]] = {}
    for item in error.errors():
        if not item["loc"]:
            general.append(item["msg"].removeprefix("Value error, "))
        else:
            by_option.setdefault(str(item["loc"][0]), []).append(item)
    parts = list(general)
    for option, items in by_option.items():
        value = config.get(option)
        ours = [item for item in items if item["type"] == "value_error"]
        if ours:
            where, _ = _path(option, tuple(ours[0]["loc"][1:]), value)
            parts.append(f"`{prefix}{where}`: {ours[0]['msg'].removeprefix('Value error, ')}")
            continue
        where, found = _path(option, tuple(items[0]["loc"][1:]), value)
        field_info = model.model_fields.get(option)
        if where == option and field_info is not None:
            expected = describe_type(field_info.annotation)
            parts.append(f"`{prefix}{option}` must be {expected}, got {describe_value(option, value)}")
        else:
            message = items[0]["msg"].replace("Input should be", "must be")
            parts.append(f"`{prefix}{where}` {message}, got {describe_value(option, found)}")
    known = set(model.model_fields) | BASE_OPTIONS | LEGACY_OPTIONS
    hints = [hint for hint in did_you_mean(config, known) if "did you mean" in hint]
    return "; ".join(parts + hints)


# -- what the check runs with ---------------------------------------------------------------------


@dataclass
class Settings:
    """A validated instance: the endpoint of each component and the options every scraper shares."""

    endpoints: list[Endpoint]  # `metrics_endpoint` first: other options depend on what it finds
    scraper_options: dict[str, Any]
    max_contexts: dict[str, int]  # by component name; 0 means no limit
    hubble_unbounded_labels: tuple[str, ...]
    fast_path: bool  # False: stock OpenMetrics V2 parsing
    legacy: bool = False  # the bundled check's V1 names and types (`legacy_mode`)
    notes: list[str] = field(default_factory=list)  # what the check did with the configuration, for the log

    @classmethod
    def from_config(
        cls, model: Any, instance: Mapping[str, Any], notes: list[str] | None = None, legacy: bool = False
    ) -> Settings:
        """The settings of an instance (V2 option names) that its generated model validated."""
        optional = set(model.optional_components or ())
        endpoints = []
        if model.metrics_endpoint:
            endpoints.append(Endpoint(DETECT_OPTION, _urls(model.metrics_endpoint), None))
        for component in COMPONENTS:
            candidates = getattr(model, component.option)
            if candidates:
                endpoints.append(Endpoint(component.option, _urls(candidates), component, component.name in optional))

        limits = {c.name: c.max_contexts for c in COMPONENTS}
        if isinstance(model.max_contexts, int):
            limits = dict.fromkeys(limits, model.max_contexts)
        elif model.max_contexts:
            limits.update(model.max_contexts)

        options = {k: v for k, v in instance.items() if k not in CILIUM_OPTIONS and v is not None}
        if legacy:
            options["tag_by_endpoint"] = False  # V1 tags its health check with the URL, not its metrics
        else:
            for option in V1_OPTIONS.keys() & options.keys():
                options.pop(option)
                notes = [*(notes or []), f"`{option}` is an option of legacy mode; it has no effect with the current names"]
        if options.get("metrics"):
            options["extra_metrics"] = list(options.pop("metrics")) + list(options.get("extra_metrics") or [])
        return cls(
            endpoints=endpoints,
            scraper_options=options,
            max_contexts=limits,
            hubble_unbounded_labels=tuple(model.hubble_unbounded_labels or ()),
            fast_path=model.fast_path is not False,
            legacy=legacy,
            notes=list(notes or []),
        )


def _urls(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
