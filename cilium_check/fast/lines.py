"""The lines of an HTTP response body, decoded as they stream in."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

CHUNK = 65536


def response_lines(response) -> Iterator[str]:
    """Each `\\n`-terminated line of the body, without its newline.

    Only `\\n` ends a line in the exposition format; `str.splitlines` (which `requests` uses)
    would also split a label value containing a Unicode line separator.
    """
    decoder = codecs.getincrementaldecoder(response.encoding or "utf-8")(errors="replace")
    pending = ""
    for chunk in response.iter_content(chunk_size=CHUNK):
        text = decoder.decode(chunk)
        if not text:
            continue
        lines = text.split("\n")
        lines[0] = pending + lines[0]
        pending = lines.pop()
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending
