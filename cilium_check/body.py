"""Reading a response body within bounds: its size, its line length and its time.

A metrics endpoint is trusted to serve a few megabytes in well under a second. Whatever it does
instead (a gzip bomb, a 10 MB line, a body that never ends), the check reads at most
`max_body_size` decompressed bytes, holds at most `max_line_length` characters of one line, and
stops when the request's `timeout` has elapsed since it was sent, keeping what it read.
"""

from __future__ import annotations

import codecs
import socket
import zlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

# Decompressed bytes per chunk: under the default max_line_length, so most chunks need no
# per-line length check.
CHUNK = 32768
# Bytes read from the socket at a time, compressed: few large reads cost less than many small ones.
WIRE_READ = 1 << 18
DEFAULT_MAX_BODY_SIZE = 128 * 1024 * 1024
DEFAULT_MAX_LINE_LENGTH = 65536
DEFAULT_TIMEOUT = 10.0

# Yielded in place of a line longer than `max_line_length`, whose text was not kept.
TOO_LONG = None

# Bytes that are not UTF-8 are shown as U+FFFD, as `requests` decodes them, and counted.
_decoding = threading.local()


def _count_and_replace(error: UnicodeDecodeError) -> tuple[str, int]:
    reader = getattr(_decoding, "reader", None)
    if reader is not None:
        reader.invalid_bytes += error.end - error.start
    return "\ufffd", error.end


codecs.register_error("cilium-count-replace", _count_and_replace)


class Truncated(Exception):
    """The body was cut short; `reason` says why in a user's words. Lines before it were read."""

    def __init__(self, reason: str, lines: int):
        super().__init__(reason)
        self.reason = reason
        self.lines = lines


def _socket_of(response: requests.Response) -> socket.socket | None:
    connection = getattr(response.raw, "connection", None)
    return getattr(connection, "sock", None)


class Watchdog:
    """Shuts a response's socket down at a deadline, or on demand (`cancel`).

    A blocked read of a trickling body only notices a per-read timeout, never a total one: the
    watchdog turns the total deadline into an error of the read in progress.
    """

    def __init__(self, response: requests.Response, seconds: float | None):
        self.response = response
        self.fired = False
        self.timer: threading.Timer | None = None
        if seconds:
            self.timer = threading.Timer(seconds, self.fire)
            self.timer.daemon = True
            self.timer.start()

    def fire(self) -> None:
        self.fired = True
        sock = _socket_of(self.response)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


@dataclass(frozen=True)
class BodyLimits:
    """An endpoint's bounds, from the instance options `max_body_size`, `max_line_length`, `timeout`."""

    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BodyLimits:
        return cls(
            int(config.get("max_body_size") or DEFAULT_MAX_BODY_SIZE),
            int(config.get("max_line_length") or DEFAULT_MAX_LINE_LENGTH),
            float(config.get("timeout") or DEFAULT_TIMEOUT),
        )

    def reader(self, response: requests.Response, started: float | None = None) -> BodyReader:
        """A reader of `response` within these bounds; `started` is when the request was sent."""
        return BodyReader(
            response,
            max_body_size=self.max_body_size,
            max_line_length=self.max_line_length,
            timeout=self.timeout,
            started=started,
        )


class BodyReader:
    """The lines of a response, within the limits; `bytes_read` and `lines` tell how far it got."""

    def __init__(
        self,
        response: requests.Response,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        timeout: float | None = None,
        started: float | None = None,
    ):
        self.response = response
        self.max_body_size = max_body_size
        self.max_line_length = max_line_length
        self.timeout = timeout
        self.started = time.monotonic() if started is None else started
        self.bytes_read = 0
        self.lines = 0
        self.invalid_bytes = 0  # bytes that were not UTF-8
        remaining = None if timeout is None else max(0.05, timeout - (time.monotonic() - self.started))
        self.watchdog = Watchdog(response, remaining)

    def cancel(self) -> None:
        """Stop reading now (from another thread)."""
        self.watchdog.fire()

    def chunks(self) -> Iterator[bytes]:
        """The decoded body, as the bytes arrive (a reset then loses nothing that was received)."""
        raw = self.response.raw
        if self.response.headers.get("Content-Encoding", "").strip().lower() == "gzip":
            yield from self._gunzip(raw)
            return
        while True:
            # read1 returns what is available now, and decompresses at most CHUNK bytes at a time,
            # so a gzip bomb is never expanded further than the limit lets it.
            data = raw.read1(CHUNK, decode_content=True)
            if not data:
                break
            yield data
        decoder = getattr(raw, "_decoder", None)
        stream = getattr(decoder, "_obj", None)
        if stream is not None and getattr(stream, "eof", True) is False:
            raise urllib3.exceptions.ProtocolError("the compressed stream ended before its end")

    def _gunzip(self, raw: Any) -> Iterator[bytes]:
        """A gzip body inflated here rather than by urllib3: the wire read in large blocks, each
        inflated at most CHUNK bytes at a time (so a gzip bomb is never expanded past the limit),
        which costs a third of urllib3's small decoded reads on a 10 MB Hubble payload."""
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            data = raw.read1(WIRE_READ, decode_content=False)
            if not data:
                break
            while data:
                try:
                    out = inflater.decompress(data, CHUNK)
                except zlib.error as e:  # what urllib3 raises for a body that is not gzip
                    raise urllib3.exceptions.DecodeError(f"the gzip body does not decompress: {e}") from None
                if out:
                    yield out
                data = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:
                    # another gzip member follows, as gzip allows
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not inflater.eof:
            raise urllib3.exceptions.ProtocolError("the compressed stream ended before its end")

    def __iter__(self) -> Iterator[str | None]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[str | None]]:
        """The lines, a list per chunk read: the fast path iterates them without a call per line."""
        decoder = codecs.getincrementaldecoder(self.response.encoding or "utf-8")(errors="cilium-count-replace")
        _decoding.reader = self
        limit = self.max_line_length
        pending = ""
        skipping = False  # inside a line that was already too long
        try:
            for chunk in self.chunks():
                over = self.bytes_read + len(chunk) - self.max_body_size
                if over > 0:
                    # Not a byte past the limit: the line it cuts is not kept either.
                    chunk = chunk[: len(chunk) - over]
                    self.bytes_read += len(chunk)
                    lines = (pending + decoder.decode(chunk)).split("\n")[:-1]
                    yield self.bounded(lines, skipping)
                    raise Truncated(
                        f"the payload exceeded max_body_size ({self.max_body_size} bytes); "
                        f"kept the {self.lines} lines before it",
                        self.lines,
                    )
                self.bytes_read += len(chunk)
                text = decoder.decode(chunk)
                if text:
                    lines = text.split("\n")
                    if len(lines) > 1:
                        lines[0] = pending + lines[0]
                        pending = lines.pop()
                        if skipping or len(text) > limit or len(lines[0]) > limit:
                            lines = self.bounded(lines, skipping)
                            skipping = False
                        else:
                            # Of a chunk shorter than the limit, only the line that began in an
                            # earlier chunk (the first) could exceed it.
                            self.lines += len(lines)
                        yield lines
                    else:
                        pending += text
                    if len(pending) > limit:
                        pending, skipping = "", True
                if self.timeout is not None and time.monotonic() - self.started > self.timeout:
                    raise self.late()
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            if self.watchdog.fired:
                raise self.late() from None
            if self.lines:
                raise Truncated(f"the connection broke after {self.lines} lines: {e}", self.lines) from None
            raise requests.exceptions.ConnectionError(f"the connection broke before the first line: {e}") from None
        finally:
            self.watchdog.stop()
        pending += decoder.decode(b"", final=True)
        if skipping or pending:
            yield self.bounded([pending], skipping)

    def bounded(self, lines: list[str], skipping: bool) -> list[str | None]:
        """The lines with each one over `max_line_length` (or continuing a skipped one) as TOO_LONG."""
        self.lines += len(lines)
        limit = self.max_line_length
        result: list[str | None] = [TOO_LONG if len(line) > limit else line for line in lines]
        if skipping and result:
            result[0] = TOO_LONG
        return result

    def late(self) -> Truncated:
        if self.lines == 0 and self.watchdog.fired and self.timeout is None:
            return Truncated("the scrape was cancelled", self.lines)
        return Truncated(
            f"the body did not finish within {self.timeout:g}s; kept the {self.lines} lines before it"
            if self.timeout is not None
            else "the scrape was cancelled",
            self.lines,
        )


def cancel_reading(reader: BodyReader | None, http: Any) -> None:
    """Stop a read in flight (from the Agent's thread) and close the HTTP wrapper's connections."""
    if reader is not None:
        reader.cancel()
    try:
        http.session.close()
    except Exception:  # closing is best effort: the run is being abandoned anyway
        pass
