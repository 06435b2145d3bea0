"""Tag names the check reserves or renames."""

from __future__ import annotations

from datadog_checks.base.utils.tagging import GENERIC_TAGS

COMPONENT_TAG = "cilium_component"

# Cilium labels whose names Datadog reserves for its own meaning: the Agent's generic tags, and
# `endpoint`, which OpenMetrics V2 uses for the scraped URL. Left as they are, they would mix with
# the host's `host`/`service`/`version` tags; each gets the `cilium_` prefix instead.
RESERVED_LABELS = tuple(sorted(GENERIC_TAGS | {"endpoint"}))

RESERVED_LABEL_RENAMES: dict[str, str] = {label: f"cilium_{label}" for label in RESERVED_LABELS}
