"""Streams that live as long as their login session: SSE follows and the chat WebSocket.

A stream opened with a session cookie takes a :class:`Ticket`; when the session ends — sign-out,
"sign out everywhere", a password change, the user disabled, expiry — the ticket's ``ended`` is
set and the stream closes. Ends made in this process are seen at once (``end`` / ``poke``); those
made elsewhere (another replica, the CLI) by one query for all watched sessions every
``interval`` seconds, never a query per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select

from chatgate.chat.accounts import token_hash
from chatgate.errors import DatabaseUnavailableError
from chatgate.storage import Database, User, UserSession
from chatgate.storage.base import utcnow

log = logging.getLogger(__name__)

_BATCH = 500  # session ids per query


class Ticket:
    __slots__ = ("_watch", "ended", "session")

    def __init__(self, session: str, watch: SessionWatch) -> None:
        self.session = session  # sha256 of the cookie's token, as stored
        self.ended = asyncio.Event()
        self._watch = watch

    def release(self) -> None:
        """The stream has closed: stop watching for it."""
        self._watch.release(self)


class SessionWatch:
    def __init__(self, db: Database, interval: float = 10.0) -> None:
        self.db = db
        self.interval = interval
        self._tickets: dict[str, set[Ticket]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def watch(self, token: str | None) -> Ticket | None:
        """A ticket for a stream opened with this session token (None: no session to follow,
        e.g. the implicit single user's)."""
        if not token:
            return None
        ticket = Ticket(token_hash(token), self)
        self._tickets.setdefault(ticket.session, set()).add(ticket)
        return ticket

    def release(self, ticket: Ticket) -> None:
        tickets = self._tickets.get(ticket.session)
        if tickets is not None:
            tickets.discard(ticket)
            if not tickets:
                del self._tickets[ticket.session]

    def end(self, token: str) -> None:
        """This session just ended here (sign-out): its streams close now."""
        self._end(token_hash(token))

    def poke(self) -> None:
        """Sessions may have ended (password, disable, sign-out everywhere): check now."""
        self._wake.set()

    def _end(self, session: str) -> None:
        for ticket in self._tickets.pop(session, ()):
            ticket.ended.set()

    async def check(self) -> None:
        """End the tickets whose session is gone, expired, or whose user is disabled."""
        watched = list(self._tickets)
        live: set[str] = set()
        for i in range(0, len(watched), _BATCH):
            batch = watched[i : i + _BATCH]
            query = (
                select(UserSession.id)
                .join(User, User.id == UserSession.user_id)
                .where(
                    UserSession.id.in_(batch),
                    UserSession.expires_at > utcnow(),
                    User.disabled_at.is_(None),
                )
            )
            async with self.db.session() as s:
                live.update(await s.scalars(query))
        for session in watched:
            if session not in live:
                self._end(session)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if not self._tickets:
                continue
            try:
                await self.check()
            except DatabaseUnavailableError:  # logged by the storage, once per outage
                pass  # streams keep going until it is back
            except Exception:
                log.warning("could not check live sessions", exc_info=True)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
