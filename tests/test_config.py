"""Instance configuration: what is accepted, translated, warned about and rejected, in a user's words.

The options come from `assets/configuration/spec.yaml` through the models ddev generates; these
tests hold the check to the messages users see for configurations as they really write them.
"""

import logging

import pytest
from datadog_checks.base.constants import ServiceCheck
from datadog_checks.base.errors import ConfigurationError

from cilium_check.components import AGENT as AGENT_COMPONENT
from cilium_check.components import COMPONENTS
from cilium_check.config import Settings, translate_legacy
from cilium_check.tags import RESERVED_LABEL_RENAMES
from cilium_dev.fixtures.server import FixtureServer, closed_url
from datadog_checks.cilium import CiliumCheck

AGENT = "http://127.0.0.1:9962/metrics"
OPERATOR = "http://127.0.0.1:9963/metrics"
HEALTH = "cilium.openmetrics.health"


def make(instance, init_config=None):
    return CiliumCheck("cilium", init_config or {}, [instance])


def configs(check):
    """The scraper configuration each endpoint option gets once its URL answers."""
    return [check.scraper_config(e.component or AGENT_COMPONENT, e.candidates[0]) for e in check.settings.endpoints]


def test_both_endpoints_give_one_scraper_each():
    check = make({"agent_endpoint": AGENT, "operator_endpoint": OPERATOR})
    assert [c["openmetrics_endpoint"] for c in configs(check)] == [AGENT, OPERATOR]
    agent, operator = configs(check)
    assert "cilium_drop_count" in agent["metrics"][0]
    assert "cilium_drop_count" not in operator["metrics"][0]
    assert agent["tags"] == ["cilium_component:agent"]
    assert operator["tags"] == ["cilium_component:operator"]


def test_the_check_runs_with_its_generated_models():
    check = make({"agent_endpoint": [AGENT], "max_contexts": {"hubble": 5}})
    # `self.config` is the base class's typed view, loaded from datadog_checks.cilium.config_models.
    assert type(check.config).__module__ == "datadog_checks.cilium.config_models.instance"
    assert check.config.agent_endpoint == (AGENT,)
    assert check.config.timeout == 10  # the spec's default, through the generated defaults
    assert check.shared_config is not None
    assert check.settings.max_contexts["hubble"] == 5


def test_no_endpoint_names_the_options():
    with pytest.raises(ConfigurationError, match="`agent_endpoint`, `operator_endpoint`"):
        make({"tags": ["a:b"]})


def test_misspelt_endpoint_option_gets_did_you_mean():
    with pytest.raises(ConfigurationError) as error:
        make({"agent_endpiont": AGENT})
    message = str(error.value)
    assert "no endpoint to scrape" in message
    assert "unknown option `agent_endpiont` is ignored; did you mean `agent_endpoint`?" in message


@pytest.mark.parametrize(
    "value, why",
    [
        ("localhost:9962/metrics", r"is not an http\(s\) URL \(`http://` is missing\)"),
        ("ftp://x/metrics", r"is not an http\(s\) URL \(it starts with `ftp://`\)"),
        ("http://", "has no host after `http://`"),
        ("http://a:port/metrics", "has a port that is not a number"),
    ],
)
def test_malformed_url_is_named(value, why):
    with pytest.raises(ConfigurationError, match=f"`agent_endpoint`: the URL {why}"):
        make({"agent_endpoint": value})


@pytest.mark.parametrize(
    "instance",
    [
        {"agent_endpoint": "htp://cilium:hunter2-pass@10.0.0.1:9962/metrics"},
        {"agent_endpoint": "http:/cilium:hunter2-pass@10.0.0.1:9962/metrics"},
        {"agent_endpoint": ["http://10.0.0.1:9962/metrics", "10.0.0.1:9090?token=hunter2-pass"]},
        {"agent_endpoint": "http://c:hunter2-pass@h/m", "operator_endpoint": "http://c:hunter2-pass@h/m"},
        {"agent_endpoint": "http://h/m", "headers": {"Authorization": ["Bearer hunter2-pass"]}},
        {"agent_endpoint": "http://h/m", "extra_headers": {"X-Token": 1234567890}},
        {"agent_endpoint": "http://h/m", "password": {"hunter2-pass": 1}},
        {"agent_endpoint": "http://%%host%%:9962/metrics?token=hunter2-pass"},
    ],
)
def test_configuration_errors_never_quote_a_credential(instance):
    with pytest.raises(ConfigurationError) as error:
        make(instance)
    message = str(error.value)
    assert "hunter2" not in message and "1234567890" not in message
    assert "`" in message  # it names the option


@pytest.mark.parametrize("option", [c.option for c in COMPONENTS] + ["metrics_endpoint"])
def test_unresolved_template_variable_is_named(option):
    with pytest.raises(ConfigurationError) as error:
        make({option: ["http://10.0.0.1:9962/metrics", "http://%%host%%:9090/metrics"]})
    message = str(error.value)
    assert f"`{option}`" in message
    assert "template variable `%%host%%`, which was not resolved" in message
    assert "in conf.d give the address itself" in message


def test_wrong_type_names_option_and_value():
    with pytest.raises(ConfigurationError, match=r"`tags` must be a list of strings, got a string \('team:net'\)"):
        make({"agent_endpoint": AGENT, "tags": "team:net"})


def test_wrong_type_of_a_secret_is_not_quoted():
    with pytest.raises(ConfigurationError) as error:
        make({"agent_endpoint": AGENT, "password": ["hunter2-secret"]})
    assert "`password` must be a string, got a list" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_init_config_option_of_the_wrong_type_names_its_section():
    with pytest.raises(ConfigurationError) as error:
        make({"agent_endpoint": AGENT}, init_config={"timeout": "ten"})
    message = str(error.value)
    assert message.startswith("cilium shared configuration (init_config): ")
    assert "`init_config.timeout` must be a number, got a string ('ten')" in message


@pytest.mark.parametrize("value", ["1e9", "lots", 1.5, True, -3, [5]])
def test_max_contexts_of_the_wrong_kind_gets_one_message(value):
    with pytest.raises(ConfigurationError) as error:
        make({"hubble_endpoint": AGENT, "max_contexts": value})
    message = str(error.value)
    assert message.count("max_contexts") == 3  # the option, then the two examples of the one message
    assert "whole number of contexts (0 for no limit) or a mapping of component to number" in message
    for pydantic_word in ("Input should", "int_parsing", "mappingproxy", "union", "is-instance"):
        assert pydantic_word not in message


def test_same_url_twice_is_rejected():
    with pytest.raises(ConfigurationError, match=rf"`agent_endpoint` and `operator_endpoint` list the same URL \({AGENT}\)"):
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


@pytest.mark.parametrize(
    "instance, legacy",
    [
        # `use_openmetrics` decides when it is set, as in the bundled check.
        ({"agent_endpoint": AGENT, "use_openmetrics": True}, False),
        ({"agent_endpoint": AGENT, "use_openmetrics": False}, True),
        ({"agent_endpoint": AGENT, "use_openmetrics": "false"}, True),
        ({"hubble_endpoint": AGENT, "use_openmetrics": False}, True),
        # Absent: an instance the bundled check could have run keeps its legacy names ...
        ({"agent_endpoint": AGENT}, True),
        ({"operator_endpoint": OPERATOR, "tags": ["a:b"], "timeout": 5}, True),
        ({"agent_endpoint": AGENT, "labels_mapper": {"a": "b"}, "send_monotonic_counter": True}, True),
        # ... and one written for this check gets the current ones.
        ({"agent_endpoint": AGENT, "operator_endpoint": OPERATOR}, False),
        ({"agent_endpoint": [AGENT]}, False),
        ({"metrics_endpoint": AGENT}, False),
        ({"agent_endpoint": AGENT, "hubble_endpoint": "http://127.0.0.1:9965/metrics"}, False),
        ({"agent_endpoint": AGENT, "max_contexts": 500}, False),
        ({"agent_endpoint": AGENT, "fast_path": True}, False),
    ],
)
def test_the_mode_follows_use_openmetrics_then_the_shape_of_the_instance(instance, legacy, caplog):
    caplog.set_level(logging.INFO)
    check = make(instance)
    assert check.settings.legacy is legacy
    assert "use_openmetrics" not in configs(check)[0]
    notice = "legacy mode: the names and types of the bundled check's OpenMetrics V1 mode"
    assert (notice in caplog.text) is legacy
    if legacy:
        assert "set `use_openmetrics: true` in the instance for the current names" in caplog.text


def test_unknown_option_warns_with_suggestion():
    check = make({"agent_endpoint": AGENT, "exclude_label": ["x"]})
    assert check.warnings == [
        "cilium instance configuration: unknown option `exclude_label` is ignored; did you mean `exclude_labels`?"
    ]


@pytest.mark.parametrize("option, value", [("no_proxy", True), ("kerberos", "disabled"), ("tls_validate_hostname", False)])
def test_options_the_base_library_honours_are_not_unknown(option, value):
    # The HTTP wrapper reads every field of STANDARD_FIELDS and remaps `no_proxy` and `kerberos`.
    check = make({"agent_endpoint": AGENT, option: value})
    assert check.warnings == []


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
    raw = {
        "agent_endpoint": AGENT,
        "send_histograms_buckets": False,
        "labels_mapper": {"a": "b"},
        "health_service_check": False,
        "ignore_metrics": ["cilium_feature_*"],
        "prometheus_timeout": 4,
        "bearer_token_auth": True,
        "send_monotonic_counter": True,
    }
    check = make(raw)
    assert check.settings.legacy  # `use_openmetrics` absent, one bundled-style endpoint
    options = check.settings.scraper_options
    assert options["collect_histogram_buckets"] is False
    assert options["rename_labels"] == {"a": "b"}
    assert options["enable_health_service_check"] is False
    assert options["timeout"] == 4
    assert options["exclude_metrics"] == ["(?s:cilium_feature_.*)\\Z"]
    assert options["auth_token"]["reader"]["path"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert options["send_monotonic_counter"] is True  # a V1 option that legacy mode applies
    assert options["tag_by_endpoint"] is False  # V1 tags only its health check with the URL
    assert check.warnings == []
    # The base class and the models see the V2 names too.
    assert check.config.timeout == 4
    assert check.config.enable_health_service_check is False
    _, notes = translate_legacy(raw)
    assert "`labels_mapper` is the legacy name of `rename_labels`; its value is used for `rename_labels`" in notes


def test_v1_submission_options_have_no_effect_with_the_current_names(caplog):
    caplog.set_level(logging.DEBUG)
    check = make({"agent_endpoint": AGENT, "use_openmetrics": True, "send_monotonic_counter": False})
    assert "send_monotonic_counter" not in check.settings.scraper_options
    assert "`send_monotonic_counter` is an option of legacy mode; it has no effect" in caplog.text


def test_settings_take_the_component_budgets_from_the_registry():
    check = make({"hubble_endpoint": AGENT})
    assert check.settings.max_contexts == {c.name: c.max_contexts for c in COMPONENTS}
    check = make({"hubble_endpoint": AGENT, "max_contexts": 7})
    assert set(check.settings.max_contexts.values()) == {7}
    assert isinstance(check.settings, Settings)


def test_metric_limit_is_unlimited_literal():
    assert CiliumCheck.DEFAULT_METRIC_LIMIT == 0


# -- what the run says about an endpoint it cannot use ----------------------------------------------


def test_https_on_a_plain_http_port_says_use_http(aggregator, caplog, fixture_server):
    caplog.set_level(logging.DEBUG)
    url = fixture_server.url("agent").replace("http://", "https://")
    check = make({"use_openmetrics": True, "agent_endpoint": url})
    errors = [check.run() for _ in range(4)]
    assert "the endpoint answers in plain HTTP, not TLS: use an http:// URL" in errors[0]
    assert "tls_cert" not in errors[0] and "client certificate" not in errors[0]
    assert "Helm values" not in errors[0]
    health = aggregator.service_checks(HEALTH)
    assert [sc.status for sc in health] == [ServiceCheck.CRITICAL] * 4
    assert all("use an http:// URL" in sc.message for sc in health)
    # The base library chases the certificate chain after a TLS failure and logs an ERROR when that
    # fails: once, not at every run.
    chasing = [r for r in caplog.records if r.levelno >= logging.ERROR and "AIA chasing" in r.getMessage()]
    assert 1 <= len(chasing) <= 2, [r.getMessage() for r in chasing]


def test_helm_values_are_named_only_where_nothing_listens(fixture_server):
    refused = make({"agent_endpoint": closed_url()}).run()
    assert "connection refused" in refused and "Cilium serves them when its Helm values set `prometheus.enabled=true`" in refused

    with FixtureServer() as server:
        not_found = server.url_for("/no/such/metrics")
        server.set_fault("/slow/metrics", "slow", seconds=3)
        cases = {
            "404": {"agent_endpoint": not_found},
            "TLS": {"agent_endpoint": server.url("agent").replace("http://", "https://")},
            "timeout": {"agent_endpoint": server.url_for("/slow/metrics"), "timeout": 0.5},
            "404 then refused": {"agent_endpoint": [not_found, closed_url()]},
        }
        messages = {name: make(instance).run() for name, instance in cases.items()}
    assert "HTTP 404" in messages["404"] and "TLS error" in messages["TLS"] and "no answer" in messages["timeout"]
    for name in ("404", "TLS", "timeout"):
        assert "Helm values" not in messages[name], name
    assert "Helm values" in messages["404 then refused"]
