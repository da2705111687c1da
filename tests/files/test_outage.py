"""A database outage while a document is being indexed and embedded (PostgreSQL cut through a
TCP proxy): the work waits for the database and finishes, instead of leaving the file marked
failed (or stuck "indexing") for an outage it outlives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from robustness.outage import TcpProxy

from chatgate.chat.accounts import Accounts
from chatgate.config import Config
from chatgate.files.service import FileService
from chatgate.gateway.router import build_router
from chatgate.providers import usem3
from chatgate.providers.registry import default_registry
from chatgate.storage import Database
from tests.storage.conftest import pg_server, proxied_db

__all__ = ["pg_server", "proxied_db"]

pytestmark = pytest.mark.skipif(not usem3.available(), reason="the bundled model is missing")

TEXT = ("The pump delivers 42 cubic metres per hour. " * 40).encode()


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_indexing_waits_out_a_database_outage(
    proxied_db: tuple[TcpProxy, Database], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, db = proxied_db
    caplog.set_level(logging.WARNING, logger="chatgate.files.service")
    config = Config.model_validate({
        "discover_env": False, "local_model": False,
        "providers": {"fast": {"type": "usem3"}},
        "models": {"fast": {"provider": "fast", "model": usem3.BUNDLED_FAST_EMBEDDING_MODEL}},
        "files": {"dir": str(tmp_path / "files"), "embedding_model": "fast",
                  "chunk_tokens": 32, "chunk_overlap": 0},
    })  # fmt: skip
    provider = default_registry().build("fast", config.providers["fast"])
    events: list[dict[str, Any]] = []

    async def publish(_user: str, event: dict[str, Any]) -> None:
        events.append(event)

    try:
        router = await build_router({"fast": provider}, config.providers, config.models)
        files = FileService(config.files, db, router, publish)
        uid = (await Accounts(db, "off", True).create_user("ann", "ann-password-1")).id
        made = await files.upload(uid, "a.txt", "text/plain", None, _pieces(TEXT))
        proxy.cut()  # before the indexing task has read a byte
        await asyncio.sleep(1.5)
        assert made["status"] != "error" and not events  # nothing settled meanwhile
        proxy.restore()
        async with asyncio.timeout(30):
            await files.wait_indexed()
        row = await files.store.get(uid, made["id"])
        assert row["status"] == "ready", row
        assert events[-1]["file"]["status"] == "ready"
        tag = files.embedder.tag()
        assert tag is not None and await files.store.unembedded(made["id"], tag) == []
        await files.close()
    finally:
        await provider.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "chatgate.files.service"]
    assert any("waits for the database" in m for m in messages), messages
    assert any("the database is back" in m for m in messages), messages
    assert not any(r.exc_info for r in caplog.records if r.name == "chatgate.files.service")
