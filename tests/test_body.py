"""The body reader: the same verdict on every line whatever the chunks the bytes arrive in."""

from __future__ import annotations

import pytest

from cilium_check.body import CHUNK, TOO_LONG, BodyReader


class Raw:
    """A response body that hands out at most `size` bytes per read, as a socket might."""

    def __init__(self, data: bytes, size: int):
        self.data, self.size, self.at = data, size, 0

    def read1(self, amount: int, decode_content: bool = True) -> bytes:
        piece = self.data[self.at : self.at + min(amount, self.size)]
        self.at += len(piece)
        return piece


class Response:
    def __init__(self, data: bytes, size: int):
        self.raw = Raw(data, size)
        self.encoding = "utf-8"
        self.headers = {}


def read(data: bytes, size: int, limit: int) -> list:
    reader = BodyReader(Response(data, size), max_line_length=limit, timeout=None)
    return list(reader), reader.lines


LIMIT = 100
LENGTHS = [1, LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT, 5, 3 * LIMIT + 7, LIMIT, 0, LIMIT + 1, 17]


def body(lengths: list[int], limit_char: str = "x") -> tuple[bytes, list]:
    lines = [f"m{i}_" + limit_char * max(0, n - len(f"m{i}_")) if n else "" for i, n in enumerate(lengths)]
    expected = [TOO_LONG if len(line) > LIMIT else line for line in lines]
    return ("\n".join(lines) + "\n").encode(), expected


@pytest.mark.parametrize("size", [1, 2, 7, 64, LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT + 3, 997, 100_000])
def test_max_line_length_is_exact_whatever_the_chunking(size):
    data, expected = body(LENGTHS)
    lines, count = read(data, size, LIMIT)
    assert lines == expected
    assert count == len(expected)


@pytest.mark.parametrize("size", [1, 3, 50, 101, 4096])
def test_a_last_line_without_newline_is_judged_the_same(size):
    data, expected = body([LIMIT, LIMIT + 1, LIMIT])
    lines, _ = read(data.rstrip(b"\n"), size, LIMIT)
    assert lines == expected


@pytest.mark.parametrize("size", [1, 5, 33, 4096, CHUNK])
def test_multibyte_characters_split_across_chunks_count_as_one(size):
    # `é` is two bytes: a line of LIMIT of them is LIMIT characters, not too long.
    data, expected = body([LIMIT, LIMIT + 1, 10], limit_char="é")
    lines, _ = read(data, size, LIMIT)
    assert lines == expected


def test_an_80000_character_line_is_skipped_at_the_default_limit_in_any_chunking():
    line = "cilium_x{a=\"" + "y" * 80_000 + "\"} 1"
    data = f"cilium_up 1\n{line}\ncilium_down 0\n".encode()
    for size in (1000, 4093, 16384, CHUNK, 65535, 65536, 65537, 81920, 100_000):
        reader = BodyReader(Response(data, size), timeout=None)
        assert list(reader) == ["cilium_up 1", TOO_LONG, "cilium_down 0"], size
