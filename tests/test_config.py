"""Instance configuration: what is accepted, translated, warned about and rejected."""

import logging

import pytest
from datadog_checks.base.errors import ConfigurationError

from cilium_check import CiliumCheck
from cilium_check.config import Settings
from cilium_check.tags import RESERVED_LABEL_RENAMES

AGENT = "http://127.0.0.1:9962/metrics"
OPERATOR = "http://127.0.0.1:9963/metrics"


def make(instance):
    return CiliumCheck("cilium", {}, [instance])


def configs(check):
    """The scraper configuration each endpoint option gets once its URL answers."""
    return [check.scraper_config(e.component, e.candidates[0]) for e in check.settings.endpoints]


def test_both_endpoints_give_one_scraper_each():
    check = make({"agent_endpoint": AGENT, "operator_endpoint": OPERATOR})
    assert [c["openmetrics_endpoint"] for c in configs(check)] == [AGENT, OPERATOR]
    agent, operator = configs(check)
    assert "cilium_drop_count" in agent["metrics"][0]
    assert "cilium_drop_count" not in operator["metrics"][0]
    assert agent["tags"] == ["cilium_component:agent"]
    assert operator["tags"] == ["cilium_component:operator"]


def test_no_endpoint_names_the_options():
    with pytest.raises(ConfigurationError, match="`agent_endpoint`, `operator_endpoint`"):
        make({"tags": ["a:b"]})


@pytest.mark.parametrize("value", ["localhost:9962/metrics", "ftp://x/metrics", "http://"])
def test_malformed_url_is_named(value):
    with pytest.raises(ConfigurationError, match=r"`agent_endpoint`: .*not an http\(s\) URL"):
        make({"agent_endpoint": value})


def test_wrong_type_names_option_and_value():
    with pytest.raises(ConfigurationError, match=r"`tags`: .*got 'team:net'"):
        make({"agent_endpoint": AGENT, "tags": "team:net"})


def test_same_url_twice_is_rejected():
    with pytest.raises(ConfigurationError, match=f"`agent_endpoint` and `operator_endpoint` both list {AGENT}"):
        make({"agent_endpoint": AGENT, "operator_endpoint": AGENT})


@pytest.mark.parametrize("option", ["openmetrics_endpoint", "prometheus_url"])
def test_user_endpoint_cannot_replace_the_scrapers(option):
    with pytest.raises(ConfigurationError, match=f"`{option}` is not supported.*`agent_endpoint`"):
        make({"agent_endpoint": AGENT, option: "http://elsewhere/metrics"})


def test_user_metrics_are_merged_not_replacing_the_map(caplog):
    caplog.set_level(logging.DEBUG)
    check = make({"agent_endpoint": AGENT, "metrics": [{"my_family": "my.name"}], "extra_metrics": ["other"]})
    config = configs(check)[0]
    assert "metrics" in config and "cilium_drop_count" in config["metrics"][0]
    assert config["extra_metrics"] == [{"my_family": "my.name"}, "other"]
    assert "`metrics` entries are added to the built-in mapping" in caplog.text


def test_use_openmetrics_is_accepted_and_logged(caplog):
    caplog.set_level(logging.DEBUG)
    for value in (True, False):
        check = make({"agent_endpoint": AGENT, "use_openmetrics": value})
        assert "use_openmetrics" not in configs(check)[0]
    assert "only has the OpenMetrics V2 mode" in caplog.text


def test_unknown_option_warns_with_suggestion():
    check = make({"agent_endpoint": AGENT, "exclude_label": ["x"]})
    assert check.warnings == [
        "cilium instance configuration: unknown option `exclude_label` is ignored; did you mean `exclude_labels`?"
    ]


def test_standard_options_reach_every_scraper():
    instance = {
        "agent_endpoint": AGENT,
        "operator_endpoint": OPERATOR,
        "timeout": 3,
        "tls_verify": False,
        "exclude_labels": ["subsystem"],
        "exclude_metrics": ["cilium_feature_.*"],
        "tags": ["team:net"],
        "extra_headers": {"X-A": "b"},
        "auth_token": {"reader": {"type": "file", "path": "/tmp/t"}, "writer": {"type": "header", "name": "A"}},
    }
    check = make(instance)
    for config in configs(check):
        for key in ("timeout", "tls_verify", "exclude_labels", "exclude_metrics", "extra_headers", "auth_token"):
            assert config[key] == instance[key]
        assert config["tags"][0] == "team:net"


def test_reserved_labels_renamed_and_user_renames_win():
    check = make({"agent_endpoint": AGENT, "rename_labels": {"service": "k8s_service", "reason": "why"}})
    renames = configs(check)[0]["rename_labels"]
    assert renames["endpoint"] == "cilium_endpoint"
    assert renames["host"] == "cilium_host"
    assert renames["service"] == "k8s_service"
    assert renames["reason"] == "why"
    assert set(RESERVED_LABEL_RENAMES) >= {"host", "service", "version", "env", "cluster", "endpoint"}


def test_legacy_v1_options_are_translated():
    settings = Settings.parse(
        {
            "agent_endpoint": AGENT,
            "send_histograms_buckets": False,
            "labels_mapper": {"a": "b"},
            "health_service_check": False,
            "ignore_metrics": ["cilium_feature_*"],
            "prometheus_timeout": 4,
            "bearer_token_auth": True,
            "send_monotonic_counter": True,
        }
    )
    options = settings.scraper_options
    assert options["collect_histogram_buckets"] is False
    assert options["rename_labels"] == {"a": "b"}
    assert options["enable_health_service_check"] is False
    assert options["timeout"] == 4
    assert options["exclude_metrics"] == ["(?s:cilium_feature_.*)\\Z"]
    assert options["auth_token"]["reader"]["path"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert "send_monotonic_counter" not in options
    assert settings.warnings == []


def test_metric_limit_is_unlimited_literal():
    assert CiliumCheck.DEFAULT_METRIC_LIMIT == 0
