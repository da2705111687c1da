"""Where a file's bytes live: in the database (``files.storage: database``, the default) or on
disk under ``files.dir`` (``disk``).

The database is the default because it is the one thing every replica already shares: a file
uploaded through one replica is read, exported and deleted through any other with nothing more
to set up, and a file's row, bytes and chunks are deleted in one transaction. The bytes go in
parts of 256 KiB, written and read part by part, so neither an upload nor a download holds a
whole file in memory. ``disk`` keeps the database small; several replicas then need ``dir`` on
a shared volume (the README says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.storage import Database, FilePart

PART_BYTES = 256 * 1024
_PARTS_PER_WRITE = 8  # 2 MiB per executemany

_INSERT_PART = insert(FilePart)
_PARTS = select(FilePart.data).where(FilePart.file_id == bindparam("fid")).order_by(FilePart.seq)


class Blobs:
    """Both storages behind one face: ``put`` inside the transaction that inserts the file's
    row, ``read`` part by part, ``forget`` after the rows are deleted."""

    def __init__(self, db: Database, storage: str, directory: Path) -> None:
        self.db = db
        self.storage = storage
        self.dir = directory

    def spool_dir(self) -> Path:
        """Where uploads are received before they are stored (made on first use)."""
        spool = self.dir / "incoming"
        spool.mkdir(parents=True, exist_ok=True)
        return spool

    def _path(self, file_id: str) -> Path:
        return self.dir / file_id[-2:] / file_id

    async def put(self, conn: AsyncConnection, file_id: str, source: Path) -> None:
        """Store ``source`` (a received upload) as ``file_id``'s bytes: moved there on disk,
        copied part by part into the database (the caller removes it)."""
        if self.storage == "disk":
            target = self._path(file_id)
            await asyncio.to_thread(_move, source, target)
            return
        seq = 0
        with source.open("rb") as fh:
            while True:
                batch = []
                for _ in range(_PARTS_PER_WRITE):
                    data = await asyncio.to_thread(fh.read, PART_BYTES)
                    if not data:
                        break
                    batch.append({"file_id": file_id, "seq": seq, "data": data})
                    seq += 1
                if not batch:
                    break
                await conn.execute(_INSERT_PART, batch)

    async def read(self, file_id: str, storage: str) -> AsyncIterator[bytes]:
        if storage == "disk":
            with self._path(file_id).open("rb") as fh:
                while data := await asyncio.to_thread(fh.read, PART_BYTES):
                    yield data
            return
        async with self.db.engine.connect() as conn:
            result = await conn.stream(_PARTS, {"fid": file_id})
            async for (data,) in result:
                yield bytes(data)

    async def read_all(self, file_id: str, storage: str) -> bytes:
        return b"".join([part async for part in self.read(file_id, storage)])

    async def forget(self, files: list[tuple[str, str]]) -> None:
        """After the rows of ``files`` ((id, storage)) are deleted: their bytes on disk."""
        for file_id, storage in files:
            if storage == "disk":
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(self._path(file_id).unlink)

    async def delete_parts(self, conn: AsyncConnection, file_id: str) -> None:
        await conn.execute(delete(FilePart).where(FilePart.file_id == file_id))


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
