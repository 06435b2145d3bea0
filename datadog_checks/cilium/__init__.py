"""The module the Datadog Agent imports for the `cilium` check (`datadog_checks.<check name>`)."""

from cilium_check import CiliumCheck, __version__

__all__ = ["CiliumCheck", "__version__"]
