"""``/api/ws``: the chat's WebSocket, carrying the same generation events as the SSE endpoint.

Client → server (JSON text frames):
    {"type": "subscribe", "generation_id": ID, "after": SEQ}   events with seq > SEQ (default 0)
    {"type": "unsubscribe", "generation_id": ID}
    {"type": "send", "conversation_id": ID, "content": ..., "parent_id"|"edit_of"|
     "regenerate_of": ..., "attachments": [FILE_ID, ...]}       start a generation, subscribed
    {"type": "stop", "generation_id": ID}
    {"type": "watch"} / {"type": "unwatch"}                    your conversations' events
    {"type": "ping"}
Server → client: each event as its own frame (the SSE ``data``: ``type``, ``seq``,
``generation_id``, ...), plus ``started``, ``stopped``, ``pong`` and ``error`` replies; while
watching, the user events of ``chat/events.py`` (``conversation``, ``generation`` started,
``resync``) as they happen, as ``GET /api/events`` sends them.

The handshake is refused (403) for a foreign ``Origin`` (cross-site WebSocket hijacking) or when
nobody is signed in. When the session ends (sign-out, signed out everywhere, password changed,
user disabled) the socket gets a ``session_ended`` error and is closed (1008).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from chatgate.api.auth import origin_allowed, resolve_account, service_of, session_ticket
from chatgate.chat.accounts import Account
from chatgate.chat.events import Listener
from chatgate.chat.service import ChatService, Send
from chatgate.chat.sessions import Ticket
from chatgate.errors import AuthenticationError, GatewayError, InvalidRequestError

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class Connection:
    """One client's socket: its subscriptions and a lock so frames never interleave."""

    def __init__(self, ws: WebSocket, chat: ChatService, account: Account) -> None:
        self.ws = ws
        self.chat = chat
        self.account = account
        self.subs: dict[str, asyncio.Task[None]] = {}
        self.watching: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        await self.send_raw([orjson.dumps(payload)])

    async def send_raw(self, frames: list[bytes]) -> None:
        async with self.lock:
            for frame in frames:
                await self.ws.send_text(frame.decode())

    async def handle(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            raise InvalidRequestError("Expected a JSON object.")
        kind = msg.get("type")
        gid = msg.get("generation_id")
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "subscribe" and isinstance(gid, str):
            after = msg.get("after", 0)
            await self.subscribe(gid, after if isinstance(after, int) else 0)
        elif kind == "unsubscribe" and isinstance(gid, str):
            task = self.subs.pop(gid, None)
            if task is not None:
                task.cancel()
        elif kind == "stop" and isinstance(gid, str):
            await self.send({"type": "stopped", **await self.chat.stop(self.account, gid)})
        elif kind == "send" and isinstance(msg.get("conversation_id"), str):
            started = await self.chat.send(self.account, msg["conversation_id"], _send(msg))
            await self.send({"type": "started", **started})
            await self.subscribe(started["generation_id"], 0)
        elif kind == "watch":
            if self.watching is None:
                listener = self.chat.events.listen(self.account.id)  # hears from now on
                self.watching = asyncio.get_running_loop().create_task(self._watch(listener))
            await self.send({"type": "watching"})
        elif kind == "unwatch":
            if self.watching is not None:
                self.watching.cancel()
                self.watching = None
        else:
            raise InvalidRequestError(f"Unknown or incomplete message of type {kind!r}.")

    async def subscribe(self, gid: str, after: int) -> None:
        source = await self.chat.find(self.account, gid)
        old = self.subs.pop(gid, None)
        if old is not None:
            old.cancel()
        self.subs[gid] = asyncio.get_running_loop().create_task(self._forward(gid, source, after))

    async def _forward(self, gid: str, source: Any, after: int) -> None:
        try:
            async for batch in self.chat.follow(source, after):
                if batch:
                    await self.send_raw([e.data for e in batch])
        finally:
            if self.subs.get(gid) is asyncio.current_task():
                del self.subs[gid]

    async def _watch(self, listener: Listener) -> None:
        try:
            async for event in listener:
                if event:
                    await self.send(event)
        finally:
            listener.close()

    async def close(self) -> None:
        tasks = list(self.subs.values())
        if self.watching is not None:
            tasks.append(self.watching)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _send(msg: dict[str, Any]) -> Send:
    def text(key: str) -> str | None:
        value = msg.get(key)
        return value if isinstance(value, str) else None

    return Send(
        content=text("content"),
        parent_id=text("parent_id"),
        parent_given="parent_id" in msg,
        edit_of=text("edit_of"),
        regenerate_of=text("regenerate_of"),
        model=text("model"),
        attachments=_ids(msg.get("attachments")),
        models=_ids(msg.get("models")) or (),
    )


def _ids(value: Any) -> tuple[str, ...] | None:
    """A list of ids (attached files, side-by-side models); None when the field is absent or
    not a list of strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value[:11])  # one too many still reaches the service's own 400


def ws_router() -> APIRouter:
    router = APIRouter()

    @router.websocket("/api/ws")
    async def websocket(ws: WebSocket) -> None:
        try:
            chat = service_of(ws.app)
        except GatewayError:
            await ws.close(TRY_AGAIN_LATER)
            return
        account = await resolve_account(chat, ws)
        if not origin_allowed(ws.headers) or account is None:
            await ws.close(POLICY_VIOLATION)
            return
        await ws.accept()
        conn = Connection(ws, chat, account)
        ticket = session_ticket(chat, ws, account)
        ender = (
            asyncio.get_running_loop().create_task(_end_with_session(conn, ticket))
            if ticket is not None
            else None
        )
        try:
            while True:
                raw = await ws.receive_text()
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    await conn.send({"type": "error", "error": {"message": "Invalid JSON."}})
                    continue
                try:
                    await conn.handle(msg)
                except GatewayError as exc:
                    reply: dict[str, Any] = {"type": "error", **exc.to_body()}
                    if isinstance(msg, dict):
                        reply["request"] = msg.get("type")
                        reply["generation_id"] = msg.get("generation_id")
                    await conn.send(reply)
        except WebSocketDisconnect:
            pass
        finally:
            if ender is not None:
                ender.cancel()
            if ticket is not None:
                ticket.release()
            await conn.close()

    return router


async def _end_with_session(conn: Connection, ticket: Ticket) -> None:
    """Once the session ends (sign-out, disabled, …): stop sending, say why, close."""
    await ticket.ended.wait()
    await conn.close()
    with contextlib.suppress(Exception):  # the client may be gone already
        error = AuthenticationError("Your session has ended; sign in again.", code="session_ended")
        await conn.send({"type": "error", **error.to_body()})
        await conn.ws.close(POLICY_VIOLATION, "session ended")
