"""``EventStream``, the web chat's SSE response: how each of its ends looks on the wire, and that
the task reading the job for the stream is cancelled (the body's generator closed) at each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from chatgate.api.eventstream import SESSION_ENDED, EventStream
from chatgate.chat.sessions import SessionWatch
from chatgate.drain import Drain

TOKEN = "a-session-token"


class Wire:
    """The ASGI side: what the response sent, and a client that leaves on ``leave``."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]

    def ended(self) -> bool:
        return any(
            m["type"] == "http.response.body" and not m.get("more_body", False) for m in self.sent
        )


class Job:
    """A body that reads a job that never ends, and says whether it is still being read."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.closed = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            self.reading.set()
            await asyncio.Event().wait()
            yield b"never"
        finally:
            self.closed = True


def sessions() -> SessionWatch:
    return SessionWatch(None, 3600)  # type: ignore[arg-type]  # ends here need no database


async def start(job: Job, wire: Wire, **kwargs: Any) -> asyncio.Task[None]:
    args = {"drain": Drain(), "last": b"data: cut\n\n", "ticket": None, **kwargs}
    stream = EventStream(job.body(), **args)
    task = asyncio.get_running_loop().create_task(stream({"type": "http"}, wire.receive, wire.send))
    async with asyncio.timeout(5):
        await job.reading.wait()
    return task


async def test_session_end_cancels_the_reading_task_and_closes_with_session_ended() -> None:
    watch, job, wire = sessions(), Job(), Wire()
    ticket = watch.watch(TOKEN)
    task = await start(job, wire, ticket=ticket)
    watch.end(TOKEN)  # signed out
    async with asyncio.timeout(5):
        await task  # returns: nothing is left reading for a user who is gone
    assert job.closed
    assert wire.bodies()[-1] == SESSION_ENDED and wire.ended()
    assert not task.cancelled() and task.cancelling() == 0
    assert not watch._tickets  # released


async def test_drain_deadline_ends_with_the_doors_event_and_a_clean_end() -> None:
    watch, job, wire, drain = sessions(), Job(), Wire(), Drain()
    task = await start(job, wire, drain=drain, ticket=watch.watch(TOKEN))
    drain.begin(0.0)
    async with asyncio.timeout(5):
        await task
    assert job.closed
    assert wire.bodies()[-1] == b"data: cut\n\n" and wire.ended()
    assert not watch._tickets


async def test_a_client_that_leaves_gets_nothing_more_and_the_ticket_is_released() -> None:
    watch, job, wire = sessions(), Job(), Wire()
    task = await start(job, wire, ticket=watch.watch(TOKEN))
    wire.gone.set()
    async with asyncio.timeout(5):
        await task
    assert job.closed
    assert wire.bodies() == [b"retry: 1000\n\n"] and not wire.ended()
    assert not watch._tickets


async def test_a_body_that_ends_ends_the_response_plainly() -> None:
    wire = Wire()

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"

    stream = EventStream(body(), Drain(), b"data: cut\n\n", None)
    await stream({"type": "http"}, wire.receive, wire.send)
    assert wire.bodies() == [b"data: 1\n\n", b""] and wire.ended()


async def test_someone_elses_cancellation_is_not_swallowed_by_a_session_end() -> None:
    watch, job, wire = sessions(), Job(), Wire()
    task = await start(job, wire, ticket=watch.watch(TOKEN))
    task.cancel()  # the server cancels the request (not ours to swallow)...
    watch.end(TOKEN)  # ...while the session ends too
    async with asyncio.timeout(5):
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert job.closed and not watch._tickets
