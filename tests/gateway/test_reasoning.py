"""The <think> splitter: any cut of a text gives the same result as the whole text."""

from __future__ import annotations

import copy
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.gateway.reasoning import (
    StreamFilter,
    ThinkSplitter,
    apply_to_message,
    split_text,
)


def split_stream(pieces: list[str], starts_inside: bool = False) -> tuple[str, str]:
    splitter = ThinkSplitter(starts_inside)
    content, reasoning = [], []
    for piece in pieces:
        c, r = splitter.feed(piece)
        content.append(c)
        reasoning.append(r)
    c, r = splitter.flush()
    return "".join(content) + c, "".join(reasoning) + r


def cut(text: str, points: list[int]) -> list[str]:
    bounds = [0, *sorted(p % (len(text) + 1) for p in points), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# Text made of plain words, tags, tag look-alikes and whitespace, in any order.
_atoms = st.sampled_from(
    ["<think>", "</think>", "<", "<t", "<thin", "</thi", "<b>", "a<b", "x < y", "\n", " ", "\n\n"]
)
_words = st.text(alphabet="abcй 🙂\n", min_size=1, max_size=6)
texts = st.lists(st.one_of(_atoms, _words), max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(texts, st.lists(st.integers(min_value=0, max_value=10_000), max_size=15), st.booleans())
def test_any_cut_equals_whole(text: str, points: list[int], inside: bool) -> None:
    assert split_stream(cut(text, points), inside) == split_text(text, inside)


@settings(max_examples=200, deadline=None)
@given(texts, st.booleans())
def test_one_character_at_a_time(text: str, inside: bool) -> None:
    assert split_stream(list(text), inside) == split_text(text, inside)


plain = st.text(alphabet="abc xyз\n.", max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(plain, plain), min_size=1, max_size=4), st.lists(st.integers(), max_size=10)
)
def test_no_tag_leaks_and_nothing_lost(blocks: list[tuple[str, str]], points: list[int]) -> None:
    text = "".join(f"<think>{r}</think>{c}" for r, c in blocks)
    content, reasoning = split_stream(cut(text, points))
    for out in (content, reasoning):
        assert "<" not in out and ">" not in out
    squash = lambda s: "".join(s.split())  # noqa: E731 - whitespace after tags is dropped
    assert squash(content) == squash("".join(c for _, c in blocks))
    assert squash(reasoning) == squash("".join(r for r, _ in blocks))


@pytest.mark.parametrize(
    ("text", "inside", "expected"),
    [
        ("<think>\nplan\n</think>\n\nAnswer.", False, ("Answer.", "plan\n")),
        ("plan</think>\n\nAnswer.", True, ("Answer.", "plan")),
        ("<think>a</think>B<think>c</think>D", False, ("BD", "ac")),
        ("no reasoning at all", False, ("no reasoning at all", "")),
        ("1 < 2 and <b>bold</b>", False, ("1 < 2 and <b>bold</b>", "")),
        ("ends with <thin", False, ("ends with <thin", "")),
        ("<think>unfinished", False, ("", "unfinished")),
        ("stray </think> tag", False, ("stray tag", "")),
        ("<think><think>x</think>y", False, ("y", "x")),
    ],
)
def test_named_cases(text: str, inside: bool, expected: tuple[str, str]) -> None:
    assert split_text(text, inside) == expected
    assert split_stream(list(text), inside) == expected


def test_holds_back_only_a_possible_tag() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("Hello <th") == ("Hello ", "")
    assert splitter.feed("ere") == ("<there", "")
    assert splitter.feed("x <") == ("x ", "")
    assert splitter.flush() == ("<", "")


def chunk(content: str | None = None, finish: str | None = None, **delta: object) -> dict:
    d = dict(delta)
    if content is not None:
        d["content"] = content
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def run_filter(mode: str, chunks: list[dict]) -> list[dict]:
    original = copy.deepcopy(chunks)
    out = StreamFilter(mode).batch(chunks)  # type: ignore[arg-type]
    assert chunks == original  # shared chunks are never modified
    return out


STREAM = [
    chunk("<thi", role="assistant"),
    chunk("nk>Let me "),
    chunk("think.</th"),
    chunk("ink>\n\nHi"),
    chunk("!", finish="stop"),
    {"choices": [], "usage": {"total_tokens": 9}},
]


def texts_of(chunks: list[dict], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def test_stream_separate() -> None:
    out = run_filter("separate", STREAM)
    assert texts_of(out, "content") == "Hi!"
    assert texts_of(out, "reasoning_content") == "Let me think."
    assert out[0]["choices"][0]["delta"]["role"] == "assistant"
    assert out[-1] == {"choices": [], "usage": {"total_tokens": 9}}


def test_stream_strip_drops_upstream_reasoning_too() -> None:
    chunks = [chunk(reasoning_content="deep thought"), *STREAM]
    out = run_filter("strip", chunks)
    assert texts_of(out, "content") == "Hi!"
    assert texts_of(out, "reasoning_content") == ""


def test_stream_keep_is_untouched() -> None:
    assert run_filter("keep", STREAM) == STREAM


def test_stream_separate_passes_upstream_reasoning() -> None:
    chunks = [
        chunk(reasoning_content="R1 "),
        chunk(reasoning_content="R2"),
        chunk("A", finish="stop"),
    ]
    out = run_filter("separate", chunks)
    assert texts_of(out, "reasoning_content") == "R1 R2"
    assert texts_of(out, "content") == "A"


def test_held_tail_is_released_at_finish() -> None:
    out = run_filter("separate", [chunk("a <"), chunk(finish="stop")])
    assert texts_of(out, "content") == "a <"


def test_whole_message_modes() -> None:
    msg = {"role": "assistant", "content": "<think>why</think>\nBecause."}
    separate = apply_to_message(msg, "separate", False)
    assert separate == {"role": "assistant", "content": "Because.", "reasoning_content": "why"}
    strip = apply_to_message(dict(msg, reasoning_content="x"), "strip", False)
    assert strip == {"role": "assistant", "content": "Because."}
    assert apply_to_message(msg, "keep", False) == msg
    assert msg == {"role": "assistant", "content": "<think>why</think>\nBecause."}  # untouched
