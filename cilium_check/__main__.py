"""`python -m cilium_check`: the `cilium-check` command."""

from .cli import entry

entry()
