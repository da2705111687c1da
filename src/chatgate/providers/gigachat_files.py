"""Images for GigaChat: it reads none inline, only files uploaded to its storage first.

``POST /files`` (multipart: ``file``, ``purpose=general``) answers the file's ``id``, which a
user message then names in ``attachments``. A file is visible only to the credentials that
uploaded it, so uploads are remembered per credentials and content hash: a conversation's image
goes up once, not at every turn. GigaChat takes JPEG, PNG, TIFF and BMP up to 15 MB each
(developers.sber.ru, "Обработка файлов"). Images come as ``data:`` URLs (the web chat's own
attachments are sent so); a remote ``http(s)`` URL is refused rather than fetched by the
gateway on a client's behalf.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chatgate.errors import InvalidRequestError

MAX_IMAGE_BYTES = 15 * 1024 * 1024
# What GigaChat's storage takes, by the type a data: URL declares (image/jpg: its docs' own).
IMAGE_TYPES = {
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/png": "png",
    "image/tiff": "tiff",
    "image/bmp": "bmp",
}
CACHE_SIZE = 1024  # uploads remembered per provider (credentials x content hash)


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    mime: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _refuse(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="messages", code="invalid_image")


def parse_image(url: str) -> Image:
    """The image a ``data:`` URL holds; a 400 for anything GigaChat cannot be given."""
    if url.startswith(("http://", "https://")):
        raise _refuse(
            "GigaChat reads images only from its own storage, and the gateway does not fetch "
            "remote URLs: send the image as a data: URL (data:image/png;base64,...)."
        )
    head, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not head.endswith(";base64"):
        raise _refuse("An image for GigaChat must be a base64 data: URL.")
    mime = head.removeprefix("data:").removesuffix(";base64").split(";")[0].strip().lower()
    if mime not in IMAGE_TYPES:
        raise _refuse(f"GigaChat takes JPEG, PNG, TIFF or BMP images, not {mime or 'this type'}.")
    if len(payload) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
        raise _refuse("GigaChat takes images up to 15 MB.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("The image's base64 data is broken.") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise _refuse("GigaChat takes images up to 15 MB.")
    return Image(data, "image/jpeg" if mime == "image/jpg" else mime)


def multipart(image: Image) -> tuple[bytes, str]:
    """The ``POST /files`` body for ``image`` and its Content-Type."""
    boundary = "chatgate-" + secrets.token_hex(16)
    name = "image." + IMAGE_TYPES[image.mime]
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="purpose"\r\n\r\ngeneral\r\n',
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
            f"Content-Type: {image.mime}\r\n\r\n".encode(),
            image.data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Uploads:
    """File ids of images already in GigaChat's storage, per credentials and content hash
    (the newest ``CACHE_SIZE``); concurrent requests for one image share one upload."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[str]] = {}

    def known(self, credentials: str, image: Image) -> bool:
        return (credentials, image.digest) in self._ids

    def forget(self, credentials: str, file_ids: set[str]) -> None:
        for key in [k for k, v in self._ids.items() if k[0] == credentials and v in file_ids]:
            del self._ids[key]

    async def file_id(
        self, credentials: str, image: Image, upload: Callable[[Image], Awaitable[str]]
    ) -> str:
        key = (credentials, image.digest)
        if (found := self._ids.get(key)) is not None:
            self._ids.move_to_end(key)
            return found
        if (pending := self._pending.get(key)) is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[str] = asyncio.ensure_future(upload(image))
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, not logged
        self._pending[key] = fut
        try:
            file_id = await asyncio.shield(fut)
        finally:
            if self._pending.get(key) is fut:
                del self._pending[key]
        self._ids[key] = file_id
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return file_id
