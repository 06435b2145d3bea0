"""TLS, client certificates, bearer tokens, and secrets that must never show up anywhere.

The HTTPS endpoints are FixtureServers with certificates from `tls_material` (generated per
session). Bearer-token endpoints are a tiny `http.server` here (`TokenServer`): FixtureServer
records headers but cannot reject a request.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import pytest
import yaml
from datadog_checks.base.constants import ServiceCheck
from tls_material import TLSMaterial

from datadog_checks.cilium import CiliumCheck
from cilium_dev.fixtures.payloads import CONTENT_TYPE, render
from cilium_dev.fixtures.server import FixtureServer, closed_url

HEALTH = "cilium.openmetrics.health"
ROOT = Path(__file__).resolve().parents[1]


# -- servers ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory):
    return TLSMaterial.generate(tmp_path_factory.mktemp("tls"), client_key_password=KEY_PASSWORD)


@pytest.fixture(scope="module")
def https_server(tls_material):
    with FixtureServer(tls=tls_material.server_context()) as server:
        yield server


# Go's crypto/tls (the operator, Hubble) negotiates TLS 1.3; with 1.2 a missing client
# certificate fails inside the handshake instead of on the first read, so both are covered.
TLS_VERSIONS = {"tls1.3": None, "tls1.2": ssl.TLSVersion.TLSv1_2}


@pytest.fixture(scope="module", params=sorted(TLS_VERSIONS))
def mtls_server(request, tls_material):
    context = tls_material.server_context(mtls=True, maximum_version=TLS_VERSIONS[request.param])
    with FixtureServer(tls=context) as server:
        yield server


class TokenServer:
    """Serves `component`'s 1.20 metrics at any path, but only to `Authorization: Bearer <expected>`.

    `expected = None` lets every request through. Every request's Authorization header is
    recorded with the status it got, in `requests`.
    """

    def __init__(self, expected: str | None, component: str = "agent") -> None:
        self.expected = expected
        self.component = component
        self.requests: list[tuple[str | None, int]] = []
        self.lock = threading.Lock()
        self.scrapes = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                header = self.headers.get("Authorization")
                with server.lock:
                    allowed = server.expected is None or header == f"Bearer {server.expected}"
                    if allowed:
                        body, scrape = None, server.scrapes
                        server.scrapes += 1
                    server.requests.append((header, 200 if allowed else 401))
                if allowed:
                    body = render(server.component, "1.20", scrape).encode("utf-8")
                    self.send_response(200)
                    self.send_header("Content-Type", CONTENT_TYPE)
                else:
                    body = b"Unauthorized\n"
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="cilium"')
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that hung up: it sees the failure itself

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def set_expected(self, token: str | None) -> None:
        with self.lock:
            self.expected = token

    def recorded(self) -> list[tuple[str | None, int]]:
        with self.lock:
            return list(self.requests)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


# -- helpers ------------------------------------------------------------------------------------


def health(aggregator, url):
    """The health service checks of one endpoint, in submission order."""
    return [sc for sc in aggregator.service_checks(HEALTH) if f"endpoint:{url}" in sc.tags]


def run_error(check) -> str:
    """`run()`'s error message ('' when the run succeeded)."""
    error = check.run()
    return json.loads(error)[0]["message"] if error else ""


def assert_tls_error(aggregator, error: str, url: str, *causes: str) -> str:
    """The run failed and the endpoint's health is CRITICAL, with a message that starts with the
    URL, says "TLS error" and names each of `causes` (case-insensitive). Returns the message."""
    assert error, "the run should fail"
    assert url in error, f"the run's error does not name the URL {url}: {error!r}"
    assert "TLS error" in error, f"the run's error does not say it is a TLS error: {error!r}"
    checks = health(aggregator, url)
    assert checks, f"no health service check for {url}: {aggregator.service_checks(HEALTH)}"
    last = checks[-1]
    assert last.status == ServiceCheck.CRITICAL, f"health should be CRITICAL: {last}"
    assert last.message.startswith(url), f"the health message should start with {url}: {last.message!r}"
    assert "TLS error: " in last.message, f"the health message should say 'TLS error: ': {last.message!r}"
    for cause in causes:
        assert cause.lower() in last.message.lower(), f"the health message does not say {cause!r}: {last.message!r}"
    return last.message


# -- TLS ----------------------------------------------------------------------------------------


def test_https_with_the_ca_that_signed_the_server(https_server, tls_material, aggregator, dd_run_check):
    url = https_server.url("agent")
    check = CiliumCheck(
        "cilium", {}, [{"use_openmetrics": True, "agent_endpoint": url, "tls_verify": True, "tls_ca_cert": str(tls_material.ca_cert)}]
    )
    before = https_server.scrapes("agent")
    dd_run_check(check)
    dd_run_check(check)
    assert https_server.scrapes("agent") >= before + 2
    aggregator.assert_metric("cilium.endpoint.state", at_least=1)
    aggregator.assert_metric_has_tag("cilium.endpoint.state", f"endpoint:{url}")
    aggregator.assert_metric("cilium.drop_count.count", metric_type=aggregator.MONOTONIC_COUNT, at_least=1)
    aggregator.assert_service_check(
        HEALTH, ServiceCheck.OK, tags=["cilium_component:agent", f"endpoint:{url}"], count=2
    )


@pytest.mark.parametrize("trust", ["wrong_ca", "system_trust_store"])
def test_a_certificate_the_check_does_not_trust_is_a_critical_tls_error(trust, https_server, tls_material, aggregator):
    url = https_server.url("agent")
    instance = {"use_openmetrics": True, "agent_endpoint": url, "tls_verify": True}
    if trust == "wrong_ca":
        instance["tls_ca_cert"] = str(tls_material.wrong_ca_cert)
    check = CiliumCheck("cilium", {}, [instance])
    error = run_error(check)
    message = assert_tls_error(aggregator, error, url, "certificate verify failed")
    # What to do about it: trust the CA that signed the endpoint's certificate.
    assert "tls_ca_cert" in message, f"the health message does not point at `tls_ca_cert`: {message!r}"
    assert "certificate verify failed" in error.lower(), f"the run's error does not name the cause: {error!r}"
    assert not aggregator.metrics("cilium.endpoint.state"), "nothing of the endpoint is submitted"


def test_tls_verify_false_scrapes_whatever_the_certificate(https_server, aggregator, dd_run_check):
    # Note: datadog-checks-base verifies whenever `tls_ca_cert` is set, even with `tls_verify: false`
    # (RequestsWrapper sets `verify` to the CA path first), so this instance sets no CA.
    url = https_server.url("agent")
    instance = {"use_openmetrics": True, "agent_endpoint": url, "tls_verify": False}
    check = CiliumCheck("cilium", {}, [instance])
    dd_run_check(check)
    aggregator.assert_metric("cilium.endpoint.state", at_least=1)
    aggregator.assert_service_check(HEALTH, ServiceCheck.OK, tags=["cilium_component:agent", f"endpoint:{url}"])


@pytest.mark.parametrize("component", ["operator", "hubble"])
def test_mtls_without_a_client_certificate_is_a_critical_tls_error(component, mtls_server, tls_material, aggregator):
    url = mtls_server.url(component)
    check = CiliumCheck(
        "cilium", {}, [{"use_openmetrics": True, f"{component}_endpoint": url, "tls_verify": True, "tls_ca_cert": str(tls_material.ca_cert)}]
    )
    assert_tls_error(aggregator, run_error(check), url)
    run_error(check)  # a later failing run may not raise, but sends CRITICAL again
    assert [sc.status for sc in health(aggregator, url)] == [ServiceCheck.CRITICAL] * 2, health(aggregator, url)
    assert not [m for m in aggregator.metric_names if not m.startswith("cilium.check.")], aggregator.metric_names


@pytest.mark.parametrize("key", ["plain_key", "encrypted_key"])
@pytest.mark.parametrize("component", ["operator", "hubble"])
def test_mtls_with_a_client_certificate(component, key, mtls_server, tls_material, aggregator, dd_run_check):
    url = mtls_server.url(component)
    instance = {
        "use_openmetrics": True,
        f"{component}_endpoint": url,
        "tls_verify": True,
        "tls_ca_cert": str(tls_material.ca_cert),
        "tls_cert": str(tls_material.client_cert),
        "tls_private_key": str(tls_material.client_key),
    }
    if key == "encrypted_key":
        instance["tls_private_key"] = str(tls_material.client_key_encrypted)
        instance["tls_private_key_password"] = tls_material.client_key_password
    check = CiliumCheck("cilium", {}, [instance])
    dd_run_check(check)
    dd_run_check(check)
    aggregator.assert_service_check(
        HEALTH, ServiceCheck.OK, tags=[f"cilium_component:{component}", f"endpoint:{url}"], count=2
    )
    payload = [m for m in aggregator.metric_names if not m.startswith("cilium.check.")]
    assert payload, "no metric of the endpoint was submitted"
    for name in payload:
        aggregator.assert_metric_has_tag(name, f"cilium_component:{component}")


# -- bearer tokens ------------------------------------------------------------------------------


def token_instance(style: str, url: str, token_file: Path) -> dict:
    if style == "auth_token":
        return {
            "use_openmetrics": True,
            "agent_endpoint": url,
            "auth_token": {
                "reader": {"type": "file", "path": str(token_file)},
                "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"},
            },
        }
    # The bundled check's legacy options, as its Kubernetes examples set them.
    return {"use_openmetrics": True, "agent_endpoint": url, "bearer_token_auth": True, "bearer_token_path": str(token_file)}


@pytest.fixture
def token_file(tmp_path):
    # The path style of a Kubernetes service-account token.
    path = tmp_path / "var/run/secrets/kubernetes.io/serviceaccount/token"
    path.parent.mkdir(parents=True)
    return path


@pytest.mark.parametrize("style", ["auth_token", "bearer_token_auth"])
def test_bearer_token_from_a_file_and_its_rotation(style, token_file, aggregator):
    token_file.write_text("first-token-5d1c\n")
    with TokenServer("first-token-5d1c") as server:
        check = CiliumCheck("cilium", {}, [token_instance(style, server.url, token_file)])
        assert run_error(check) == ""
        sent = server.recorded()
        assert sent, "the check sent no request"
        assert sent[-1] == ("Bearer first-token-5d1c", 200), sent
        assert all(header == "Bearer first-token-5d1c" for header, _ in sent), sent
        aggregator.assert_metric("cilium.endpoint.state", at_least=1)
        assert health(aggregator, server.url)[-1].status == ServiceCheck.OK

        # The kubelet rotates the projected service-account token: new file, old token refused.
        token_file.write_text("second-token-9a7e\n")
        server.set_expected("second-token-9a7e")
        seen = len(server.recorded())
        aggregator.reset()
        # What datadog-checks-base does (utils/http.py): the `file` reader caches the token, read on
        # the first request; `RequestsWrapper._request` calls `raise_for_status()` on every response
        # when an `auth_token` is set, and on any error (this 401 included) re-reads the file
        # (`read(error=...)`) and retries the same request once with the new header. So a rotation
        # costs one refused request, normally inside the same run; at most one run may fail.
        errors = [run_error(check) for _ in range(3)]
        failing = [i for i, error in enumerate(errors) if error]
        assert failing in ([], [0]), f"runs after the rotation that failed: {failing}: {errors}"
        assert errors[1] == errors[2] == "", errors

        after = server.recorded()[seen:]
        assert ("Bearer second-token-9a7e", 200) in after, after
        assert after[-1] == ("Bearer second-token-9a7e", 200), after
        refused = [r for r in after if r[1] == 401]
        assert len(refused) <= 2, f"the old token kept being sent after the rotation: {after}"
        assert health(aggregator, server.url)[-1].status == ServiceCheck.OK
        aggregator.assert_metric_has_tag("cilium.endpoint.state", f"endpoint:{server.url}")


def test_a_refused_token_is_critical_and_says_to_check_the_credentials(token_file, aggregator):
    token_file.write_text("stale-token-0b3f\n")
    with TokenServer("current-token-77c2") as server:
        check = CiliumCheck("cilium", {}, [token_instance("auth_token", server.url, token_file)])
        error = run_error(check)
        assert error and server.url in error, error
        assert server.recorded() and all(r == ("Bearer stale-token-0b3f", 401) for r in server.recorded())
    last = health(aggregator, server.url)[-1]
    assert last.status == ServiceCheck.CRITICAL, last
    assert last.message.startswith(server.url), f"the health message should start with the URL: {last.message!r}"
    assert "HTTP 401 Unauthorized: check the credentials" in last.message, last.message
    assert "auth_token" in last.message, last.message


# -- secrets ------------------------------------------------------------------------------------

# Distinctive values: none of them (nor the basic-auth credentials they encode) may appear in
# anything the check logs, returns, submits, or the command prints.
PASSWORD = "pw-Qz7xK2basicSecret"
TOKEN = "tok-Fh39QaBearerSecret"
HEADER_TOKEN = "hdr-Lm52PdAuthzSecret"
API_KEY = "key-Rt81VbApiKeySecret"
KEY_PASSWORD = "kp-Wc64NsKeyPassSecret"
URL_PASSWORD = "url-Ye27HjUserinfoSecret"
USERNAME = "cilium-reader"
SECRETS = {
    "password": PASSWORD,
    "auth_token file": TOKEN,
    "extra_headers Authorization": HEADER_TOKEN,
    "extra_headers X-Api-Key": API_KEY,
    "tls_private_key_password": KEY_PASSWORD,
    "URL userinfo": URL_PASSWORD,
    "basic-auth credential": base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
    "URL basic-auth credential": base64.b64encode(f"{USERNAME}:{URL_PASSWORD}".encode()).decode(),
}
# Loggers that are the check's own: its AgentCheck logger (which datadog-checks-base's
# RequestsWrapper also logs through) and the package's modules.
CHECK_LOGGERS = ("datadog_checks.base.checks.base.cilium", "cilium_check")
_STDERR_RECORD = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<name>\S+): ")


def find_secrets(where: str, text: str) -> list[str]:
    return [f"{what} ({secret}) in {where}" for what, secret in SECRETS.items() if secret in text]


def is_check_logger(name: str) -> bool:
    return any(name == owner or name.startswith(owner + ".") for owner in CHECK_LOGGERS)


def with_userinfo(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{USERNAME}:{URL_PASSWORD}@{rest}"


def secret_options(tls_material: TLSMaterial, token_path: Path, ca: Path) -> dict:
    return {
        "username": USERNAME,
        "password": PASSWORD,
        "auth_token": {
            "reader": {"type": "file", "path": str(token_path)},
            "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"},
        },
        "extra_headers": {"Authorization": f"Bearer {HEADER_TOKEN}", "X-Api-Key": API_KEY},
        "tls_verify": True,
        "tls_ca_cert": str(ca),
        "tls_cert": str(tls_material.client_cert),
        "tls_private_key": str(tls_material.client_key_encrypted),
        "tls_private_key_password": KEY_PASSWORD,
        "tags": ["team:net"],
    }


class _Capture(logging.Handler):
    """Every record logged anywhere while installed (like caplog at DEBUG, but module-scoped)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Captured(dict):
    """{channel: [(where, text), ...]}, with a short repr for pytest's failure reports."""

    def __repr__(self) -> str:
        return "Captured(" + ", ".join(f"{channel}: {len(items)} lines" for channel, items in self.items()) + ")"


def everything_submitted(aggregator, datadog_agent) -> list[str]:
    """Every metric (name, value, tags, hostname, device), service check (status, message, tags),
    event, histogram bucket and metadata value the check submitted, one line each."""
    lines = []
    for name in aggregator.metric_names:
        lines += [f"metric {m!r}" for m in aggregator.metrics(name)]
    for name in aggregator.service_check_names:
        lines += [f"service check {sc!r}" for sc in aggregator.service_checks(name)]
    lines += [f"event {e!r}" for e in aggregator.events]
    lines += [f"histogram bucket {b!r}" for buckets in aggregator._histogram_buckets.values() for b in buckets]
    lines.append(f"metadata {datadog_agent._metadata!r}")
    return lines


@pytest.fixture(scope="module", params=[True, False], ids=["fast_path", "stock_parser"])
def leak_scenario(request, fixture_server, mtls_server, tls_material, tmp_path_factory):
    """Runs an instance full of secrets through failures of every kind and through success, in
    process and through `cilium-check check`, and returns what each channel carried:
    {channel: [(where, text), ...]}."""
    from datadog_checks.base.stubs import aggregator, datadog_agent

    fast_path = request.param
    assert tls_material.client_key_password == KEY_PASSWORD
    tmp = tmp_path_factory.mktemp("secrets")
    token_path = tmp / "token"
    token_path.write_text(TOKEN + "\n")
    seen = Captured(
        {
            "run() errors": [],
            "check log records": [],
            "library log records": [],
            "check warnings": [],
            "submissions": [],
            "command output": [],
            "command debug log of libraries": [],
        }
    )
    capture = _Capture()
    root = logging.getLogger()
    level = root.level

    def collect(phase: str, check: CiliumCheck, errors: list[str]) -> None:
        seen["run() errors"] += [(f"{phase}: run() #{i + 1}", error) for i, error in enumerate(errors)]
        for record in capture.records:
            text = capture.format(record)
            channel = "check log records" if is_check_logger(record.name) else "library log records"
            seen[channel].append((f"{phase}: {record.name}", text))
        capture.records.clear()
        seen["check warnings"] += [(phase, warning) for warning in check.warnings]
        seen["submissions"] += [(phase, line) for line in everything_submitted(aggregator, datadog_agent)]
        aggregator.reset()
        datadog_agent.reset()

    aggregator.reset()
    datadog_agent.reset()
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        with TokenServer(expected="a-token-nobody-has", component="operator") as token_server:
            # 1. Each endpoint fails its own way but one: connection refused (a URL with userinfo),
            #    HTTP 401, TLS (the client trusts the wrong CA); the kvstoremesh answers.
            failing = {
                "agent_endpoint": with_userinfo(closed_url()),
                "operator_endpoint": token_server.url,
                "hubble_endpoint": mtls_server.url("hubble"),
                "kvstoremesh_endpoint": fixture_server.url("kvstoremesh"),
                "fast_path": fast_path,
                **secret_options(tls_material, token_path, tls_material.wrong_ca_cert),
            }
            check = CiliumCheck("cilium", {}, [failing])
            errors = [check.run() for _ in range(3)]
            assert errors[0], "the first run should fail"
            statuses = [sc.status for sc in aggregator.service_checks(HEALTH)]
            assert statuses.count(ServiceCheck.CRITICAL) == 9 and statuses.count(ServiceCheck.OK) == 3, statuses
            collect("failing endpoints", check, errors)

            # 2. Everything answers: the userinfo URL is served, the token server lets anyone in,
            #    the client certificate (its key decrypted with the password) passes mTLS.
            token_server.set_expected(None)
            agent_url = with_userinfo(fixture_server.url("agent"))
            working = {
                "agent_endpoint": agent_url,
                "operator_endpoint": token_server.url,
                "hubble_endpoint": mtls_server.url("hubble"),
                "kvstoremesh_endpoint": fixture_server.url("kvstoremesh"),
                "fast_path": fast_path,
                **secret_options(tls_material, token_path, tls_material.ca_cert),
            }
            check = CiliumCheck("cilium", {}, [working])
            errors = [check.run() for _ in range(2)]
            assert errors == ["", ""], errors
            statuses = [sc.status for sc in aggregator.service_checks(HEALTH)]
            assert statuses == [ServiceCheck.OK] * 8, statuses
            assert aggregator.metrics("cilium.endpoint.state"), "the userinfo URL was scraped"
            assert aggregator.metrics("cilium.operator.process.resident_memory.bytes"), "the operator was scraped"
            collect("working endpoints", check, errors)

            # 3. The same check, its endpoints found, fails while scraping: HTTP 401 from the
            #    operator, HTTP 500 from the userinfo URL (a scraper's HTTPError names the URL).
            token_server.set_expected("a-token-nobody-has")
            fixture_server.set_fault(agent_url, "status", code=500, times=4)
            try:
                errors = [check.run() for _ in range(2)]
            finally:
                fixture_server.clear_fault(agent_url)
            assert errors[0], "the scrape should fail"
            collect("endpoints failing after a success", check, errors)

            # 4. The command, with both instances in a configuration file, as text and as JSON,
            #    at the default log level and at debug.
            conf = tmp / "conf.yaml"
            conf.write_text(yaml.safe_dump({"init_config": {}, "instances": [failing, working]}))
            for expected in ("a-token-nobody-has", None):
                token_server.set_expected(expected)
                for log_level, output in (("error", []), ("error", ["--json"]), ("debug", []), ("debug", ["--json"])):
                    command = [sys.executable, "-m", "cilium_check", "--log-level", log_level]
                    command += ["check", "-c", str(conf), "-t", "2", "--pause", "0", *output]
                    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT, timeout=120)
                    where = f"`cilium-check {' '.join(command[3:])}` (token server {'401' if expected else 'open'})"
                    assert result.returncode == 0, f"{where} exited {result.returncode}: {result.stderr[-3000:]}"
                    assert "cilium.openmetrics.health" in result.stdout, f"{where} printed no health check"
                    seen["command output"] += [(f"{where} stdout", line) for line in result.stdout.splitlines()]
                    logger = "cilium_check"  # stderr lines belong to the last record's logger
                    for line in result.stderr.splitlines():
                        match = _STDERR_RECORD.match(line)
                        if match:
                            logger = match["name"]
                        channel = "command output" if is_check_logger(logger) else "command debug log of libraries"
                        if log_level != "debug":
                            channel = "command output"
                        seen[channel].append((f"{where} stderr ({logger})", line))
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
        aggregator.reset()
        datadog_agent.reset()
    return seen


def assert_no_secret(seen: list[tuple[str, str]]) -> None:
    assert seen, "nothing was captured on this channel"
    leaks = [leak for where, text in seen for leak in find_secrets(f"{where}: {text[:400]!r}", text)]
    assert not leaks, f"{len(leaks)} secret(s) leaked:\n" + "\n".join(leaks[:40])


def test_no_secret_in_run_errors(leak_scenario):
    assert_no_secret(leak_scenario["run() errors"])


def test_no_secret_in_the_checks_log(leak_scenario):
    assert_no_secret(leak_scenario["check log records"])


def test_no_secret_in_service_checks_metrics_or_metadata(leak_scenario):
    assert_no_secret(leak_scenario["submissions"] + leak_scenario["check warnings"])


def test_no_secret_in_the_command_output(leak_scenario):
    assert_no_secret(leak_scenario["command output"])


# datadog-checks-base's utils/tls.py logs the whole TLS configuration at DEBUG on its own module
# logger ("Creating SSL context with config: ChainMap({... 'tls_private_key_password': ...})").
BASE_TLS_CONFIG_LINE = "Creating SSL context with config:"


def library_lines(leak_scenario, *, base_tls_config: bool) -> list[tuple[str, str]]:
    lines = leak_scenario["library log records"] + leak_scenario["command debug log of libraries"]
    return [(where, text) for where, text in lines if (BASE_TLS_CONFIG_LINE in text) == base_tls_config]


def test_no_secret_in_library_debug_logs(leak_scenario):
    """urllib3, requests and datadog-checks-base's module loggers, in process and from the command
    at --log-level debug (but for the base's TLS-config line, below)."""
    assert_no_secret(library_lines(leak_scenario, base_tls_config=False))


def test_no_secret_in_the_base_tls_config_debug_line(leak_scenario):
    """Known to fail with datadog-checks-base 38.5: utils/tls.py logs the TLS config it builds a
    context from, `tls_private_key_password` included, at DEBUG on its own module logger. The
    check can only keep that out of a debug log by filtering that logger (or accepting the leak
    and marking this test xfail): a decision for the check's owner, not for this test."""
    assert_no_secret(library_lines(leak_scenario, base_tls_config=True))
