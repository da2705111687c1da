"""Sessions ended by another process (``chatgate users sign-out``, another replica) close the
streams of this one within ``auth.session_check_seconds``."""

from __future__ import annotations

import websockets

from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.api.test_sessions import closed_with_session_ended, cookie, signed_in, ws_url
from tests.chat.conftest import ChatServer, chat_server, pg_server

__all__ = ["chat_server", "pg_server"]

GATEWAY_CONFIG = {"auth": {"session_check_seconds": 0.5}}


async def test_sessions_ended_in_another_process_close_streams_too(
    chat_server: ChatServer,
) -> None:
    """``chatgate users sign-out`` (another process) reaches open streams within
    auth.session_check_seconds."""
    name, client = await signed_in(chat_server)
    async with websockets.connect(ws_url(chat_server), additional_headers=cookie(client)) as ws:
        async with Database(chat_server.db_url) as db:
            accounts = Accounts(db, "off", True)
            found = await accounts.by_name(name)
            assert found is not None and await accounts.end_sessions(found.id) == 1
        await closed_with_session_ended(ws)
    await client.aclose()
