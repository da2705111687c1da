"""Where ``chatgate chat`` gets its answers: a chatgate over HTTP, or the gateway in-process."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from chatgate.cli.common import resolve_config
from chatgate.errors import GatewayError
from chatgate.protocol.sse import SSEDecoder
from chatgate.providers.http1 import HTTP1Pool, origin_of

if TYPE_CHECKING:
    from chatgate.state import AppState

Chunk = dict[str, Any]


class Backend(Protocol):
    def stream(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]: ...
    async def close(self) -> None: ...


class Remote:
    """A chatgate over HTTP: ``POST {url}/v1/chat/completions`` with ``stream: true``."""

    def __init__(self, url: str, reasoning: str | None) -> None:
        origin, prefix = origin_of(url)
        self.url = url
        self.prefix = prefix.rstrip("/")
        self.pool = HTTP1Pool(origin, connect_timeout=5.0, max_connections=4)
        self.headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
        if reasoning:
            self.headers.append(("x-chatgate-reasoning", reasoning))

    async def reachable(self) -> bool:
        """False when nothing listens at the URL; other trouble is an error."""
        try:
            resp = await self.pool.request("GET", self.prefix + "/health", [])
            await resp.read()
        except ConnectionRefusedError:
            return False
        except OSError as exc:
            raise GatewayError(f"cannot reach chatgate at {self.url}: {exc}") from None
        return True

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        target = self.prefix + "/v1/chat/completions"
        try:
            resp = await self.pool.request("POST", target, self.headers, orjson.dumps(body))
        except OSError as exc:
            raise GatewayError(f"cannot reach chatgate at {self.url}: {exc}") from None
        try:
            if resp.status != 200:
                raise GatewayError(_error_message(await resp.read(), resp.status))
            decoder, done = SSEDecoder(), False
            async for piece in resp.iter_pieces():  # read on past [DONE]: the connection is kept
                for data in decoder.feed(piece):
                    if done or data == b"[DONE]":
                        done = True
                        continue
                    chunk = orjson.loads(data)
                    if isinstance(chunk, dict) and "error" in chunk:
                        raise GatewayError(_error_message(data, 200))
                    yield chunk
            if not done:
                raise GatewayError("the answer stream ended early")
        except OSError as exc:
            raise GatewayError(f"connection to chatgate lost: {exc}") from None
        except ValueError:
            raise GatewayError("chatgate sent an event that is not JSON") from None
        finally:
            resp.close()  # mid-answer this drops the connection, so chatgate cancels upstream

    async def close(self) -> None:
        await self.pool.close()


class InProcess:
    """The gateway's own pipeline in this process (zero-config, as ``chatgate serve`` builds)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state: AppState | None = None

    async def start(self) -> None:
        from chatgate.state import build_state

        _, config = resolve_config(self.args)
        self.state = await build_state(config)

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        """The chunks of one answer: the command line's only use of the pipeline's API."""
        from chatgate.protocol.openai import validate_chat_request

        assert self.state is not None
        req = validate_chat_request(body, self.args.reasoning)
        # The operator's own process: trusted, but limits, usage and metrics still apply.
        async with self.state.path.begin("cli") as exchange:
            exchange.trust()
            await exchange.admit(req)
            await exchange.open()
            async for batch in exchange:  # leaving early closes the upstream call
                for chunk in batch:
                    yield chunk

    async def close(self) -> None:
        if self.state is not None:
            from chatgate.state import close_state

            await close_state(self.state)


def _error_message(raw: bytes, status: int) -> str:
    with contextlib.suppress(orjson.JSONDecodeError):
        data = orjson.loads(raw)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message
    return f"HTTP {status} from chatgate"


async def connect(url: str, args: argparse.Namespace) -> Backend:
    remote = Remote(url, args.reasoning)
    if await remote.reachable():
        return remote
    await remote.close()
    print(f"no chatgate at {url}; using the local model in-process", file=sys.stderr, flush=True)
    local = InProcess(args)
    await local.start()
    return local
