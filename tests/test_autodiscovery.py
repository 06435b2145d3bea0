"""The shipped Autodiscovery template, resolved the way the Agent resolves it for each container."""

import re
import socket
from pathlib import Path

import pytest
import yaml
from datadog_checks.base.constants import ServiceCheck

from datadog_checks.cilium import CiliumCheck
from cilium_dev.fixtures.payloads import render
from cilium_dev.fixtures.server import FixtureServer

TEMPLATE = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "datadog_checks" / "cilium" / "data" / "auto_conf.yaml").read_text()
)


def resolve(value, variables):
    """The Agent's template-variable substitution (`%%host%%`, `%%port_<name>%%`)."""
    if isinstance(value, str):
        return re.sub(r"%%([a-z_-]+)%%", lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    return value


@pytest.fixture
def container():
    """A container of a given component: a server that serves its metrics at /metrics."""
    servers = []

    def start(component):
        server = FixtureServer().start()
        server.set_payload("/metrics", render(component, "1.20"))
        servers.append(server)
        return {"host": "127.0.0.1", "port_prometheus": server.port}

    yield start
    for server in servers:
        server.stop()


def port_is_free(port):
    with socket.socket() as s:
        # As a server would: connections of an earlier test may linger in TIME_WAIT on the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_template_targets_the_agent_and_operator_images():
    assert {"cilium", "cilium-agent", "operator-generic", "operator-aws", "operator-azure"} <= set(
        TEMPLATE["ad_identifiers"]
    )
    assert len(TEMPLATE["instances"]) == 1


@pytest.mark.parametrize("component", ["agent", "operator"])
def test_template_scrapes_each_container_as_its_component(component, container, aggregator, dd_run_check):
    if not (port_is_free(9965) and port_is_free(9091)):
        pytest.skip("a Hubble port is in use on this machine")
    variables = container(component)
    (instance,) = resolve(TEMPLATE["instances"], variables)
    check = CiliumCheck("cilium", TEMPLATE["init_config"] or {}, [instance])
    dd_run_check(check)
    dd_run_check(check)
    url = f"http://127.0.0.1:{variables['port_prometheus']}/metrics"
    # Hubble is off (nothing on 9965 or 9091): optional, so neither an error nor a CRITICAL.
    aggregator.assert_service_check(
        "cilium.openmetrics.health", ServiceCheck.OK, tags=[f"cilium_component:{component}", f"endpoint:{url}"], count=2
    )
    assert len(aggregator.service_checks("cilium.openmetrics.health")) == 2
    assert {t for m in aggregator.metrics("cilium.check.contexts") for t in m.tags} >= {f"cilium_component:{component}"}


def test_template_finds_hubble_beside_the_agent(container, aggregator, dd_run_check):
    if not port_is_free(9965):
        pytest.skip("port 9965 is in use on this machine")
    # Hubble's metrics server on its real port, in the "agent pod" (the same loopback host).
    with FixtureServer(port=9965) as hubble:
        hubble.set_payload("/metrics", render("hubble", "1.20"))
        (instance,) = resolve(TEMPLATE["instances"], container("agent"))
        dd_run_check(CiliumCheck("cilium", {}, [instance]))
    aggregator.assert_metric_has_tag("cilium.hubble.flows_processed.count", "endpoint:http://127.0.0.1:9965/metrics")
    aggregator.assert_metric_has_tag("cilium.endpoint.state", "cilium_component:agent")
