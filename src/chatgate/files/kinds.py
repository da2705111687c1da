"""Which uploads are taken, as what: the declared type, checked against the name and the first
bytes (an image is served inline, so it must really be one; SVG, which can carry script, is not
taken). Source files come as ``text/*`` or as ``application/octet-stream`` with a known suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chatgate.errors import UnsupportedMediaTypeError

Kind = Literal["image", "document"]

IMAGE_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # "WEBP" at offset 8, checked below
}
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
    }
)
SOURCE_SUFFIXES = frozenset(
    [
        ".txt",
        ".md",
        ".markdown",
        ".rst",
        ".csv",
        ".tsv",
        ".json",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".conf",
        ".xml",
        ".html",
        ".css",
        ".py",
        ".js",
        ".mjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".go",
        ".rs",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".rb",
        ".php",
        ".swift",
        ".m",
        ".sh",
        ".bash",
        ".zsh",
        ".ps1",
        ".sql",
        ".r",
        ".lua",
        ".pl",
        ".hs",
        ".ex",
        ".exs",
        ".erl",
        ".clj",
        ".dart",
        ".vue",
        ".svelte",
        ".tex",
        ".log",
        ".proto",
        ".graphql",
        ".dockerfile",
        ".makefile",
        ".gradle",
    ]
)


def unsupported(message: str) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(message, param="Content-Type", code="unsupported_file_type")


@dataclass(frozen=True, slots=True)
class FileType:
    mime: str
    kind: Kind


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def classify(declared: str, name: str) -> FileType:
    """The stored type of an upload declared as ``declared`` (the Content-Type) named ``name``;
    415 ``unsupported_file_type`` when it is none we read."""
    mime = declared.partition(";")[0].strip().lower()
    suffix = _suffix(name)
    if mime in IMAGE_MAGIC:
        return FileType(mime, "image")
    if mime == PDF or (mime == "application/octet-stream" and suffix == ".pdf"):
        return FileType(PDF, "document")
    if mime == DOCX or (mime == "application/octet-stream" and suffix == ".docx"):
        return FileType(DOCX, "document")
    if mime == "text/markdown" or (mime.startswith("text/") and suffix in (".md", ".markdown")):
        return FileType("text/markdown", "document")
    if (mime.startswith("text/") and mime != "text/html") or mime in TEXT_TYPES:
        return FileType(mime, "document")
    if suffix in SOURCE_SUFFIXES and mime in ("", "application/octet-stream", "text/html"):
        return FileType("text/markdown" if suffix in (".md", ".markdown") else "text/plain",
                        "document")  # fmt: skip
    raise unsupported(
        f"Files of type `{mime or 'unknown'}` are not taken: send an image (PNG, JPEG, WebP, "
        "GIF), a PDF, a DOCX, Markdown, plain text or a source file."
    )


def check_start(ftype: FileType, head: bytes) -> None:
    """The first bytes agree with the type (415 otherwise)."""
    ok = True
    if ftype.kind == "image":
        ok = any(head.startswith(m) for m in IMAGE_MAGIC[ftype.mime])
        if ftype.mime == "image/webp":
            ok = ok and head[8:12] == b"WEBP"
    elif ftype.mime == PDF:
        ok = b"%PDF-" in head[:1024]
    elif ftype.mime == DOCX:
        ok = head.startswith(b"PK\x03\x04")
    if not ok:
        raise unsupported(f"The file's content is not {ftype.mime}.")
