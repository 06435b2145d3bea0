"""Metrics the check submits about itself (not Cilium families), with their metadata."""

from __future__ import annotations

from .mapping import Submission

CONTEXTS = Submission(
    "cilium.check.contexts",
    "gauge",
    "",
    "",
    "Contexts (distinct metric name and tag sets) the check submitted for this endpoint in its last run.",
    0,
)
CONTEXTS_DROPPED = Submission(
    "cilium.check.contexts_dropped",
    "gauge",
    "",
    "",
    "Contexts of this endpoint the check dropped in its last run because they exceeded `max_contexts`.",
    -1,
)

LINES_SKIPPED = Submission(
    "cilium.check.lines_skipped",
    "gauge",
    "",
    "",
    "Malformed lines of this endpoint's last payload that the check skipped, keeping every well-formed line.",
    -1,
)

SELF_METRICS: tuple[Submission, ...] = (CONTEXTS, CONTEXTS_DROPPED, LINES_SKIPPED)
