"""`cilium-check`: run the check outside an Agent, the way `datadog-agent check cilium` does."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from datadog_checks.cilium import CiliumCheck
from . import doctor as doctor_module
from .agent_sim import printer
from .agent_sim.runner import exit_code, run_instances

CHECK_NAME = "cilium"


class ConfigFileError(Exception):
    """The configuration file cannot be used; the message names the file and the problem."""


def load_config(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`init_config` and `instances` of a conf.d-style YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigFileError(f"{path}: cannot read the configuration: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigFileError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping with `init_config` and `instances`")
    init_config = data.get("init_config") or {}
    instances = data.get("instances")
    if not isinstance(init_config, dict):
        raise ConfigFileError(f"{path}: `init_config` must be a mapping")
    if not isinstance(instances, list) or not instances:
        raise ConfigFileError(f"{path}: `instances` must be a non-empty list")
    for i, instance in enumerate(instances, 1):
        if not isinstance(instance, dict):
            raise ConfigFileError(f"{path}: instance #{i} must be a mapping of options")
    return init_config, instances


def command_check(args: argparse.Namespace) -> int:
    try:
        init_config, instances = load_config(Path(args.config))
    except ConfigFileError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    results = run_instances(
        CiliumCheck,
        CHECK_NAME,
        init_config,
        instances,
        times=args.check_times,
        rate=args.check_rate,
        pause=args.pause / 1000,
        config_source=f"file:{Path(args.config).resolve()}",
    )
    if args.json:
        printer.print_json(results, sys.stdout)
    else:
        printer.print_text(results, sys.stdout, table=args.table)
    return exit_code(results)


LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]


def build_parser() -> argparse.ArgumentParser:
    # `--log-level` is accepted before and after the subcommand alike: every parser shares this
    # action, whose default stays SUPPRESS so that the subcommand's parse keeps what came before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=LOG_LEVELS,
        help="level of the check's own log lines, written to stderr (default: error)",
    )
    try:
        from cilium_dev.commands import add_commands
    except ImportError:  # installed from the wheel, which carries only the check
        add_commands = None
    parser = argparse.ArgumentParser(
        prog="cilium-check",
        description=__doc__,
        parents=[common],
        epilog=None if add_commands else "`demo`, `serve` and `preview` run from a checkout of datadog-cilium.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser(
        "check", parents=[common], help="run each instance of a configuration file like `agent check cilium`"
    )
    check.add_argument("-c", "--config", required=True, help="a conf.d-style YAML file (init_config, instances)")
    check.add_argument("-r", "--check-rate", action="store_true", help="run twice, so counters show their deltas")
    check.add_argument("-t", "--check-times", type=int, default=1, metavar="N", help="number of runs (default 1)")
    check.add_argument("--pause", type=int, default=1000, metavar="MS", help="pause between runs (default 1000)")
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the JSON `agent check --json` prints")
    output.add_argument("--table", action="store_true", help="print series as a table")
    check.set_defaults(func=command_check)

    doctor = sub.add_parser(
        "doctor",
        parents=[common],
        help="judge a live Cilium by the shipped monitors and say what collecting it costs",
        description=doctor_module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor_module.add_arguments(doctor)
    doctor.set_defaults(func=doctor_module.command_doctor)

    if add_commands is not None:
        add_commands(sub, common)
    return parser


def entry() -> None:
    """The `cilium-check` command (and `python -m cilium_check`)."""
    # `cilium-check ... | head` should end quietly, like any command-line tool. Only the command
    # does this: `main` may run inside another process (tests), whose sockets must not kill it.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "check_times", 1) < 1:
        print("Error: --check-times must be at least 1", file=sys.stderr)
        return 2
    # `force`: importing datadog_checks.base has already given the root logger the Agent's handler
    # and level, which would otherwise make this call a no-op.
    logging.basicConfig(
        level=getattr(args, "log_level", "error").upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )
    return args.func(args)


if __name__ == "__main__":
    entry()
