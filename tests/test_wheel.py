"""The built wheel is what `datadog-agent integration install -w` accepts and the Agent loads.

The Agent installs check wheels with `pip install --no-deps` into its own Python, which already
has datadog-checks-base and its dependencies. The test reproduces that: a new virtual
environment that sees only the test environment's third-party packages (as the Agent's Python
has them, but not this project's sources), the wheel installed there with `--no-deps`, and the
Agent's loader steps run in a subprocess.
"""

import email
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("*.whl")
    return path


def test_wheel_layout_is_what_the_agent_installs(wheel):
    assert wheel.name.startswith("datadog_cilium-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata_path = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(z.read(metadata_path))
    assert metadata["Name"] == "datadog-cilium"
    assert any(r.startswith("datadog-checks-base") for r in metadata.get_all("Requires-Dist"))
    for face in ("__init__.py", "__about__.py", "check.py", "data/conf.yaml.example", "data/auto_conf.yaml"):
        assert f"datadog_checks/cilium/{face}" in names
    for model in ("__init__.py", "defaults.py", "instance.py", "shared.py", "validators.py"):
        assert f"datadog_checks/cilium/config_models/{model}" in names
    # The `datadog_checks` namespace belongs to datadog-checks-base.
    assert "datadog_checks/__init__.py" not in names
    assert "cilium_check/metrics.csv" in names
    # the recommended monitors travel with the check, for `cilium-check doctor` in the Agent's container
    monitors = {n.rsplit("/", 1)[-1] for n in names if n.startswith("cilium_check/monitors/")}
    assert monitors == {p.name for p in (ROOT / "assets" / "monitors").glob("*.json")}
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_wheel_carries_no_developer_tooling(wheel):
    """The fixture server, payloads, demo, preview and generators stay in the checkout."""
    with zipfile.ZipFile(wheel) as z:
        modules = [n for n in z.namelist() if n.endswith(".py")]
    tooling = [n for n in modules if n.startswith("cilium_dev/") or n.startswith(("tests/", "benchmarks/"))]
    assert tooling == []
    for word in ("fixture", "demo", "preview", "generate", "payload", "server"):
        assert not [n for n in modules if word in n.rsplit("/", 1)[-1]], word
    # What the check imports at run time is all there.
    runtime = {Path(n).stem for n in modules if n.startswith("cilium_check/")}
    assert {"body", "config", "components", "endpoints", "probe", "scraper", "mapping", "cli"} <= runtime


LOADER = textwrap.dedent(
    """
    import importlib, inspect, json, sys
    from datadog_checks.base import AgentCheck

    # The Agent's Python loader: import the check's package, take the AgentCheck subclass.
    module = importlib.import_module("datadog_checks.cilium")
    classes = [
        c for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, AgentCheck) and c is not AgentCheck
    ]
    check_class = classes[-1]
    check = check_class("cilium", {}, [{"agent_endpoint": sys.argv[1]}])
    check.check_id = "cilium:wheel"
    error = check.run()
    from datadog_checks.base.stubs import aggregator
    print(json.dumps({
        "module_file": module.__file__,
        "impl_file": inspect.getfile(check_class),
        "version": module.__version__,
        "class": check_class.__name__,
        "error": error,
        "metrics": sorted(aggregator._metrics),
        "python": "%d.%d" % sys.version_info[:2],
    }))
    """
)


def purelib(python) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_wheel_loads_in_a_clean_environment_with_no_deps(wheel, tmp_path):
    from cilium_dev.fixtures.server import FixtureServer

    # `make test` points CILIUM_AGENT_PYTHON at a Python 3.13 (the Agent's) holding only
    # datadog-checks-base[deps]; without it, this interpreter's packages stand in for the Agent's.
    agent_python = os.environ.get("CILIUM_AGENT_PYTHON") or sys.executable
    env_dir = tmp_path / "agent-python"
    subprocess.run([agent_python, "-m", "venv", str(env_dir)], check=True, capture_output=True)
    python = env_dir / "bin" / "python"
    site = purelib(python)
    Path(site, "agent_python.pth").write_text(purelib(agent_python) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    with FixtureServer() as server:
        result = subprocess.run(
            [str(python), "-c", LOADER, server.url("agent", "1.20")],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    import json

    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module_file"].startswith(site)
    assert loaded["impl_file"].startswith(site), "the check must come from the wheel, not the checkout"
    assert loaded["class"] == "CiliumCheck"
    assert loaded["version"] == __import__("datadog_checks.cilium").cilium.__version__
    assert loaded["error"] == ""
    print(f"loaded by Python {loaded['python']} from {site}")
    assert "cilium.endpoint.state" in loaded["metrics"]
    data = Path(site, "datadog_checks", "cilium", "data")
    assert (data / "conf.yaml.example").read_text() == (ROOT / "conf.yaml.example").read_text()
    source = ROOT / "datadog_checks" / "cilium" / "data"
    assert (data / "auto_conf.yaml").read_text() == (source / "auto_conf.yaml").read_text()


def test_the_command_from_the_wheel_runs_a_check_and_only_offers_what_it_carries(wheel, tmp_path):
    from cilium_dev.fixtures.server import FixtureServer

    agent_python = os.environ.get("CILIUM_AGENT_PYTHON") or sys.executable
    env_dir = tmp_path / "agent-python"
    subprocess.run([agent_python, "-m", "venv", str(env_dir)], check=True, capture_output=True)
    python = env_dir / "bin" / "python"
    Path(purelib(python), "agent_python.pth").write_text(purelib(agent_python) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    with FixtureServer() as server:
        conf = tmp_path / "conf.yaml"
        conf.write_text(f"init_config:\ninstances:\n  - agent_endpoint: {server.url('agent', '1.20')}\n")
        done = subprocess.run(
            [str(python), "-m", "cilium_check", "check", "-c", str(conf), "--json"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    import json

    (instance,) = json.loads(done.stdout)
    assert instance["runner"]["LastError"] == ""
    assert any(s["metric"] == "cilium.endpoint.state" for s in instance["aggregator"]["metrics"])
    helped = subprocess.run([str(python), "-m", "cilium_check", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert "run from a checkout" in helped.stdout
    demo = subprocess.run([str(python), "-m", "cilium_check", "demo"], capture_output=True, text=True, cwd=tmp_path)
    assert demo.returncode == 2 and "invalid choice: 'demo'" in demo.stderr
    with FixtureServer() as server:
        healthy = subprocess.run(
            [str(python), "-m", "cilium_check", "doctor", "--agent", server.url("agent", "1.20"), "--interval", "0.2", "--json"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        sick = subprocess.run(
            [str(python), "-m", "cilium_check", "doctor", "--agent", server.url("agent", "1.20", "bpf-map-full"), "--interval", "0.2"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
    # `doctor` runs inside the Agent's Python, judging by the monitors the wheel carries
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["components"]["agent"]["monitors_quiet"] >= 10
    assert sick.returncode == 2 and "Cilium BPF map almost full" in sick.stdout, sick.stdout + sick.stderr
