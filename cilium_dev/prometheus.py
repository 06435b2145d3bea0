"""A real Prometheus server (Debian's `prometheus` package) scraping local targets, for tests.

    with PrometheusServer({"agent-1.20": "http://127.0.0.1:8123/agent/1.20/metrics"}) as prom:
        prom.wait_for_scrapes()
        for series in prom.series("agent-1.20"):
            print(series.name, series.labels, series.value)

The server runs as a subprocess with a generated configuration (one scrape job per target, every
second) and a TSDB in a temporary directory; the configuration is checked with `promtool check
config` before the server starts. `series(job)` answers what Prometheus stored from the job's last
successful scrape, without the labels Prometheus adds (`job`, `instance`) and without its own
synthetic series (`up`, `scrape_*`). Only the standard library talks to the server.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

# Labels every scraped series gets from its target (`honor_labels: false`, Prometheus' default).
TARGET_LABELS = ("job", "instance")
# Series Prometheus writes about each scrape itself.
SYNTHETIC_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "scrape_timeout_seconds",
        "scrape_sample_limit",
        "scrape_body_size_bytes",
    }
)


class PrometheusError(AssertionError):
    """Prometheus could not be configured, started or queried, or a target could not be scraped."""


def find_binaries() -> tuple[str | None, str | None]:
    """The paths of `prometheus` and `promtool` (None where one is not installed)."""
    return shutil.which("prometheus"), shutil.which("promtool")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Series:
    """One series Prometheus stored: its metric name, its labels (target labels removed) and latest value."""

    name: str
    labels: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    value: float
    # Labels of the payload that Prometheus stored as `exported_<label>` (a clash with a target
    # label), given back their own name here.
    exported: tuple[str, ...] = ()

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def _config(targets: Mapping[str, str], scrape_interval: str) -> dict:
    jobs = []
    for job, url in targets.items():
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{job}: {url!r} is not an http(s) URL")
        jobs.append(
            {
                "job_name": job,
                "scheme": parts.scheme,
                "metrics_path": parts.path or "/metrics",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": [parts.netloc]}],
            }
        )
    return {"global": {"scrape_interval": scrape_interval, "evaluation_interval": "1m"}, "scrape_configs": jobs}


class PrometheusServer:
    """A `prometheus` subprocess scraping `targets` (`{job name: URL}`), in a temporary directory.

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        scrape_interval: str = "1s",
        prometheus: str | None = None,
        promtool: str | None = None,
    ) -> None:
        if not targets:
            raise ValueError("no target to scrape")
        found = find_binaries()
        self.prometheus = prometheus or found[0]
        self.promtool = promtool or found[1]
        if not self.prometheus or not self.promtool:
            raise PrometheusError("prometheus and promtool must be installed (Debian package `prometheus`)")
        self.targets = dict(targets)
        self.scrape_interval = scrape_interval
        self.port: int | None = None
        self.workdir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    # lifecycle

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Write and check the configuration, start the server and wait until it is ready."""
        self.workdir = Path(tempfile.mkdtemp(prefix="prometheus-harness-"))
        try:
            # JSON is YAML: the configuration needs no YAML library and no quoting rules of its own.
            self.config_path.write_text(json.dumps(_config(self.targets, self.scrape_interval), indent=2) + "\n")
            self.check_config()
            self._spawn(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def check_config(self) -> str:
        """Run `promtool check config` on the generated configuration; raise unless it passes."""
        result = subprocess.run(
            [self.promtool, "check", "config", str(self.config_path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise PrometheusError(f"promtool check config failed ({result.returncode}):\n{output}")
        return output

    def _spawn(self, timeout: float) -> None:
        assert self.workdir is not None
        for attempt in range(3):  # the free port may be taken between probing and binding it
            self.port = free_port()
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - open while the server runs
            self.process = subprocess.Popen(
                [
                    self.prometheus,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            if self._wait_ready(timeout):
                return
            if "address already in use" not in self.log_tail() or attempt == 2:
                raise PrometheusError(f"prometheus did not become ready:\n{self.log_tail()}")
            self._terminate()

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Stop the server (terminate, wait, kill) and remove its directory."""
        self._terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # HTTP API

    def api(self, path: str, **params: str) -> object:
        """GET `/api/v1/<path>` and return its `data`; raise on an error answer."""
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:
            raise PrometheusError(f"GET {url}: {e.code} {e.read().decode(errors='replace')}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"GET {url}: {body}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """An instant query's vector result."""
        params = {"query": promql}
        if at is not None:
            params["time"] = repr(at)
        data = self.api("query", **params)
        assert isinstance(data, dict)
        if data.get("resultType") != "vector":
            raise PrometheusError(f"{promql}: expected a vector, got {data.get('resultType')}")
        return data["result"]

    def targets_by_job(self) -> dict[str, dict]:
        data = self.api("targets", state="active")
        assert isinstance(data, dict)
        return {target["labels"]["job"]: target for target in data["activeTargets"]}

    def wait_for_scrapes(self, timeout: float = 30.0) -> dict[str, dict]:
        """Wait until every job's target has been scraped successfully at least once.

        A target that is down fails at once with its last error, unless the error is a timeout
        (a busy machine), which is given until `timeout` to clear.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited:\n{self.log_tail()}")
            targets = self.targets_by_job()
            missing = sorted(set(self.targets) - set(targets))
            pending, down = [], {}
            for job in self.targets:
                target = targets.get(job)
                if target is None:
                    continue
                never = target.get("lastScrape", "").startswith("0001-")
                if target.get("health") == "down":
                    down[job] = target.get("lastError", "")
                elif never or target.get("health") != "up":
                    pending.append(job)
            hard = {job: error for job, error in down.items() if not _transient(error)}
            if hard:
                raise PrometheusError(
                    "targets down: " + "; ".join(f"{job} ({self.targets[job]}): {error}" for job, error in hard.items())
                )
            if not missing and not pending and not down:
                return targets
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"not every target was scraped within {timeout:.0f}s: missing {missing}, pending {pending}, "
                    f"down {down}\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def series(self, job: str, timeout: float = 30.0) -> list[Series]:
        """Every series Prometheus stored from `job`'s last successful scrape, with its value.

        One instant query reads the job's series together with its `up`: if the latest scrape
        failed (its series are then marked stale), the read is tried again after the next scrape.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(_selector(job))
            up = [item for item in result if item["metric"].get("__name__") == "up"]
            if up and float(up[0]["value"][1]) == 1.0:
                return _series_of(result)
            if time.monotonic() > deadline:
                target = self.targets_by_job().get(job, {})
                raise PrometheusError(f"{job}: no successful scrape to read ({target.get('lastError', '')!r})")
            time.sleep(0.3)


def _selector(job: str, name_regex: str = ".+") -> str:
    return "{" + f"__name__=~{json.dumps(name_regex)},job={json.dumps(job)}" + "}"


def _transient(error: str) -> bool:
    return "deadline exceeded" in error or "timeout" in error.lower()


def _series_of(result: list[dict]) -> list[Series]:
    out = []
    for item in result:
        labels = dict(item["metric"])
        name = labels.pop("__name__")
        if name in SYNTHETIC_SERIES:
            continue
        for label in TARGET_LABELS:
            labels.pop(label, None)
        # A scraped label that collides with a target label is stored as `exported_<label>`
        # (`honor_labels: false`): give it back its name, as the payload has it.
        exported = tuple(label for label in TARGET_LABELS if f"exported_{label}" in labels)
        for label in exported:
            labels[label] = labels.pop(f"exported_{label}")
        out.append(Series(name, tuple(sorted(labels.items())), float(item["value"][1]), exported))
    out.sort(key=lambda s: (s.name, s.labels))
    return out


def prometheus_version(binary: str | None = None) -> str:
    """The first line of `prometheus --version`."""
    binary = binary or find_binaries()[0]
    if not binary:
        return ""
    result = subprocess.run([binary, "--version"], check=False, capture_output=True, text=True, timeout=30)
    return ((result.stdout or result.stderr).splitlines() or [""])[0]


__all__ = [
    "PrometheusError",
    "PrometheusServer",
    "Series",
    "find_binaries",
    "prometheus_version",
]
