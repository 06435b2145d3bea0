"""The `cilium-check` subcommands that need a checkout: `demo`, `serve` and `preview`.

`cilium_check.cli` adds them when this package is importable (in a checkout, not from the wheel).
"""

from __future__ import annotations

import argparse
import sys
import threading

from cilium_check.components import COMPONENTS

from .demo import DEMO_SCENARIO
from .fixtures.payloads import CURRENT, FIXTURE_VERSIONS, PRERELEASE, serves
from .fixtures.scenarios import SCENARIOS


def command_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(sys.stdout, version=args.cilium_version, scenario=args.scenario)


def command_preview(args: argparse.Namespace) -> int:
    from .preview import main as preview_main

    for path in preview_main(args.out):
        print(path)
    return 0


def command_serve(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve the fixture payloads until interrupted, and say what to put in a conf.yaml."""
    from .fixtures.server import FixtureServer

    scenario = getattr(args, "scenario", None)
    version = args.cilium_version or (SCENARIOS[scenario].version if scenario else "") or CURRENT
    with FixtureServer(port=args.port) as server:
        # a component whose endpoint is newer than the release (the DNS proxy's, 1.20) is left out
        served = [c for c in COMPONENTS if serves(c.name, version)]
        sick = f", sick: {SCENARIOS[scenario].summary}" if scenario else ""
        print(f"Serving a Cilium {version}{sick} on {server.base_url} (Ctrl-C to stop). Endpoints:")
        for component in served:
            print(f"  {component.name:<22} {server.url(component.name, version, scenario)}")
        print(
            "\nA conf.yaml for `.venv/bin/cilium-check check -c conf.yaml` (or `doctor -c conf.yaml`):"
            "\n\ninit_config:\n\ninstances:"
        )
        for index, component in enumerate(served):
            url = server.url(component.name, version, scenario)
            print(f"  {'- ' if index == 0 else '  '}{component.option}: {url}")
        sys.stdout.flush()
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
    return 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the checkout-only subcommands on the `cilium-check` parser."""
    versions = ", ".join((*FIXTURE_VERSIONS, PRERELEASE))  # the pre-release: its agent families
    demo = sub.add_parser("demo", parents=[common], help="run the check against the embedded fixture server")
    demo.add_argument("--cilium-version", default=None, help=f"Cilium release to emulate ({versions}; default {CURRENT})")
    demo.add_argument(
        "--scenario", default=DEMO_SCENARIO, choices=sorted(SCENARIOS), help="the sick cluster `doctor` is shown on"
    )
    demo.set_defaults(func=command_demo)

    serve = sub.add_parser(
        "serve", parents=[common], help="start the embedded fixture server alone and print the URLs for a conf.yaml"
    )
    serve.add_argument("--cilium-version", default=None, help=f"Cilium release to emulate ({versions}; default {CURRENT})")
    serve.add_argument("--port", type=int, default=0, help="port to listen on, on 127.0.0.1 (default: any free one)")
    serve.add_argument("--scenario", default=None, choices=sorted(SCENARIOS), help="serve a sick cluster instead")
    serve.set_defaults(func=command_serve)

    preview = sub.add_parser(
        "preview", parents=[common], help="render each shipped dashboard as HTML from the demo's data"
    )
    preview.add_argument("--out", default="preview", metavar="DIR", help="directory for the pages (default: preview)")
    preview.set_defaults(func=command_preview)
