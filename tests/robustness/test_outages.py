"""A short outage run: PostgreSQL cut mid-answer and under every door, Redis stopped and frozen,
a never-answering upstream, SIGTERM with streams past the drain deadline; each cell as the
long run (``python -m robustness.outages``) judges it.

PostgreSQL: a throwaway database behind a TCP proxy this test cuts (never the shared server
itself); Redis: a private ``redis-server``; the drain cell runs ``chatgate serve`` of its own.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from robustness.outage import ProxySwitch, RedisServer, TcpProxy
from robustness.outages import (
    Target,
    drain_deadline,
    outage_yaml,
    prepare,
    run_outages,
    sign_in,
    table,
)

from chatgate.app import create_app
from chatgate.config import Config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread
from tests.storage.conftest import PgServer, pg_address, pg_server, require_pg, through

__all__ = ["pg_server"]


async def test_outage_matrix(fake: FakeUpstream, pg_server: PgServer | str, tmp_path: Path) -> None:
    server = require_pg(pg_server)
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    direct = await server.create_database()
    proxy = TcpProxy(*pg_address(server)).start()
    redis = RedisServer().start()
    thread = ServerThread(
        create_app(
            Config.model_validate(
                outage_yaml(fake.base_url, tmp_path, through(proxy.port, direct), redis.url)
            )
        )
    )
    try:
        url = await asyncio.to_thread(thread.start)
        secret, name = await prepare(direct)
        web = await sign_in(url, name)
        target = Target(url, fake.base_url, secret, ProxySwitch(proxy), redis, web, 3.0)
        target.drain = lambda: drain_deadline(tmp_path / "drain", fake.base_url, streams=1)
        try:
            cells = await run_outages(target, repeats=1)
        finally:
            await web.aclose()
    finally:
        await asyncio.to_thread(thread.stop)
        redis.stop()
        proxy.stop()
        await server.drop_database(direct)
    report = table(cells)
    print(report)
    assert len(cells) == 6
    assert all(c.ok for c in cells), report
