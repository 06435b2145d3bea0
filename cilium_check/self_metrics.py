"""Metrics the check submits about itself (not Cilium families), with their metadata."""

from __future__ import annotations

from .mapping import Submission

SELF_METRICS: tuple[Submission, ...] = ()
