"""Text extraction (PDF per page, DOCX, text encodings), chunking, and type checks."""

from __future__ import annotations

import pytest

from chatgate.errors import UnsupportedMediaTypeError
from chatgate.files.chunking import split, units
from chatgate.files.extract import ExtractError, Page, decode_text, extract
from chatgate.files.kinds import DOCX, PDF, check_start, classify
from tests.files import make


def test_pdf_text_comes_out_per_page() -> None:
    data = make.pdf(["Alpha page one.", "Bravo page two.", "The vault code is 4417."])
    pages = extract(data, PDF)
    assert [p.number for p in pages] == [1, 2, 3]
    assert "4417" in pages[2].text and "4417" not in pages[0].text + pages[1].text
    assert "Bravo" in pages[1].text


def test_a_damaged_pdf_is_an_extract_error() -> None:
    with pytest.raises(ExtractError):
        extract(b"%PDF-1.4\nthis is not a pdf at all", PDF)


def test_docx_paragraphs_come_out() -> None:
    data = make.docx(["Договор поставки № 17.", "Срок оплаты — 30 дней.", "合同的期限是两年。"])
    (page,) = extract(data, DOCX)
    assert page.number is None
    assert "Срок оплаты — 30 дней." in page.text and "合同的期限是两年。" in page.text


def test_text_encodings() -> None:
    assert decode_text("привет".encode()) == "привет"
    assert decode_text("привет мир".encode("cp1251")) == "привет мир"
    assert decode_text("\ufeffhello".encode()) == "hello"
    assert decode_text("hi".encode("utf-16")) == "hi"
    assert decode_text(b"caf\xe9") == "café"


def test_chunks_overlap_keep_pages_and_never_cross_one() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    chunks = split([Page(1, words), Page(2, "short page")], size=40, overlap=10)
    first_page = [c for c in chunks if c.page == 1]
    assert len(first_page) == 3  # 0-40, 30-70, 60-100
    assert first_page[0].text.split()[-10:] == first_page[1].text.split()[:10]
    assert first_page[-1].text.endswith("w99")
    assert chunks[-1].page == 2 and chunks[-1].text == "short page"


def test_chunks_end_at_a_sentence_when_one_is_near() -> None:
    text = ("one two three four five six seven eight. " * 10).strip()
    chunks = split([Page(None, text)], size=30, overlap=5)
    assert all(c.text.endswith(".") for c in chunks)


def test_cjk_characters_count_as_tokens() -> None:
    assert units("合同的期限") == 5
    assert units("Договор поставки, 17") == 4
    chunks = split([Page(None, "合" * 50)], size=20, overlap=0)
    assert [len(c.text) for c in chunks] == [20, 20, 10]


@pytest.mark.parametrize(
    ("declared", "name", "mime", "kind"),
    [
        ("image/png", "a.png", "image/png", "image"),
        ("application/pdf", "a.pdf", PDF, "document"),
        ("application/octet-stream", "a.pdf", PDF, "document"),
        ("application/octet-stream", "main.rs", "text/plain", "document"),
        ("text/x-python; charset=utf-8", "a.py", "text/x-python", "document"),
        ("text/plain", "notes.md", "text/markdown", "document"),
        (DOCX, "a.docx", DOCX, "document"),
        ("text/html", "page.html", "text/plain", "document"),  # kept as text, never served as HTML
    ],
)
def test_classify(declared: str, name: str, mime: str, kind: str) -> None:
    found = classify(declared, name)
    assert (found.mime, found.kind) == (mime, kind)


@pytest.mark.parametrize(
    ("declared", "name"),
    [("image/svg+xml", "a.svg"), ("application/zip", "a.zip"), ("text/html", "page"),
     ("application/octet-stream", "a.exe")],
)  # fmt: skip
def test_unsupported_types_are_415(declared: str, name: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        classify(declared, name)
    assert caught.value.code == "unsupported_file_type"


def test_content_must_match_the_type() -> None:
    check_start(classify("image/png", "a.png"), make.png()[:16])
    with pytest.raises(UnsupportedMediaTypeError):
        check_start(classify("image/png", "a.png"), b"<html><script>x")
    with pytest.raises(UnsupportedMediaTypeError):
        check_start(classify("application/pdf", "a.pdf"), b"not a pdf")
