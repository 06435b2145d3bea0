"""`python -m cilium_check`: the `cilium-check` command."""

import sys

from .cli import main

sys.exit(main())
