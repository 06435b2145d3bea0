"""Recognising which Cilium component serves a metrics endpoint, from the families it exposes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from .components import AGENT, COMPONENTS

# Family-name prefixes that only one component uses, longest first. The agent's families carry
# the plain `cilium_` prefix, which the operator and the mesh components also use for a few
# families (`cilium_hive_status`): the component with the most families wins.
_SPECIFIC_PREFIXES = sorted(
    ((prefix, c.name) for c in COMPONENTS for prefix in c.family_prefixes), key=lambda p: -len(p[0])
)


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
            if name.startswith("cilium_"):
                counted[AGENT.name] += 1
    return counted


def identify(lines: Iterable[str], known: Iterable[str] | None = None) -> str | None:
    """The component whose families dominate the exposition, or None if it is not Cilium's."""
    known = set(known) if known is not None else {c.name for c in COMPONENTS}
    counted = votes(lines)
    # On a tie the component with names of its own wins over the agent, whose `cilium_` prefix the
    # others share (`cilium_hive_status`).
    for component in sorted(counted, key=lambda c: (-counted[c], c == AGENT.name)):
        if component in known:
            return component
    return None


_SAMPLE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?[ \t]+([-+]?(\d|\.\d|inf|nan)|[-+]?Inf|NaN)", re.I)


def looks_like_sample(line: str) -> bool:
    """Whether a line has the shape of a Prometheus sample (a name, labels, then a number)."""
    return bool(line) and line[0] != "#" and _SAMPLE.match(line) is not None
