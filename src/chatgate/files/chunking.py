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
