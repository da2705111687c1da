"""SSE decoding of upstream streams: events split anywhere must come out whole."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chatgate.protocol.sse import DONE, SSEDecoder, encode

STREAM = (
    b": keep-alive\n\n"
    + encode({"a": 1})
    + b'data: {"b":\r\ndata: 2}\r\n\r\n'
    + b'event: ping\nid: 7\ndata: {"c":3}\n\n'
    + DONE
)
EXPECTED = [b'{"a":1}', b'{"b":\n2}', b'{"c":3}', b"[DONE]"]


def decode(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for piece in pieces:
        out += decoder.feed(piece)
    return out + decoder.flush()


def test_whole() -> None:
    assert decode([STREAM]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert decode(pieces) == EXPECTED


def test_last_event_without_blank_line() -> None:
    assert decode([b'data: {"x":1}']) == [b'{"x":1}']
