"""A short attack run: every attack of ``robustness.attacks`` against the default setup and a
shared deployment, in-process (RSS figures come from the long run, whose servers are processes
of their own: ``python -m robustness.attacks``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from robustness.attacks import ATTACKS, PASSWORD, Target, run_attacks, server_config, table

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.config import Config
from chatgate.storage import Database
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread


async def test_attack_run(fake: FakeUpstream, tmp_path: Path) -> None:
    targets: dict[str, Target] = {}
    with contextlib.ExitStack() as running:
        for kind in ("open", "locked"):
            (tmp_path / kind).mkdir()
            config = Config.model_validate(server_config(kind, fake.base_url, tmp_path / kind))
            url = running.enter_context(ServerThread(create_app(config)))

            async def make(name: str, admin: bool, db_url: str = config.database.url) -> None:
                async with Database(db_url) as db:
                    await Accounts(db, "off", True).create_user(name, PASSWORD, admin)

            targets[kind] = Target(url, fake.base_url, config.server.max_body_bytes, make)
        rows = await run_attacks(targets)
    report = table(rows)
    print(report)
    assert len(rows) == len(ATTACKS) >= 25
    assert all(r.outcome.ok for r in rows), report
