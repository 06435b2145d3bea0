"""The registry of Cilium components the check scrapes.

Every other module reads the components from here: the instance options and their validation,
the recognition of a component from the families it serves, the default cardinality budgets,
the secrets held in endpoint URLs, the fixture payloads and the generated documentation. A new
component is one entry below (and its rows in the mapping table).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """A Cilium process that serves Prometheus metrics."""

    name: str  # as in the mapping table's `component` column and the `cilium_component` tag
    option: str  # the instance option holding its endpoint
    port: int  # default port since `port_since`
    legacy_ports: tuple[int, ...]  # ports of older releases or other distributions
    helm_value: str  # what turns the endpoint on in Cilium's Helm chart
    # Family-name prefixes no other component uses: an exposition is recognised by them. The
    # agent has none of its own, since the plain `cilium_` prefix is shared (see `detect`).
    family_prefixes: tuple[str, ...] = ()
    # Prefixes that point at this component only when no name of another's own does: Hubble's
    # metrics server serves the relay's `grpc_server_*` families too.
    weak_prefixes: tuple[str, ...] = ()
    # Labels with no upper bound (one value per IP, pod or DNS name), summed away unless an
    # instance keeps them (`hubble_unbounded_labels`).
    unbounded_labels: tuple[str, ...] = ()
    max_contexts: int = 0  # default cardinality budget of one endpoint per run; 0 means none
    # The family of the process's start time (mapped or not): a change means the process restarted,
    # which decides how counters are accounted after an outage (see `restarts`).
    start_time_family: str = ""
    # The first Cilium release whose default port is `port` (for the components older than the
    # port renumbering of 1.12) or that has the endpoint at all.
    port_since: str = "1.12"
    # The first Cilium release that has this endpoint at all (empty: every supported release).
    endpoint_since: str = ""


AGENT = Component(
    name="agent",
    option="agent_endpoint",
    port=9962,
    legacy_ports=(9090, 9990),  # 9090 before Cilium 1.12; 9990 on GKE Dataplane V2
    helm_value="prometheus.enabled=true",
    start_time_family="cilium_process_start_time_seconds",
)
OPERATOR = Component(
    name="operator",
    option="operator_endpoint",
    port=9963,
    legacy_ports=(6942,),  # before Cilium 1.12
    helm_value="operator.prometheus.enabled=true",
    family_prefixes=("cilium_operator_",),
    start_time_family="cilium_operator_process_start_time_seconds",
)
HUBBLE = Component(
    name="hubble",
    option="hubble_endpoint",
    port=9965,
    legacy_ports=(9091,),  # before Cilium 1.12
    helm_value="hubble.metrics.enabled={dns,drop,tcp,flow,port-distribution,icmp,httpV2}",
    family_prefixes=("hubble_",),
    unbounded_labels=("source_ip", "destination_ip", "source_pod", "destination_pod", "query"),
    # Hubble's server runs in the agent: it has no start time of its own, and takes the agent's.
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
    family_prefixes=("cilium_clustermesh_apiserver_",),
    start_time_family="process_start_time_seconds",  # unprefixed, and not mapped
)
KVSTOREMESH = Component(
    name="kvstoremesh",
    option="kvstoremesh_endpoint",
    port=9964,  # in the clustermesh-apiserver pod
    legacy_ports=(),
    helm_value="clustermesh.apiserver.metrics.kvstoremesh.enabled=true",
    family_prefixes=("cilium_kvstoremesh_",),
    start_time_family="process_start_time_seconds",  # unprefixed, and not mapped
)

STANDALONE_DNS_PROXY = Component(
    name="standalone-dns-proxy",
    option="standalone_dns_proxy_endpoint",
    # On the node's host network (`--sdp-prometheus-serve-addr`); the chart declares no port,
    # Service or annotation for it, so a scraper targets node IP:9961 itself.
    port=9961,
    legacy_ports=(),
    helm_value="standaloneDnsProxy.enabled=true",
    # Its hive families keep the agent's fixed `cilium_` prefix (`cilium_hive_*`).
    family_prefixes=("standalone_dns_proxy_",),
    start_time_family="standalone_dns_proxy_process_start_time_seconds",
    port_since="1.20",
    endpoint_since="1.20",
)
HUBBLE_RELAY = Component(
    name="hubble-relay",
    option="hubble_relay_endpoint",
    port=9966,
    legacy_ports=(),
    helm_value="hubble.relay.prometheus.enabled=true",
    family_prefixes=("hubble_relay_",),
    # `grpc_server_*` is the go-grpc-prometheus interceptor, on the relay's API and on Hubble's
    # metrics server alike: before 1.15 (no `hubble_relay_pool_*`) it is all that tells a relay.
    # Its process families are unprefixed (`process_*`), as other Go programs' are.
    weak_prefixes=("grpc_server_",),
    start_time_family="process_start_time_seconds",
    endpoint_since="1.12",
)

# In the order the check scrapes them and the documentation lists them.
COMPONENTS: tuple[Component, ...] = (
    AGENT,
    OPERATOR,
    HUBBLE,
    CLUSTERMESH_APISERVER,
    KVSTOREMESH,
    STANDALONE_DNS_PROXY,
    HUBBLE_RELAY,
)
BY_NAME = {component.name: component for component in COMPONENTS}
NAMES = tuple(BY_NAME)

# The option whose URL may serve any component: the check recognises which from what it serves
# (the Autodiscovery template uses it, since one template covers agent and operator containers).
DETECT_OPTION = "metrics_endpoint"
ENDPOINT_OPTIONS = tuple(component.option for component in COMPONENTS) + (DETECT_OPTION,)
