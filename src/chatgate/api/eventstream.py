"""The web chat's SSE responses (a generation's events, the user's events) and how they end.

An :class:`EventStream` is iterated in the request's own task, as the ``/v1`` door streams, so
every way a stream ends lands in that task, where it can be handled:

- the client leaves: ``DisconnectWatch`` cancels the task at once, nothing more is sent;
- the server's drain deadline (``chatgate.drain``): the door's error event (``last``) and a
  clean end of the body instead of a cut;
- the login session ends (sign-out, sign out everywhere, a password change, the user disabled:
  ``chat.sessions``): the task reading the job for this stream is cancelled — a stream must not
  keep serving, nor keep reading for, a user who is gone — and the body closes with one
  ``session_ended`` error event.

In each case the body's generator is closed in this task (its ``finally`` blocks run now, not
at garbage collection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from fastapi.responses import StreamingResponse

from chatgate.api.asgi import DisconnectWatch, Receive, Scope, Send
from chatgate.chat.sessions import Ticket
from chatgate.drain import Drain
from chatgate.errors import AuthenticationError

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

SESSION_ENDED = b"data: %s\n\n" % orjson.dumps(
    {
        "type": "error",
        **AuthenticationError(
            "Your session has ended; sign in again.", code="session_ended"
        ).to_body(),
    }
)


class SessionEnd:
    """``async with SessionEnd(ticket) as session:`` cancels the current task when the ticket's
    session ends and swallows that cancellation (unless someone else cancelled too);
    ``session.ended`` says afterwards that it did. A ``None`` ticket never ends."""

    __slots__ = ("_task", "_ticket", "_waiter", "ended")

    def __init__(self, ticket: Ticket | None) -> None:
        self._ticket = ticket
        self._task: asyncio.Task[object] | None = None
        self._waiter: asyncio.Task[None] | None = None
        self.ended = False

    async def _wait(self, ticket: Ticket) -> None:
        await ticket.ended.wait()
        if self._task is not None:
            self.ended = True
            self._task.cancel("session ended")

    async def __aenter__(self) -> SessionEnd:
        if self._ticket is not None:
            self._task = asyncio.current_task()
            self._waiter = asyncio.get_running_loop().create_task(self._wait(self._ticket))
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> bool:
        task, self._task = self._task, None  # a late wake-up cancels nothing
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        if self.ended and exc_type is asyncio.CancelledError and task is not None:
            return task.uncancel() == 0  # ours alone: swallow it
        return False


class EventStream(StreamingResponse):
    """An SSE response that ends cleanly at the drain deadline (with ``last``) and when the
    login session behind ``ticket`` ends (with ``session_ended``); see the module's doc."""

    def __init__(
        self, content: AsyncIterator[bytes], drain: Drain, last: bytes, ticket: Ticket | None
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self.drain = drain
        self.last = last
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            try:
                async with (
                    DisconnectWatch(receive) as client,
                    self.drain.watch() as deadline,
                    SessionEnd(self.ticket) as session,
                ):
                    async for chunk in self.body_iterator:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            if client.gone:
                return
            if deadline.cut:
                last = self.last
            elif session.ended:
                last = SESSION_ENDED
            else:
                last = b""
            await send({"type": "http.response.body", "body": last})
        finally:
            if self.ticket is not None:
                self.ticket.release()
