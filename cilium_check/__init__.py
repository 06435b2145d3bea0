"""A Datadog Agent check for Cilium."""

from .__about__ import __version__
from .check import CiliumCheck

__all__ = ["CiliumCheck", "__version__"]
