"""An SSE response that ends with its login session (``chat.sessions``): a stream must not keep
serving a user who signed out, was signed out everywhere or was disabled."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from chatgate.chat.sessions import Ticket
from chatgate.errors import AuthenticationError

SESSION_ENDED = b"data: %s\n\n" % orjson.dumps(
    {
        "type": "error",
        **AuthenticationError(
            "Your session has ended; sign in again.", code="session_ended"
        ).to_body(),
    }
)


class SessionStream(StreamingResponse):
    """``StreamingResponse`` that, once ``ticket`` ends, stops the body where it is and closes
    the response with one ``session_ended`` error event."""

    def __init__(self, content: Any, ticket: Ticket | None, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.ticket is not None:
                self.ticket.release()

    async def stream_response(self, send: Send) -> None:
        ticket = self.ticket
        if ticket is None:
            await super().stream_response(send)
            return
        state = {"started": False, "finished": False}

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif not message.get("more_body", False):
                state["finished"] = True
            await send(message)

        async with anyio.create_task_group() as group:

            async def end_with_session() -> None:
                await ticket.ended.wait()
                group.cancel_scope.cancel()

            group.start_soon(end_with_session)
            await super().stream_response(tracked)
            group.cancel_scope.cancel()
        if state["finished"]:
            return
        if not state["started"]:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": SESSION_ENDED, "more_body": False})
