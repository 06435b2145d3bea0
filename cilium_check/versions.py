"""Version metadata of the components other than the agent."""

from __future__ import annotations

from collections.abc import Callable

from datadog_checks.base.utils.metadata.version import parse_version


def component_version(key: str) -> Callable[[str, dict], dict[str, str]]:
    """A metadata transformer that splits a release into `<key>.major`, `.minor`, ... as the base
    class splits `version`."""

    def transform(value: str, options: dict) -> dict[str, str]:
        scheme, parts = parse_version(value, options)
        return {f"{key}.{part}": v for part, v in parts.items()} | {f"{key}.raw": value, f"{key}.scheme": scheme}

    return transform
