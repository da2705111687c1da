"""Files, their chunks and their attachments to messages in the database; every read that a
user's request makes is scoped to that user (another user's file is simply not found)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.errors import NotFoundError
from chatgate.files.blobs import Blobs
from chatgate.storage import (
    Database,
    FileChunk,
    Message,
    MessageFile,
    StoredFile,
)

Row = dict[str, Any]

FILE_FIELDS = (
    "id",
    "name",
    "mime",
    "size",
    "kind",
    "status",
    "pages",
    "error",
    "created_at",
)
LITE_FIELDS = ("id", "name", "mime", "kind", "size")
_COLS = [getattr(StoredFile, f) for f in FILE_FIELDS]
_INTERNAL = [StoredFile.storage, StoredFile.sha256]

_GET = select(*_COLS, *_INTERNAL).where(
    StoredFile.id == bindparam("fid"), StoredFile.user_id == bindparam("uid")
)
_LIST = (
    select(*_COLS)
    .where(StoredFile.user_id == bindparam("uid"))
    .order_by(StoredFile.created_at.desc(), StoredFile.id)
)
_USED = select(func.coalesce(func.sum(StoredFile.size), 0)).where(
    StoredFile.user_id == bindparam("uid")
)
_INSERT_CHUNK = insert(FileChunk)
_SET_VECTOR = (
    update(FileChunk)
    .where(FileChunk.file_id == bindparam("f"), FileChunk.n == bindparam("k"))
    .values(vector=bindparam("v"))
)


def file_not_found() -> NotFoundError:
    return NotFoundError("File not found.", code="file_not_found")


def public(row: Row) -> Row:
    return {k: row[k] for k in FILE_FIELDS}


def lite(row: Row) -> Row:
    return {k: row[k] for k in LITE_FIELDS}


async def _rows(conn: AsyncConnection, query: Any, params: Row | None = None) -> list[Row]:
    result = await conn.execute(query, params or {})
    keys = tuple(result.keys())
    return [dict(zip(keys, r, strict=True)) for r in result]


class FileStore:
    def __init__(self, db: Database, blobs: Blobs) -> None:
        self.db = db
        self.blobs = blobs

    # -- files -----------------------------------------------------------------------------------
    async def create(self, row: Row, source: Path) -> None:
        """Insert the file's row and store its bytes (taken over from ``source``), atomically."""
        async with self.db.engine.begin() as conn:
            await conn.execute(insert(StoredFile), row)
            await self.blobs.put(conn, row["id"], source)

    async def get(self, user_id: str, file_id: str) -> Row:
        async with self.db.engine.connect() as conn:
            rows = await _rows(conn, _GET, {"fid": file_id, "uid": user_id})
        if not rows:
            raise file_not_found()
        return rows[0]

    async def owned(self, user_id: str, file_ids: Sequence[str]) -> builtins.list[Row]:
        """The user's files among ``file_ids``, in that order; 404 for any other id."""
        if not file_ids:
            return []
        query = select(*_COLS, *_INTERNAL).where(
            StoredFile.id.in_(list(file_ids)), StoredFile.user_id == user_id
        )
        async with self.db.engine.connect() as conn:
            found = {r["id"]: r for r in await _rows(conn, query)}
        missing = [f for f in file_ids if f not in found]
        if missing:
            raise NotFoundError(f"File {missing[0]} not found.", code="file_not_found")
        return [found[f] for f in file_ids]

    async def list(self, user_id: str) -> builtins.list[Row]:
        async with self.db.engine.connect() as conn:
            return await _rows(conn, _LIST, {"uid": user_id})

    async def used(self, user_id: str) -> int:
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(_USED, {"uid": user_id})).scalar_one())

    async def delete(self, user_id: str, file_ids: Iterable[str]) -> builtins.list[str]:
        """Delete the user's files among ``file_ids`` (rows, parts, chunks, attachments: one
        transaction; bytes on disk after it); the ids deleted."""
        ids = list(file_ids)
        if not ids:
            return []
        owned = (StoredFile.id.in_(ids), StoredFile.user_id == user_id)
        async with self.db.engine.begin() as conn:
            gone = await _rows(conn, select(StoredFile.id, StoredFile.storage).where(*owned))
            await conn.execute(delete(StoredFile).where(*owned))
        await self.blobs.forget([(r["id"], r["storage"]) for r in gone])
        return [r["id"] for r in gone]

    async def set_status(self, file_id: str, values: Row) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(update(StoredFile).where(StoredFile.id == file_id).values(**values))

    async def pending(self) -> builtins.list[Row]:
        """Files still ``indexing`` (their replica may have stopped midway)."""
        query = select(*_COLS, *_INTERNAL, StoredFile.user_id).where(
            StoredFile.status == "indexing"
        )
        async with self.db.engine.connect() as conn:
            return await _rows(conn, query)

    # -- chunks ----------------------------------------------------------------------------------
    async def replace_chunks(self, file_id: str, chunks: Sequence[Row], values: Row) -> None:
        """The file's chunks (``n``, ``page``, ``text``, ``vector``) and its new status."""
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(FileChunk).where(FileChunk.file_id == file_id))
            for start in range(0, len(chunks), 500):
                batch = [{"file_id": file_id, **c} for c in chunks[start : start + 500]]
                await conn.execute(_INSERT_CHUNK, batch)
            await conn.execute(update(StoredFile).where(StoredFile.id == file_id).values(**values))

    async def unembedded(self, file_id: str, tag: bytes) -> builtins.list[tuple[int, str]]:
        """The file's chunks without a vector of the model tagged ``tag`` (none, or another
        model's)."""
        query = (
            select(FileChunk.n, FileChunk.text)
            .where(FileChunk.file_id == file_id, _not_embedded(tag))
            .order_by(FileChunk.n)
        )
        async with self.db.engine.connect() as conn:
            return [(r["n"], r["text"]) for r in await _rows(conn, query)]

    async def unembedded_files(self, tag: bytes) -> builtins.list[str]:
        query = select(FileChunk.file_id).where(_not_embedded(tag)).distinct()
        async with self.db.engine.connect() as conn:
            return [r["file_id"] for r in await _rows(conn, query)]

    async def set_vectors(self, file_id: str, vectors: Sequence[tuple[int, bytes]]) -> None:
        params = [{"f": file_id, "k": n, "v": v} for n, v in vectors]
        async with self.db.engine.begin() as conn:
            await conn.execute(_SET_VECTOR, params)

    async def chunks(self, file_ids: Sequence[str]) -> builtins.list[Row]:
        query = (
            select(FileChunk.file_id, FileChunk.n, FileChunk.page, FileChunk.text, FileChunk.vector)
            .where(FileChunk.file_id.in_(list(file_ids)))
            .order_by(FileChunk.file_id, FileChunk.n)
        )
        async with self.db.engine.connect() as conn:
            return await _rows(conn, query)

    async def chunk(self, user_id: str, file_id: str, n: int) -> Row:
        query = (
            select(StoredFile.name, FileChunk.page, FileChunk.text)
            .join(StoredFile, StoredFile.id == FileChunk.file_id)
            .where(FileChunk.file_id == file_id, FileChunk.n == n, StoredFile.user_id == user_id)
        )
        async with self.db.engine.connect() as conn:
            rows = await _rows(conn, query)
        if not rows:
            raise NotFoundError("Passage not found.", code="passage_not_found")
        return rows[0]

    # -- attachments -----------------------------------------------------------------------------
    @staticmethod
    def links(message_id: str, file_ids: Sequence[str]) -> builtins.list[Row]:
        return [{"message_id": message_id, "file_id": f, "position": i}
                for i, f in enumerate(file_ids)]  # fmt: skip

    async def attachments(self, message_ids: Sequence[str]) -> dict[str, builtins.list[Row]]:
        """Each message's attached files (id, name, mime, kind, size, status, storage)."""
        if not message_ids:
            return {}
        query = _attached().where(MessageFile.message_id.in_(list(message_ids)))
        return await self._by_message(query)

    async def conversation_attachments(self, cid: str) -> dict[str, builtins.list[Row]]:
        """Every message's attachments in one conversation (for its views and export)."""
        query = (
            _attached()
            .join(Message, Message.id == MessageFile.message_id)
            .where(Message.conversation_id == cid)
        )
        return await self._by_message(query)

    async def _by_message(self, query: Select[Any]) -> dict[str, builtins.list[Row]]:
        out: dict[str, builtins.list[Row]] = {}
        async with self.db.engine.connect() as conn:
            for row in await _rows(conn, query):
                out.setdefault(row.pop("message_id"), []).append(row)
        return out

    async def only_in(self, user_id: str, cid: str) -> builtins.list[str]:
        """The user's files attached to messages of conversation ``cid`` and of no other."""
        here = (
            select(MessageFile.file_id)
            .join(Message, Message.id == MessageFile.message_id)
            .where(Message.conversation_id == cid)
        )
        elsewhere = (
            select(MessageFile.file_id)
            .join(Message, Message.id == MessageFile.message_id)
            .where(Message.conversation_id != cid)
        )
        query = select(StoredFile.id).where(
            StoredFile.user_id == user_id,
            StoredFile.id.in_(here),
            StoredFile.id.not_in(elsewhere),
        )
        async with self.db.engine.connect() as conn:
            return [r["id"] for r in await _rows(conn, query)]

    async def attachments_status(self, file_ids: Sequence[str]) -> dict[str, str]:
        query = select(StoredFile.id, StoredFile.status).where(StoredFile.id.in_(list(file_ids)))
        async with self.db.engine.connect() as conn:
            return {r["id"]: r["status"] for r in await _rows(conn, query)}


def _not_embedded(tag: bytes) -> ColumnElement[bool]:
    """A chunk without a vector, or with one another model made (embed.pack: the tag first;
    ``substr`` takes bytes of a BLOB in SQLite and of a ``bytea`` in PostgreSQL)."""
    return or_(
        FileChunk.vector.is_(None),
        func.substr(FileChunk.vector, 1, len(tag)) != literal(tag, LargeBinary()),
    )


def _attached() -> Select[Any]:
    """Attached files with the message each hangs on, in the order they were attached."""
    return (
        select(MessageFile.message_id, *_COLS, StoredFile.storage)
        .join(StoredFile, StoredFile.id == MessageFile.file_id)
        .order_by(MessageFile.message_id, MessageFile.position)
    )
