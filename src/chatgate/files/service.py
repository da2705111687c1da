"""FileService: uploads streamed to storage under their limits, the user's files, and the
background indexing of documents (extract → chunk → embed → store), announced to the user's
tabs as ``{"type": "file", "file": File}`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from chatgate.errors import DatabaseUnavailableError, InvalidRequestError, PayloadTooLargeError
from chatgate.files.blobs import Blobs
from chatgate.files.chunking import split
from chatgate.files.config import FilesConfig
from chatgate.files.embed import Embedder, pack
from chatgate.files.extract import ExtractError, extract
from chatgate.files.kinds import check_start, classify
from chatgate.files.retrieval import LEXICAL_WEIGHT, Index
from chatgate.files.store import FileStore, Row, public
from chatgate.gateway.router import Router
from chatgate.storage import Database
from chatgate.storage.base import utcnow

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
T = TypeVar("T")
_HEAD = 16  # bytes the type check looks at
EMBED_BATCH = 32  # chunks embedded (and stored) at a time
RETRY_MIN, RETRY_MAX = 0.5, 10.0  # seconds between tries of work the database refused


def new_file_id() -> str:
    return "file_" + secrets.token_urlsafe(18)  # 24 characters, 144 random bits


def clean_name(name: str) -> str:
    """A file name to store and show: its last path part, without control characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if not name or name in (".", ".."):
        raise InvalidRequestError("`name` must name the file.", param="name")
    return name[:255]


class FileService:
    def __init__(self, config: FilesConfig, db: Database, router: Router, publish: Publish) -> None:
        self.config = config
        self.blobs = Blobs(db, config.storage, config.dir)
        self.store = FileStore(db, self.blobs)
        self.embedder = Embedder(router, config.embedding_model)
        self.index = Index(
            self.store.chunks, config.cache_bytes, self.embedder.tag, self._embed_again
        )
        self.publish = publish
        self._tasks: set[asyncio.Task[None]] = set()
        self._embedding: set[str] = set()  # files being embedded by this process

    async def start(self) -> None:
        """Index again what a stopped process left half done (any replica may: indexing a
        file twice writes the same chunks)."""
        for row in await self.store.pending():
            self._index_later(row["user_id"], row)
        tag = self.embedder.tag()
        if tag is not None:  # chunks never embedded, or by another model than today's
            for file_id in await self.store.unembedded_files(tag):
                self._later(self._embed_logged(file_id))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- upload ----------------------------------------------------------------------------------
    async def upload(
        self,
        user_id: str,
        name: str,
        content_type: str,
        declared: int | None,
        body: AsyncIterator[bytes],
    ) -> Row:
        """Receive ``body`` into storage, counting as it arrives: 413 ``file_too_large`` past
        the type's limit, 413 ``quota_exceeded`` past what the user has left — before a byte
        more than that is read, so memory stays bounded whatever the client sends."""
        name = clean_name(name)
        ftype = classify(content_type, name)
        limit = self.config.max_image_bytes if ftype.kind == "image" else self.config.max_bytes
        left = self.config.quota_bytes - await self.store.used(user_id)
        if declared is not None:
            _check_size(declared, limit, left)
        spool = self.blobs.spool_dir() / f"{new_file_id()}.part"
        digest, size, head = hashlib.sha256(), 0, b""
        try:
            with spool.open("wb") as out:
                async for data in body:
                    size += len(data)
                    _check_size(size, limit, left)
                    if len(head) < _HEAD:
                        head += data[:_HEAD]
                        if len(head) >= _HEAD:
                            check_start(ftype, head)
                    digest.update(data)
                    out.write(data)  # a socket read's worth: into the page cache, not to disk
            if size == 0:
                raise InvalidRequestError("The file is empty.", param="body")
            check_start(ftype, head)
            row = {
                "id": new_file_id(),
                "user_id": user_id,
                "name": name,
                "mime": ftype.mime,
                "kind": ftype.kind,
                "size": size,
                "sha256": digest.hexdigest(),
                "storage": self.config.storage,
                "status": "indexing" if ftype.kind == "document" else "ready",
                "pages": None,
                "error": None,
                "created_at": utcnow(),
            }
            await self.store.create(row, spool)
        finally:
            spool.unlink(missing_ok=True)
        # Uploads racing each other may each have fitted alone: the later one gives way.
        if await self.store.used(user_id) > self.config.quota_bytes:
            await self.store.delete(user_id, [str(row["id"])])
            raise _quota(left)
        if row["status"] == "indexing":
            self._index_later(user_id, row)
        return public(row)

    # -- the user's files ------------------------------------------------------------------------
    async def listing(self, user_id: str) -> dict[str, Any]:
        files = await self.store.list(user_id)
        used = await self.store.used(user_id)
        return {"files": files, "used": used, "quota": self.config.quota_bytes}

    async def delete(self, user_id: str, file_ids: list[str]) -> list[str]:
        gone = await self.store.delete(user_id, file_ids)
        for fid in gone:
            self.index.forget(fid)
        return gone

    async def content(self, user_id: str, file_id: str) -> tuple[Row, AsyncIterator[bytes]]:
        row = await self.store.get(user_id, file_id)
        return row, self.blobs.read(row["id"], row["storage"])

    async def passage(self, user_id: str, file_id: str, n: int) -> Row:
        found = await self.store.chunk(user_id, file_id, n)
        return {"file_id": file_id, "name": found["name"], "page": found["page"], "n": n,
                "text": found["text"]}  # fmt: skip

    def lexical_weight(self) -> float:
        """The words' share in a search's score: ``files.lexical_weight`` if set, else the
        embedding model's own (retrieval.LEXICAL_WEIGHT)."""
        if self.config.lexical_weight is not None:
            return self.config.lexical_weight
        found = self.embedder.lexical_weight()
        return LEXICAL_WEIGHT if found is None else found

    # -- indexing --------------------------------------------------------------------------------
    def _index_later(self, user_id: str, row: Row) -> None:
        self._later(self._index(user_id, row))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _through_outage(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``, tried again with backoff while the database is away (indexing and
        embedding are idempotent), so a file is not marked failed for an outage it outlives;
        one line when it begins to wait, one when it goes on."""
        delay = RETRY_MIN
        waited = False
        while True:
            try:
                done = await work()
            except DatabaseUnavailableError:
                if not waited:
                    waited = True
                    log.warning("%s waits for the database", what)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if waited:
                log.warning("%s goes on: the database is back", what)
            return done

    async def _index(self, user_id: str, row: Row) -> None:
        values: Row
        try:
            values = await self._through_outage(
                f"indexing {row['id']}", lambda: self.index_file(row)
            )
        except asyncio.CancelledError:
            raise
        except ExtractError as exc:
            values = {"status": "error", "error": str(exc)[:500]}
            await self.store.set_status(row["id"], values)
        except Exception as exc:
            log.exception("indexing %s failed", row["id"])
            values = {"status": "error", "error": f"indexing failed: {type(exc).__name__}"}
            with contextlib.suppress(Exception):
                await self.store.set_status(row["id"], values)
        await self.publish(user_id, {"type": "file", "file": public({**row, **values})})
        if values["status"] == "ready":
            await self._embed_logged(row["id"])

    async def index_file(self, row: Row) -> Row:
        """Extract, chunk and store one document: searchable from then on (by its words);
        ``embed_file`` adds the vectors after. The file's new values."""
        data = await self.blobs.read_all(row["id"], row["storage"])
        pages = await asyncio.to_thread(extract, data, row["mime"])
        del data
        chunks = await asyncio.to_thread(
            split, pages, self.config.chunk_tokens, self.config.chunk_overlap
        )
        rows = [{"n": n, "page": c.page, "text": c.text, "vector": None}
                for n, c in enumerate(chunks)]  # fmt: skip
        has_pages = any(p.number is not None for p in pages)
        values: Row = {"status": "ready", "error": None, "pages": len(pages) if has_pages else None}
        await self.store.replace_chunks(row["id"], rows, values)
        self.index.forget(row["id"])
        return values

    async def embed_file(self, file_id: str) -> None:
        """Embed the file's chunks that have no vector of today's model yet, a batch at a time
        (each batch stored at once: a process that stops midway leaves the rest for the next
        start)."""
        tag = self.embedder.tag()
        if tag is None:
            return
        todo = await self.store.unembedded(file_id, tag)
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            found = await self.embedder.passages([text for _, text in batch])
            if found is None:
                return
            made_by, vectors = found
            await self.store.set_vectors(
                file_id, [(n, pack(made_by, vectors[i])) for i, (n, _) in enumerate(batch)]
            )
        self.index.forget(file_id)

    def _embed_again(self, file_id: str) -> None:
        """A search met the file with another model's vectors (``files.embedding_model``
        changed since): embed it anew, once at a time per process."""
        if file_id not in self._embedding:
            self._embedding.add(file_id)
            self._later(self._embed_logged(file_id))

    async def _embed_logged(self, file_id: str) -> None:
        try:
            await self._through_outage(f"embedding {file_id}", lambda: self.embed_file(file_id))
        except asyncio.CancelledError:
            raise
        except Exception:  # lexical retrieval still works; the next start tries again
            log.exception("embedding %s failed", file_id)
        finally:
            self._embedding.discard(file_id)

    async def wait_indexed(self) -> None:
        """Until the indexing running now is done (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _quota(left: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"This file does not fit in your storage quota ({max(left, 0)} bytes left): delete "
        "some files first.",
        code="quota_exceeded",
    )


def _check_size(size: int, limit: int, left: int) -> None:
    if size > limit:
        raise PayloadTooLargeError(
            f"The file is larger than the limit of {limit} bytes.", code="file_too_large"
        )
    if size > left:
        raise _quota(left)
