"""The secrets an instance holds, so that the check can scrub them from everything it reports."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .components import ENDPOINT_OPTIONS

SECRET_OPTIONS = ("password", "tls_private_key_password", "kerberos_password", "aws_secret_access_key")
# Headers a user sets that never carry a credential; any other header value is treated as one.
PLAIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "accept-language", "cache-control", "connection", "content-type", "host", "user-agent"}
)
URL_OPTIONS = ENDPOINT_OPTIONS
# Options whose value may hold a credential: a configuration error names them, never quotes them.
SECRET_BEARING_OPTIONS = frozenset(
    SECRET_OPTIONS
    + URL_OPTIONS
    + ("username", "headers", "extra_headers", "auth_token", "proxy", "kerberos_keytab", "tls_private_key")
)


def _header_secrets(headers: Any) -> Iterator[str]:
    if not isinstance(headers, dict):
        return
    for name, value in headers.items():
        if isinstance(value, str) and str(name).lower() not in PLAIN_HEADERS:
            yield value
            # A scheme such as `Bearer <token>`: the token alone may show up too.
            if " " in value:
                yield value.split(" ", 1)[1]


def basic_auth_secrets(username: Any, password: Any) -> Iterator[str]:
    """What an `Authorization: Basic` header carries for these credentials, as `requests` encodes
    them (latin-1, or UTF-8 where datadog-checks-base encodes them first)."""
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        return
    for encoding in ("latin-1", "utf-8"):
        try:
            pair = f"{username}:{password}".encode(encoding)
        except UnicodeEncodeError:
            continue
        yield base64.b64encode(pair).decode("ascii")


def token_file_path(instance: dict[str, Any]) -> str | None:
    """The file an `auth_token` reader takes its token from (the legacy `bearer_token_*` options are
    translated to one)."""
    auth_token = instance.get("auth_token")
    reader = auth_token.get("reader") if isinstance(auth_token, dict) else None
    if isinstance(reader, dict) and reader.get("type") == "file" and isinstance(reader.get("path"), str):
        return reader["path"]
    return None


class TokenFile:
    """An `auth_token` file, whose content is a secret however often it is rotated."""

    def __init__(self, path: str | None):
        self.path = path
        self.stamp: tuple[int, int] | None = None

    def changed(self) -> str | None:
        """The token, when the file changed since the last call (cheap when it did not)."""
        if self.path is None:
            return None
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self.stamp:
                return None
            with open(self.path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            return None
        self.stamp = stamp
        return token or None


def secrets_of(instance: dict[str, Any]) -> list[str]:
    """Every credential the HTTP layer can send for an instance, as it may come back in an answer:
    passwords, header values, URL userinfo, basic-auth encodings, the token file's content."""
    found: list[str] = []
    for option in SECRET_OPTIONS:
        value = instance.get(option)
        if isinstance(value, str) and value:
            found.append(value)
    found.extend(basic_auth_secrets(instance.get("username"), instance.get("password")))
    for option in ("headers", "extra_headers"):
        found.extend(_header_secrets(instance.get(option)))
    for option in URL_OPTIONS:
        value = instance.get(option)
        for url in [value] if isinstance(value, str) else value if isinstance(value, list | tuple) else []:
            if not isinstance(url, str):
                continue
            try:
                parts = urlsplit(url)
                username, password = parts.username, parts.password
            except ValueError:
                continue
            if password:
                found.extend({password, unquote(password)})
                found.extend(basic_auth_secrets(unquote(username or ""), unquote(password)))
            query = parts.query
            if query:
                found.extend(v for _, v in parse_qsl(query) if v)
    token = TokenFile(token_file_path(instance)).changed()
    if token:
        found.append(token)
    # Short values would scrub ordinary words out of messages.
    return [secret for secret in dict.fromkeys(found) if len(secret) >= 4]


class SecretFilter(logging.Filter):
    """Scrubs the registered secrets from every record of the loggers it is attached to.

    datadog-checks-base logs some requests (with their URL) through the check's logger, and its
    TLS helper logs its whole configuration, key password included, at debug level.
    """

    MASK = "********"

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secrets: list[str]) -> None:
        self.secrets.update(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        scrubbed = message
        for secret in self.secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, self.MASK)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


SECRET_FILTER = SecretFilter()
# Loggers outside the check's own that are known to print configuration or URLs.
LIBRARY_LOGGERS = ("datadog_checks.base.utils.http", "urllib3.connectionpool")


def _library_loggers() -> list[logging.Logger]:
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    try:
        from datadog_checks.base.utils import tls

        # That module names its logger after its file path.
        loggers.append(getattr(tls, "LOGGER", logging.getLogger(tls.__file__)))
    except ImportError:
        pass
    return loggers


def protect_logs(check_logger: logging.Logger, secrets: list[str]) -> None:
    """Scrub `secrets` from the check's log lines and from the libraries' it uses."""
    SECRET_FILTER.add(secrets)
    for logger in (check_logger, *_library_loggers()):
        if SECRET_FILTER not in logger.filters:
            logger.addFilter(SECRET_FILTER)
