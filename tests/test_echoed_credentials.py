"""An endpoint that echoes the request back (a debugging proxy, httpbin) never gets a credential
quoted: not in the health message, the run's error, the log, nor `cilium-check` output.

Every credential the HTTP layer can send is registered with the scrubber: the legacy
`bearer_token_auth` token, the base64 `user:password` of basic auth (from the options or the URL's
userinfo), header values, and an `auth_token` file's content, again after it is rotated.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from datadog_checks.cilium import CiliumCheck

TOKEN = "tok-Echo51BearerSecret"
ROTATED = "tok-Echo52RotatedSecret"
USER, PASSWORD = "reader", "pw-Echo53BasicSecret"
URL_PASSWORD = "pw-Echo54UserinfoSecret"
API_KEY = "key-Echo55HeaderSecret"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class EchoServer:
    """Answers every GET with its request headers as one line of JSON; with `expected` set, only a
    request whose Authorization is `Bearer <expected>` gets that answer (others get 401)."""

    def __init__(self) -> None:
        self.expected: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if server.expected is not None and self.headers.get("Authorization") != f"Bearer {server.expected}":
                    body, code = b"Unauthorized\n", 401
                else:
                    # The credentials first, so that they fall in the part of the answer a message quotes.
                    headers = dict(sorted(self.headers.items(), key=lambda h: h[0] not in ("Authorization", "X-Api-Key")))
                    body, code = (json.dumps({"headers": headers, "url": self.path}) + "\n").encode(), 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.httpd.server_address[1]}/metrics"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


def cases(echo: EchoServer, token_file: Path) -> dict[str, tuple[dict, list[str]]]:
    """{name: (instance, the secrets it sends)}."""
    return {
        "legacy bearer_token_auth": (
            {"agent_endpoint": echo.url(), "bearer_token_auth": True, "bearer_token_path": str(token_file)},
            [TOKEN],
        ),
        "basic auth options": ({"agent_endpoint": echo.url(), "username": USER, "password": PASSWORD}, [PASSWORD, basic(USER, PASSWORD)]),
        "basic auth in the URL": (
            {"agent_endpoint": echo.url(f"{USER}:{URL_PASSWORD}@")},
            [URL_PASSWORD, basic(USER, URL_PASSWORD)],
        ),
        "a header": ({"agent_endpoint": echo.url(), "extra_headers": {"X-Api-Key": API_KEY}}, [API_KEY]),
    }


def leaks(texts: list[str], secrets: list[str]) -> list[str]:
    return [secret for secret in secrets for text in texts if secret in text]


@pytest.mark.parametrize("name", ["legacy bearer_token_auth", "basic auth options", "basic auth in the URL", "a header"])
def test_an_echoed_credential_is_scrubbed_everywhere(name, echo, tmp_path, aggregator, caplog):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    instance, secrets = cases(echo, token_file)[name]
    caplog.set_level(logging.DEBUG)
    check = CiliumCheck("cilium", {}, [{**instance, "use_openmetrics": True}])
    error = check.run()
    assert "served no Prometheus metrics" in error  # the echo was quoted, scrubbed
    assert "********" in error
    messages = [sc.message for sc in aggregator.service_checks("cilium.openmetrics.health")]
    assert messages and all("served no Prometheus metrics" in m for m in messages)
    assert leaks([error, *messages, caplog.text], secrets) == []

    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"init_config": {}, "instances": [{**instance, "use_openmetrics": True}]}))
    for output in ("--json", "--table", None):
        done = subprocess.run(
            [sys.executable, "-m", "cilium_check", "check", "-c", str(conf), "--log-level", "debug", *([output] if output else [])],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "served no Prometheus metrics" in done.stdout
        assert leaks([done.stdout, done.stderr], secrets) == []


def test_a_rotated_token_file_is_scrubbed_too(echo, tmp_path, aggregator, caplog):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    auth_token = {
        "reader": {"type": "file", "path": str(token_file)},
        "writer": {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"},
    }
    caplog.set_level(logging.DEBUG)
    check = CiliumCheck("cilium", {}, [{"agent_endpoint": echo.url(), "auth_token": auth_token, "use_openmetrics": True}])
    echo.expected = TOKEN
    first = check.run()
    # The token is rotated, and the endpoint refuses the old one: the base library reads the file
    # again and retries, and the answer echoes the new token.
    token_file.write_text(ROTATED)
    echo.expected = ROTATED
    for _ in range(2):
        check.run()
    messages = [sc.message for sc in aggregator.service_checks("cilium.openmetrics.health")]
    assert any("served no Prometheus metrics" in m and "********" in m for m in messages[-2:])
    assert leaks([first, *messages, caplog.text], [TOKEN, ROTATED]) == []
