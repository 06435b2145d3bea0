"""The package the Datadog Agent imports for the `cilium` check: the check class and its version.

The implementation (scrapers, mapping table, configuration rules) lives in `cilium_check`.
"""

from .__about__ import __version__
from .check import CiliumCheck

__all__ = ["CiliumCheck", "__version__"]
