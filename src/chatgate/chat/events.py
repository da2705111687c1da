"""What happens to a user's conversations, pushed to every tab that user has open.

Events are small JSON objects — ``{"type": "conversation", "action": "created" | "updated" |
"deleted", "conversation_id": ...}`` and ``{"type": "generation", "action": "started",
"conversation_id", "generation_id", "message_id"}`` — that tell a client what to re-read or
follow; they never carry message text. A tab open on a chat sees an answer started in another
tab (or by another client) and follows it live; the list stays current everywhere.

Listeners are per process. With Redis every replica publishes on one channel and delivers what
it hears to its own listeners, so a tab connected to one replica sees what another did. A
listener that falls behind gets a ``resync`` event (re-read everything) instead of a backlog.
While Redis is away (see :mod:`chatgate.redislink`: a failed or hung call costs its short
timeout once), events are delivered on this replica only, at no cost, until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson

from chatgate.redislink import FAILURES, RedisLink

CHANNEL = "chatgate:user-events"
QUEUE_SIZE = 256
RESYNC: dict[str, Any] = {"type": "resync"}


def conversation_event(action: str, conversation_id: str) -> dict[str, Any]:
    return {"type": "conversation", "action": action, "conversation_id": conversation_id}


def started_event(started: dict[str, Any]) -> dict[str, Any]:
    """From what ``ChatService.send`` returns."""
    return {
        "type": "generation",
        "action": "started",
        "conversation_id": started["conversation_id"],
        "generation_id": started["generation_id"],
        "message_id": started["message_id"],
    }


class UserEvents:
    def __init__(self, link: RedisLink | None = None) -> None:
        self._listeners: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._link = link
        self._task: asyncio.Task[None] | None = None
        self.relaying = asyncio.Event()  # set once the Redis channel is subscribed

    def start(self) -> None:
        if self._link is not None:
            self._task = asyncio.get_running_loop().create_task(self._relay(self._link))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, user_id: str, event: dict[str, Any]) -> None:
        link = self._link
        if link is None or link.down:
            self._deliver(user_id, event)
            return
        relayed = self.relaying.is_set()  # the relay delivers it here too, like everywhere else
        try:
            await link.client.publish(CHANNEL, orjson.dumps({"u": user_id, "e": event}))
        except FAILURES as exc:
            link.failed(exc, "sharing a chat event")
            relayed = False
        if not relayed:
            self._deliver(user_id, event)

    def _deliver(self, user_id: str, event: dict[str, Any]) -> None:
        for queue in self._listeners.get(user_id, ()):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # too far behind: tell it to re-read instead
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    async def _relay(self, link: RedisLink) -> None:
        while True:
            try:
                async with link.blocking.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.relaying.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = orjson.loads(message["data"])
                        self._deliver(data["u"], data["e"])
            except FAILURES as exc:
                self.relaying.clear()
                link.failed(exc, "listening for chat events")  # logged once per outage
                await asyncio.sleep(link.retry_after)

    def listen(self, user_id: str, keepalive: float = 15.0) -> Listener:
        """Hear the user's events from now on (``close`` the listener when done)."""
        listener = Listener(self, user_id, keepalive)
        self._listeners.setdefault(user_id, set()).add(listener.queue)
        return listener

    def _forget(self, user_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        listeners = self._listeners.get(user_id)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self._listeners[user_id]

    def listening(self, user_id: str) -> int:
        return len(self._listeners.get(user_id, ()))


class Listener:
    """The user's events as they happen; ``{}`` after ``keepalive`` seconds of silence."""

    def __init__(self, hub: UserEvents, user_id: str, keepalive: float) -> None:
        self.hub = hub
        self.user_id = user_id
        self.keepalive = keepalive
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.queue.get(), self.keepalive)
        except TimeoutError:
            return {}

    def close(self) -> None:
        self.hub._forget(self.user_id, self.queue)
