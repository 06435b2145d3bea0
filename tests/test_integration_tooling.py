"""Datadog's own tooling accepts the integration: `ddev`'s validators, and files generated from the spec.

`make test` installs ddev (Python 3.13, `.venv-ddev`); each validator runs on the repository laid
out as a folder of an integrations-extras repository, and counts only when its output shows that
it validated the check (ddev exits 0 when it found nothing to validate).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cilium_check.components import COMPONENTS
from cilium_dev import ddev

ROOT = Path(__file__).resolve().parents[1]
GENERATED_EXAMPLE = ROOT / "datadog_checks" / "cilium" / "data" / "conf.yaml.example"


@pytest.fixture(scope="module")
def installed():
    if not (ddev.DDEV_VENV / "bin" / "ddev").exists():
        pytest.fail(f"ddev is not installed in {ddev.DDEV_VENV}: `make test` installs it")


@pytest.fixture(scope="module")
def results(installed):
    return {result.validator: result for result in ddev.validate()}


@pytest.mark.parametrize("validator", ddev.VALIDATORS)
def test_ddev_validator_validates_the_check_and_passes(results, validator):
    result = results[validator]
    assert result.passed, f"ddev validate {validator}:\n{result.output}"


def copy_of_the_check(tmp_path: Path) -> Path:
    """What the config and models validators read, in a scratch folder that a test may break."""
    copy = tmp_path / "cilium"
    ignore = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "build", "dist", ".pytest_cache", ".hypothesis")
    for name in ("assets", "datadog_checks"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in ("manifest.json", "pyproject.toml", "README.md", "metadata.csv"):
        shutil.copyfile(ROOT / name, copy / name)
    return copy


@pytest.mark.parametrize(
    "validator, path",
    [
        ("config", "datadog_checks/cilium/data/conf.yaml.example"),
        ("config", "datadog_checks/cilium/data/auto_conf.yaml"),
        ("models", "datadog_checks/cilium/config_models/instance.py"),
        ("models", "datadog_checks/cilium/config_models/defaults.py"),
    ],
)
def test_a_generated_file_edited_by_hand_fails_validation(installed, tmp_path, validator, path):
    copy = copy_of_the_check(tmp_path)
    (result,) = ddev.validate((validator,), root=copy)
    assert result.passed, result.output  # the copy as generated
    edited = copy / path
    edited.write_text(edited.read_text().replace("\n", "\n# edited by hand\n", 1))
    (result,) = ddev.validate((validator,), root=copy)
    assert not result.passed
    assert "not in sync" in result.output


def test_the_example_at_the_root_is_the_generated_one():
    assert (ROOT / "conf.yaml.example").read_text() == GENERATED_EXAMPLE.read_text()


def test_the_spec_documents_the_registrys_defaults():
    spec = yaml.safe_load((ROOT / "assets" / "configuration" / "spec.yaml").read_text())
    (instances,) = [o for o in spec["files"][0]["options"] if o.get("template") == "instances"]
    options = {o["name"]: o for o in instances["options"] if "name" in o}
    budgets = {c.name: c.max_contexts for c in COMPONENTS if c.max_contexts}
    assert options["max_contexts"]["value"]["display_default"] == budgets
    assert options["optional_components"]["value"]["items"]["enum"] == [c.name for c in COMPONENTS]
    for component in COMPONENTS:
        option = options[component.option]
        assert str(component.port) in option["value"]["example"], component.option
        assert str(component.port) in option["description"], component.option
    from datadog_checks.cilium.config_models import defaults

    assert defaults.instance_max_contexts() == budgets
