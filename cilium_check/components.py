"""The Cilium components the check scrapes: their instance option, ports and version family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """A Cilium process that serves Prometheus metrics."""

    name: str  # as in the mapping table's `component` column and the `cilium_component` tag
    option: str  # the instance option holding its endpoint
    port: int  # default port since Cilium 1.12
    legacy_ports: tuple[int, ...]  # ports of older releases or other distributions
    version_family: str  # the family whose `version` label gives the component's release
    helm_value: str  # what turns the endpoint on in Cilium's Helm chart

    def default_url(self, host: str = "localhost") -> str:
        return f"http://{host}:{self.port}/metrics"


AGENT = Component(
    name="agent",
    option="agent_endpoint",
    port=9962,
    legacy_ports=(9090, 9990),  # 9090 before Cilium 1.12; 9990 on GKE Dataplane V2
    version_family="cilium_version",
    helm_value="prometheus.enabled=true",
)
OPERATOR = Component(
    name="operator",
    option="operator_endpoint",
    port=9963,
    legacy_ports=(6942,),  # before Cilium 1.12
    version_family="cilium_operator_version",
    helm_value="operator.prometheus.enabled=true",
)

COMPONENTS: tuple[Component, ...] = (AGENT, OPERATOR)
BY_NAME = {component.name: component for component in COMPONENTS}
BY_OPTION = {component.option: component for component in COMPONENTS}
