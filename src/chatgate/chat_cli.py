"""``chatgate chat``: a terminal chat against a running chatgate, or the gateway in-process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from chatgate.errors import GatewayError
from chatgate.protocol.sse import SSEDecoder
from chatgate.providers.http1 import HTTP1Pool, origin_of

if TYPE_CHECKING:
    from chatgate.state import AppState

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL = "local"
DIM, RESET = "\x1b[2m", "\x1b[0m"
HELP = "commands: /model NAME (switch model), /clear (forget the conversation), /exit"

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
        from chatgate.cli import resolve_config
        from chatgate.state import build_state

        _, config = resolve_config(self.args)
        self.state = await build_state(config)

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
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


class Printer:
    """Writes reasoning (dimmed on a terminal) above the answer, as the pieces arrive."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self.part: str | None = None  # "reasoning" | "answer" once something was written

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def reasoning(self, text: str) -> None:
        if self.part is None:
            self.part = "reasoning"
            if self.color:
                self.write(DIM)
        if self.part == "reasoning":
            self.write(text)

    def answer(self, text: str) -> None:
        if self.part == "reasoning":
            self.write((RESET if self.color else "") + "\n\n")
        self.part = "answer"
        self.write(text)

    def end(self, note: str = "") -> None:
        if self.part == "reasoning" and self.color:
            self.write(RESET)
        if self.part is not None or note:
            self.write(note + "\n")


async def answer(backend: Backend, body: dict[str, Any], printer: Printer) -> tuple[str, bool]:
    """Stream one answer; return its text (partial if stopped) and whether it completed."""
    parts: list[str] = []
    error: str | None = None
    stopped = False
    chunks = backend.stream(body)
    try:
        async for chunk in chunks:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict) or choice.get("index", 0) != 0:
                    continue
                if reasoning := delta.get("reasoning_content"):
                    printer.reasoning(reasoning)
                if content := delta.get("content"):
                    parts.append(content)
                    printer.answer(content)
    except asyncio.CancelledError:  # Ctrl-C: asyncio.Runner cancels this task
        stopped = True
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except GatewayError as exc:
        error = exc.message
    finally:
        await chunks.aclose()
    printer.end(" [stopped]" if stopped else "")
    if error is not None:
        print(f"error: {error}", file=sys.stderr, flush=True)
    return "".join(parts), not stopped and error is None


async def connect(url: str, args: argparse.Namespace) -> Backend:
    remote = Remote(url, args.reasoning)
    if await remote.reachable():
        return remote
    await remote.close()
    print(f"no chatgate at {url}; using the local model in-process", file=sys.stderr, flush=True)
    local = InProcess(args)
    await local.start()
    return local


def cmd_chat(args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get("CHATGATE_URL") or DEFAULT_URL).rstrip("/")
    model = args.model or os.environ.get("CHATGATE_MODEL") or DEFAULT_MODEL
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict[str, Any]] = list(system)
    with asyncio.Runner() as runner:
        backend = runner.run(connect(url, args))
        try:
            while True:
                try:
                    line = input("> " if interactive else "")
                except (EOFError, KeyboardInterrupt):
                    if interactive:
                        print()
                    return 0
                text = line.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    command, _, rest = text.partition(" ")
                    if command in ("/exit", "/quit"):
                        return 0
                    if command == "/clear":
                        history = list(system)
                        print("(conversation cleared)")
                    elif command == "/model" and rest.strip():
                        model = rest.strip()
                        print(f"(model: {model})")
                    else:
                        print(f"(model: {model}) {HELP}")
                    continue
                history.append({"role": "user", "content": text})
                body = {"model": model, "messages": history, "stream": True}
                content, complete = runner.run(answer(backend, body, Printer(color)))
                if content or complete:
                    history.append({"role": "assistant", "content": content})
                else:
                    history.pop()  # nothing came back: forget the question too
        finally:
            runner.run(backend.close())
