"""Text out of a document, page by page for PDFs: ``pypdf`` (pure Python, BSD) and
``python-docx`` (MIT); text and source files are decoded (UTF-8, UTF-16 with a BOM, else
Windows-1251 when that reads as Cyrillic, else Latin-1: something always comes out).

Runs in a worker thread: extraction is CPU work that must not stall the event loop.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from chatgate.files.kinds import DOCX, PDF

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Page:
    number: int | None  # 1-based PDF page; None for documents without pages
    text: str


class ExtractError(Exception):
    """The document could not be read (damaged, encrypted, not what it claims)."""


def extract(data: bytes, mime: str) -> list[Page]:
    if mime == PDF:
        return _pdf(data)
    if mime == DOCX:
        return _docx(data)
    return [Page(None, decode_text(data))]


def _pdf(data: bytes) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged-file chatter
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise ExtractError("the PDF is encrypted") from None
        pages = []
        for i, page in enumerate(reader.pages, 1):
            try:
                text = page.extract_text() or ""
            except Exception as exc:  # one bad page must not lose the others
                log.info("pdf page %d: %s", i, exc)
                text = ""
            pages.append(Page(i, text))
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ExtractError(f"cannot read the PDF: {exc}") from None
    return pages


def _docx(data: bytes) -> list[Page]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, ValueError, KeyError) as exc:
        raise ExtractError(f"cannot read the DOCX: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, lxml errors
        raise ExtractError(f"cannot read the DOCX: {type(exc).__name__}") from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return [Page(None, "\n".join(parts))]


def decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    cyrillic = data.decode("cp1251", errors="replace")
    letters = sum(1 for c in cyrillic if "\u0400" <= c <= "\u04ff")
    if letters > len(cyrillic) // 4:
        return cyrillic
    return data.decode("latin-1")
