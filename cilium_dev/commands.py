"""The `cilium-check` subcommands that need a checkout: `demo`, `serve` and `preview`.

`cilium_check.cli` adds them when this package is importable (in a checkout, not from the wheel).
"""

from __future__ import annotations

import argparse
import sys
import threading

from cilium_check.components import COMPONENTS

from .fixtures.payloads import CURRENT, FIXTURE_VERSIONS, serves


def command_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(sys.stdout, version=args.cilium_version)


def command_preview(args: argparse.Namespace) -> int:
    from .preview import main as preview_main

    for path in preview_main(args.out):
        print(path)
    return 0


def command_serve(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve the fixture payloads until interrupted, and say what to put in a conf.yaml."""
    from .fixtures.server import FixtureServer

    version = args.cilium_version or CURRENT
    with FixtureServer(port=args.port) as server:
        # a component whose endpoint is newer than the release (the DNS proxy's, 1.20) is left out
        served = [c for c in COMPONENTS if serves(c.name, version)]
        print(f"Serving a Cilium {version} on {server.base_url} (Ctrl-C to stop). Endpoints:")
        for component in served:
            print(f"  {component.name:<22} {server.url(component.name, version)}")
        print("\nA conf.yaml for `.venv/bin/cilium-check check -c conf.yaml`:\n\ninit_config:\n\ninstances:")
        for index, component in enumerate(served):
            print(f"  {'- ' if index == 0 else '  '}{component.option}: {server.url(component.name, version)}")
        sys.stdout.flush()
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
    return 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the checkout-only subcommands on the `cilium-check` parser."""
    versions = ", ".join(FIXTURE_VERSIONS)
    demo = sub.add_parser("demo", parents=[common], help="run the check against the embedded fixture server")
    demo.add_argument("--cilium-version", default=None, help=f"Cilium release to emulate ({versions}; default {CURRENT})")
    demo.set_defaults(func=command_demo)

    serve = sub.add_parser(
        "serve", parents=[common], help="start the embedded fixture server alone and print the URLs for a conf.yaml"
    )
    serve.add_argument("--cilium-version", default=None, help=f"Cilium release to emulate ({versions}; default {CURRENT})")
    serve.add_argument("--port", type=int, default=0, help="port to listen on, on 127.0.0.1 (default: any free one)")
    serve.set_defaults(func=command_serve)

    preview = sub.add_parser(
        "preview", parents=[common], help="render each shipped dashboard as HTML from the demo's data"
    )
    preview.add_argument("--out", default="preview", metavar="DIR", help="directory for the pages (default: preview)")
    preview.set_defaults(func=command_preview)
