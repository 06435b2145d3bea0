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
    helm_value: str  # what turns the endpoint on in Cilium's Helm chart
    max_contexts: int = 0  # default cardinality guard of one endpoint; 0 means none


AGENT = Component(
    name="agent",
    option="agent_endpoint",
    port=9962,
    legacy_ports=(9090, 9990),  # 9090 before Cilium 1.12; 9990 on GKE Dataplane V2
    helm_value="prometheus.enabled=true",
)
OPERATOR = Component(
    name="operator",
    option="operator_endpoint",
    port=9963,
    legacy_ports=(6942,),  # before Cilium 1.12
    helm_value="operator.prometheus.enabled=true",
)

HUBBLE = Component(
    name="hubble",
    option="hubble_endpoint",
    port=9965,
    legacy_ports=(9091,),  # before Cilium 1.12
    helm_value="hubble.metrics.enabled={dns,drop,tcp,flow,port-distribution,icmp,httpV2}",
    # Hubble's context options multiply its series by pods, IPs or DNS names: past this many
    # contexts on one node the check keeps the first ones and reports the rest as dropped.
    max_contexts=10000,
)
CLUSTERMESH_APISERVER = Component(
    name="clustermesh-apiserver",
    option="clustermesh_apiserver_endpoint",
    port=9962,  # in the clustermesh-apiserver pod
    legacy_ports=(),
    helm_value="clustermesh.apiserver.metrics.enabled=true",
)
KVSTOREMESH = Component(
    name="kvstoremesh",
    option="kvstoremesh_endpoint",
    port=9964,  # in the clustermesh-apiserver pod
    legacy_ports=(),
    helm_value="clustermesh.apiserver.metrics.kvstoremesh.enabled=true",
)

COMPONENTS: tuple[Component, ...] = (AGENT, OPERATOR, HUBBLE, CLUSTERMESH_APISERVER, KVSTOREMESH)
BY_NAME = {component.name: component for component in COMPONENTS}
