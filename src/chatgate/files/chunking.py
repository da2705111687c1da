"""Documents into chunks for retrieval: about ``size`` tokens each, neighbours sharing
``overlap``, never across a page (each chunk keeps its page number).

A "token" here is a word, or one CJK character (Chinese and Japanese are written without
spaces; one character is about one model token), or one punctuation mark: the same measure for
Russian, Chinese and English text, counted without loading a tokenizer. A chunk ends at a
sentence end when one falls in its last third, so passages read whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatgate.files.extract import Page

_UNIT = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|\w+|[^\w\s]"
)
_SENTENCE_END = frozenset(".!?。！？;；\n")


@dataclass(frozen=True, slots=True)
class Chunk:
    page: int | None
    text: str


def units(text: str) -> int:
    """The token measure of ``text``."""
    return sum(1 for _ in _UNIT.finditer(text))


def split(pages: list[Page], size: int, overlap: int) -> list[Chunk]:
    overlap = min(overlap, size // 2)
    chunks: list[Chunk] = []
    for page in pages:
        text = page.text
        spans = [m.span() for m in _UNIT.finditer(text)]
        start = 0
        while start < len(spans):
            end = min(start + size, len(spans))
            if end < len(spans):
                end = _sentence_cut(text, spans, start, end, size)
            piece = text[spans[start][0] : spans[end - 1][1]].strip()
            if piece:
                chunks.append(Chunk(page.number, _tidy(piece)))
            if end >= len(spans):
                break
            start = max(end - overlap, start + 1)
    return chunks


def windows(text: str, size: int) -> list[str]:
    """``text`` (a chunk) as consecutive windows of whole sentences, each at most about ``size``
    tokens (a longer sentence is cut every ``size`` tokens; a short last sentence joins the
    window before it): what a sentence encoder is trained on, where a whole chunk's vector
    would average several topics into one."""
    spans = [m.span() for m in _UNIT.finditer(text)]
    if len(spans) <= size:
        return [text] if spans else []
    sentences: list[tuple[int, int]] = []  # unit index ranges
    first = 0
    for i, (s, e) in enumerate(spans):
        nxt = spans[i + 1][0] if i + 1 < len(spans) else len(text)
        if text[s:e] in _SENTENCE_END or "\n" in text[e:nxt] or i + 1 - first >= size:
            sentences.append((first, i + 1))
            first = i + 1
    if first < len(spans):
        sentences.append((first, len(spans)))
    groups: list[list[int]] = []  # [start, end) unit ranges
    for start, end in sentences:
        if groups and end - groups[-1][0] <= size:
            groups[-1][1] = end
        else:
            groups.append([start, end])
    if len(groups) > 1 and groups[-1][1] - groups[-1][0] < size // 4:
        tail = groups.pop()
        groups[-1][1] = tail[1]
    return [_tidy(text[spans[a][0] : spans[b - 1][1]].strip()) for a, b in groups]


def _sentence_cut(text: str, spans: list[tuple[int, int]], start: int, end: int, size: int) -> int:
    """``end``, moved back to just after a sentence end in the window's last third."""
    for i in range(end - 1, start + (size * 2) // 3, -1):
        s, e = spans[i]
        if text[s:e] in _SENTENCE_END or "\n" in text[e : spans[i + 1][0]]:
            return i + 1
    return end


def _tidy(text: str) -> str:
    """Runs of blank lines and spaces (PDF extraction leaves many) folded."""
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text)
