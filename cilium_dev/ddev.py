"""Datadog's `ddev` on this repository, laid out as a folder of an integrations-extras repository.

`ddev` validates and generates the files of integrations kept in Datadog's integrations-core and
integrations-extras repositories: one folder per check. This repository is one check, so each run
builds a scratch extras repository whose `cilium/` folder is a link to the checkout, points
`ddev` at it with a configuration file of its own (nothing is written under HOME, no upgrade
check reaches the network), and runs there.

    python -m cilium_dev.ddev validate [VALIDATOR ...]   # each validator, judged by what it printed
    python -m cilium_dev.ddev sync                       # regenerate conf.yaml.example and config_models

Several validators exit 0 when they found nothing to validate (no spec, "0 checks"), and
`typos` exits with the opposite status of its verdict (ddev 20.1): a run passes here only when
the output shows the check was actually validated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = "cilium"
DDEV_VENV = Path(os.environ.get("CILIUM_DDEV_VENV", ROOT / ".venv-ddev"))

# What each validator prints when it validated the check (all of them must appear), and what it
# prints when it skipped it (none may appear).
EVIDENCE: dict[str, tuple[str, ...]] = {
    "metadata": ("Metrics validation", "Passed: 1"),
    "service-checks": ("for 1 checks", "1 valid files"),
    "dashboards": ("for 1 checks", "3 valid files"),
    "config": ("for 1 checks", "All 3 configuration files are valid"),
    "models": ("for 1 checks", "cilium:", "data model files are in sync"),
    "package": ("for 1 checks", "1 valid files"),
    "openmetrics": ("OpenMetrics metric limit", "Passed: 1"),
    "imports": ("for 1 checks", "Validation passed"),
    "readmes": ("All 1 READMEs are valid",),
    "typos": ("All files are valid",),
}
SKIPPED = (
    "Did not find spec",
    "for 0 checks",
    "only enabled for",
    "does not have service checks",
    "No such file or directory",
    "Traceback",
)
VALIDATORS = tuple(EVIDENCE)

# codespell (ddev's `typos`) reads every file of the check; what the tools build is not its text.
CODESPELL_CONFIG = """\
[codespell]
skip = */.venv*,*/build/*,*/dist/*,*/preview/*,*/.hypothesis/*,*/.pytest_cache/*
"""


@dataclass
class Result:
    validator: str
    returncode: int
    output: str

    @property
    def passed(self) -> bool:
        if any(sign in self.output for sign in SKIPPED):
            return False
        if not all(sign in self.output for sign in EVIDENCE[self.validator]):
            return False
        # `typos` exits 1 on success in ddev 20.1; its verdict is the text.
        return self.validator == "typos" or self.returncode == 0

    def summary(self) -> str:
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else "(no output)"


def ddev_executable() -> Path:
    path = DDEV_VENV / "bin" / "ddev"
    if not path.exists():
        raise SystemExit(f"ddev is not installed in {DDEV_VENV}: run `make validate` (or `make .venv-ddev/.installed`)")
    return path


@contextmanager
def extras_repository(root: Path = ROOT) -> Iterator[Path]:
    """A scratch integrations-extras repository whose `cilium/` folder is `root`."""
    with tempfile.TemporaryDirectory(prefix="cilium-extras-") as scratch:
        extras = Path(scratch)
        (extras / CHECK).symlink_to(root, target_is_directory=True)
        # `metadata` and `openmetrics` ask git about the repository; an empty one is enough.
        subprocess.run(["git", "init", "-q", str(extras)], check=True)
        (extras / ".codespell").mkdir()
        (extras / ".codespell" / "setup.cfg").write_text(CODESPELL_CONFIG)
        (extras / "home").mkdir()
        (extras / "ddev.toml").write_text(f'repo = "extras"\nupgrade_check = false\n[repos]\nextras = "{extras}"\n')
        yield extras


def run_ddev(extras: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HOME": str(extras / "home"),
        "DDEV_CONFIG": str(extras / "ddev.toml"),
        # `typos` runs codespell, `models` runs ruff: both are in ddev's own environment.
        "PATH": f"{DDEV_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(ddev_executable()), "-e", *args],
        cwd=extras,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def validate(validators: tuple[str, ...] = VALIDATORS, root: Path = ROOT) -> list[Result]:
    results = []
    with extras_repository(root) as extras:
        for validator in validators:
            done = run_ddev(extras, "validate", validator, CHECK)
            results.append(Result(validator, done.returncode, done.stdout + done.stderr))
    return results


def sync(root: Path = ROOT) -> None:
    """Regenerate `datadog_checks/cilium/data/*` and `config_models/` from the spec; copy the example to the root."""
    (root / "datadog_checks" / CHECK / "data").mkdir(exist_ok=True)
    with extras_repository(root) as extras:
        for validator in ("config", "models"):
            done = run_ddev(extras, "validate", validator, "--sync", CHECK)
            if done.returncode != 0:
                raise SystemExit(f"ddev validate {validator} --sync failed:\n{done.stdout}{done.stderr}")
    shutil.copyfile(root / "datadog_checks" / CHECK / "data" / "conf.yaml.example", root / "conf.yaml.example")
    print("wrote datadog_checks/cilium/data/conf.yaml.example, datadog_checks/cilium/data/auto_conf.yaml, "
          "datadog_checks/cilium/config_models/, conf.yaml.example")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cilium_dev.ddev", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="run ddev's validators on the check")
    check.add_argument("validators", nargs="*", metavar="VALIDATOR", help=f"any of {', '.join(VALIDATORS)} (default: all)")
    check.add_argument("-v", "--verbose", action="store_true", help="print each validator's whole output")
    sub.add_parser("sync", help="regenerate conf.yaml.example and config_models from assets/configuration/spec.yaml")
    args = parser.parse_args(argv)
    if args.command == "sync":
        sync()
        return 0
    unknown = set(args.validators) - set(VALIDATORS)
    if unknown:
        parser.error(f"unknown validator {', '.join(sorted(unknown))}: choose among {', '.join(VALIDATORS)}")
    results = validate(tuple(args.validators) or VALIDATORS)
    for result in results:
        verdict = "passed" if result.passed else "FAILED"
        print(f"ddev validate {result.validator:<15} {verdict}: {result.summary()}")
        if args.verbose or not result.passed:
            print("    " + result.output.replace("\n", "\n    ").rstrip())
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
