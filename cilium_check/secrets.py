"""The secrets an instance holds, so that the check can scrub them from everything it reports."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from .components import ENDPOINT_OPTIONS

SECRET_OPTIONS = ("password", "tls_private_key_password", "kerberos_password", "aws_secret_access_key")
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key")
SECRET_HEADER_WORDS = ("token", "secret", "key", "auth", "password")
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
        lowered = str(name).lower()
        if isinstance(value, str) and (lowered in SECRET_HEADERS or any(w in lowered for w in SECRET_HEADER_WORDS)):
            yield value
            # A scheme such as `Bearer <token>`: the token alone may show up too.
            if " " in value:
                yield value.split(" ", 1)[1]


def _token_file(instance: dict[str, Any]) -> Iterator[str]:
    auth_token = instance.get("auth_token")
    reader = auth_token.get("reader") if isinstance(auth_token, dict) else None
    if isinstance(reader, dict) and reader.get("type") == "file" and isinstance(reader.get("path"), str):
        try:
            with open(reader["path"], encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            return
        if token:
            yield token


def secrets_of(instance: dict[str, Any]) -> list[str]:
    """Every secret value of an instance: passwords, credential headers, URL passwords, tokens."""
    found: list[str] = []
    for option in SECRET_OPTIONS:
        value = instance.get(option)
        if isinstance(value, str) and value:
            found.append(value)
    for option in ("headers", "extra_headers"):
        found.extend(_header_secrets(instance.get(option)))
    for option in URL_OPTIONS:
        value = instance.get(option)
        for url in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(url, str):
                password = urlsplit(url).password
                if password:
                    found.extend({password, unquote(password)})
    found.extend(_token_file(instance))
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
