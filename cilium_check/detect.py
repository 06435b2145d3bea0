"""Recognising which Cilium component serves a metrics endpoint, from the families it exposes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from .components import AGENT, COMPONENTS

# Family-name prefixes that only one component uses, longest first. The agent's families carry
# the plain `cilium_` prefix, which every other component except Hubble and the relay also uses
# for a few families (`cilium_hive_status`; all ten hive families of the standalone DNS proxy):
# a name of a component's own outweighs any number of plain `cilium_` names.
_SPECIFIC_PREFIXES = sorted(
    ((prefix, c.name) for c in COMPONENTS for prefix in c.family_prefixes), key=lambda p: -len(p[0])
)
_WEAK_PREFIXES = tuple((prefix, c.name) for c in COMPONENTS for prefix in c.weak_prefixes)
WEAK = "weak:"  # the key of a weak prefix's votes in `votes`


def family_names(lines: Iterable[str]) -> Iterable[str]:
    """The metric names of an exposition, one per `# TYPE` line and per sample line (a line that is
    not a sample, a truncated one say, does not count)."""
    for line in lines:
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 3:
                yield parts[2]
        elif looks_like_sample(line):
            yield line.split("{", 1)[0].split(" ", 1)[0]


def votes(lines: Iterable[str]) -> Counter[str]:
    """How many names of the exposition point at each component."""
    counted: Counter[str] = Counter()
    for name in family_names(lines):
        for prefix, component in _SPECIFIC_PREFIXES:
            if name.startswith(prefix):
                counted[component] += 1
                break
        else:
            for prefix, component in _WEAK_PREFIXES:
                if name.startswith(prefix):
                    counted[WEAK + component] += 1
                    break
            else:
                if name.startswith("cilium_"):
                    counted[AGENT.name] += 1
    return counted


def identify(lines: Iterable[str], known: Iterable[str] | None = None) -> str | None:
    """The component whose families dominate the exposition, or None if it is not Cilium's.

    Only names of a component's own count while there are any (the most of them wins, and a tie
    goes to the first in the registry's order); then the weak prefixes (the relay's `grpc_server_`,
    which Hubble serves too); the agent is the component of plain `cilium_` names alone.
    """
    known = set(known) if known is not None else {c.name for c in COMPONENTS}
    counted = votes(lines)
    order = {c.name: i for i, c in enumerate(COMPONENTS)}
    for prefix in ("", WEAK):
        candidates = [
            c[len(prefix) :]
            for c in counted
            if c.startswith(prefix) and (prefix or not c.startswith(WEAK)) and c != AGENT.name
        ]
        ranked = sorted((c for c in candidates if c in known), key=lambda c: (-counted[prefix + c], order[c]))
        if ranked:
            return ranked[0]
    if counted[AGENT.name] and AGENT.name in known:
        return AGENT.name
    return None


_SAMPLE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?[ \t]+([-+]?(\d|\.\d|inf|nan)|[-+]?Inf|NaN)", re.I)


def looks_like_sample(line: str) -> bool:
    """Whether a line has the shape of a Prometheus sample (a name, labels, then a number)."""
    return bool(line) and line[0] != "#" and _SAMPLE.match(line) is not None
