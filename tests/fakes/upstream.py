"""A fast, deterministic fake upstream LLM server (OpenAI, Ollama and GigaChat APIs).

Used in-process by the test suite (``FakeUpstream``, own daemon thread + event loop) and as a
separate process by the benchmark harness::

    python -m tests.fakes.upstream --host 127.0.0.1 --port 9100 [--chunks 24] ...

Endpoints
    POST /v1/chat/completions          OpenAI chat completions (JSON or SSE)
    POST /chat/completions             DeepSeek chat (its base URL has no /v1): the same, with
                                       DeepSeek's usage fields (prompt_cache_hit_tokens, ...)
    GET  /models                       DeepSeek model list (knob ``deepseek_models``); DeepSeek
                                       lists models only here, not at /v1/models
    POST /v1/completions               OpenAI legacy completions (JSON or SSE; ``suffix`` for FIM)
    POST /beta/completions             the same, where DeepSeek serves fill-in-the-middle
    POST /v1/embeddings                OpenAI embeddings: deterministic unit vectors (floats)
    GET  /v1/models                    OpenAI model list (knob ``models``)
    GET  /api/tags                     Ollama model list (knob ``models``)
    POST /api/v2/oauth                 GigaChat OAuth (Basic credentials, RqUID, scope)
    POST /api/v1/chat/completions      GigaChat chat (Bearer token) in GigaChat's dialect:
                                       ``functions``, ``function_call``, ``functions_state_id``,
                                       role ``function``, ``attachments`` (file ids, one per
                                       message; see :mod:`tests.fakes.gigachat`)
    POST /api/v1/files                 GigaChat file upload (multipart ``file`` + ``purpose``)
    POST /api/v1/files/{id}/delete     GigaChat file deletion
    POST /api/v1/embeddings            GigaChat embeddings (Bearer token; usage per item)
    GET  /api/v1/models                GigaChat model list (Bearer token)
    GET  /_fake/requests               recorded requests, newest last
    GET  /_fake/stats                  {"counts": {path: n}, "cancelled": n, "in_flight": n, ...}
    POST /_fake/config                 set server-wide knobs (JSON object)
    POST /_fake/reset                  clear records/counters, knobs back to startup defaults
    POST /_fake/gigachat/revoke        invalidate all issued GigaChat tokens

Knobs (server-wide, or per request in the body field ``"fake": {...}``) are listed in
``DEFAULT_KNOBS``; ``sequence`` (server-wide only) scripts the next requests one by one.
Default content is ``chunks`` pieces ``"tok0 "``, ``"tok1 "``, ...

The hot path does no logging; stream bodies are built from cached per-shape byte templates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import math
import secrets
import signal
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import orjson
from aiohttp import web

from tests.fakes import gigachat

__all__ = ["DEFAULT_KNOBS", "GIGACHAT_SCOPES", "FakeServer", "FakeUpstream", "Headers", "main"]

DEFAULT_KNOBS: dict[str, Any] = {
    "latency_ms": 0,  # delay before the response (before headers)
    "first_byte_ms": 0,  # streaming: delay after headers, before the first chunk
    "chunk_delay_ms": 0,  # streaming: delay between chunks
    "chunks": 24,  # number of content pieces
    "content": None,  # str: explicit content, split into `chunks` pieces when streaming
    "reasoning": None,  # str: emitted first as reasoning_content (DeepSeek style)
    "status": None,  # int: answer with this HTTP status and an OpenAI error body
    "retry_after": None,  # seconds: Retry-After header on error responses
    "reset_after": None,  # int: streaming: abort the connection after N SSE events
    "error_event_after": None,  # int: streaming: after N SSE events send an error event, end
    "done_after": None,  # int: streaming: after N SSE events send [DONE] (cut short, cleanly)
    "tool_call": False,  # answer with a tool call to the first tool; "once": unless the
    # last message is a tool result (a whole round trip: call, result, then the answer)
    "tool_arguments": "{}",  # str: that call's arguments (JSON text; streamed in two halves)
    "models": ["fake-model", "fake-reasoner"],  # /v1/models and /api/tags
    "deepseek_models": ["deepseek-v4-flash", "deepseek-v4-pro"],  # DeepSeek's GET /models
    "models_status": None,  # int: every model list answers with this HTTP status instead
    "cache_hit_tokens": 0,  # DeepSeek chat: prompt tokens reported as context-cache hits
    "hang": False,  # never answer until the client goes away
    "gigachat_credentials": "fake-gigachat-credentials",
    "gigachat_token_ttl_s": 1800,
    "gigachat_models": ["GigaChat", "GigaChat-Pro"],
    "gigachat_embedders": [],  # listed by GigaChat's /models too, with type "embedder"
    "usage": None,  # dict: fields merged over the chat usage (a provider's own shape)
    # Server-wide only: a list of knob dicts; each chat request takes the next one over the
    # server's knobs (its own "fake" knobs still win), then the server's knobs alone apply.
    # [{"status": 503}] is "fail once, then succeed".
    "sequence": None,
}
_SERVER_ONLY = frozenset({"sequence"})
_REQUEST_KNOBS = DEFAULT_KNOBS.keys() - _SERVER_ONLY
GIGACHAT_SCOPES = frozenset({"GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP"})

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_JSON = "application/json"
_DONE = b"data: [DONE]\n\n"
_GIGA_UNAUTHORIZED = orjson.dumps({"status": 401, "message": "Unauthorized"})

T = TypeVar("T")


def _split(text: str, n: int) -> list[str]:
    """Split ``text`` into ``min(n, len(text))`` nearly equal pieces (at least one)."""
    if n <= 1 or len(text) <= 1:
        return [text]
    n = min(n, len(text))
    q, r = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        size = q + (1 if i < r else 0)
        out.append(text[pos : pos + size])
        pos += size
    return out


@lru_cache(maxsize=512)
def _content_pieces(chunks: int, content: str | None) -> tuple[str, ...]:
    if content is None:
        return tuple(f"tok{i} " for i in range(max(chunks, 0)))
    return tuple(_split(content, chunks))


@lru_cache(maxsize=512)
def _stream_tails(
    model: str,
    chunks: int,
    content: str | None,
    reasoning: str | None,
    tool: str | None,
    arguments: str = "{}",
) -> tuple[bytes, ...]:
    """Byte templates of every SSE event except the per-request ``id``/``created`` prefix.

    Each element is what follows ``data: {"id":"...","object":...,"created":N,`` in one event.
    """
    deltas: list[tuple[dict[str, Any], str | None]] = []
    if reasoning:
        for piece in _split(reasoning, chunks):
            deltas.append(({"content": None, "reasoning_content": piece}, None))
    if tool is not None:
        half = max(1, len(arguments) // 2)
        deltas.append(
            (
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_fake0",
                            "type": "function",
                            "function": {"name": tool, "arguments": arguments[:half]},
                        }
                    ],
                },
                None,
            )
        )
        rest = arguments[half:]
        deltas.append(({"tool_calls": [{"index": 0, "function": {"arguments": rest}}]}, None))
        deltas.append(({}, "tool_calls"))
    else:
        for piece in _content_pieces(chunks, content) or ("",):
            deltas.append(({"content": piece}, None))
        deltas.append(({}, "stop"))
    deltas[0] = ({"role": "assistant", **deltas[0][0]}, deltas[0][1])
    return tuple(
        orjson.dumps(
            {
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )[1:]
        + b"\n\n"
        for delta, finish in deltas
    )


def _prompt_tokens(body: dict[str, Any]) -> int:
    n = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict):
                c = m.get("content")
                if isinstance(c, str):
                    n += len(c)
                elif c is not None:
                    n += len(str(c))
    return max(1, n // 4)


def _error_body(status: int, message: str | None = None) -> bytes:
    etype = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps(
        {
            "error": {
                "message": message or f"fake error {status}",
                "type": etype,
                "param": None,
                "code": None,
            }
        }
    )


def _steps(sequence: Any) -> deque[dict[str, Any]]:
    """The ``sequence`` knob checked: a list of knob dicts (each without ``sequence``)."""
    if sequence is None:
        return deque()
    if not isinstance(sequence, list) or not all(isinstance(s, dict) for s in sequence):
        raise ValueError("sequence must be a list of knob objects")
    for step in sequence:
        if not step.keys() <= _REQUEST_KNOBS:
            raise ValueError(
                f"unknown fake knobs in sequence: {sorted(step.keys() - _REQUEST_KNOBS)}"
            )
    return deque(dict(s) for s in sequence)


def _tool_name(body: dict[str, Any]) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        fn = tools[0].get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str):
            return name
    return "fake_tool"


def _calls_tool(knob: Any, body: dict[str, Any]) -> bool:
    if knob == "once":
        messages = body.get("messages")
        last = messages[-1] if isinstance(messages, list) and messages else None
        return not (isinstance(last, dict) and last.get("role") == "tool")
    return bool(knob)


def fake_vector(item: Any, dims: int) -> list[float]:
    """A deterministic unit vector for one embeddings input (text or token ids)."""
    seed = orjson.dumps(item)
    raw = b""
    counter = 0
    while len(raw) < dims:
        raw += hashlib.blake2b(seed + counter.to_bytes(4, "little"), digest_size=64).digest()
        counter += 1
    values = [b / 127.5 - 1.0 for b in raw[:dims]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class _SSE:
    """An SSE answer's events (``data: …\\n\\n`` each), written by ``_guarded``."""

    def __init__(self, events: list[bytes]) -> None:
        self.events = events


class Headers(dict[str, str]):
    """A plain dict of request headers (lower-cased names) with case-insensitive lookups."""

    def __init__(self, headers: Any = ()) -> None:
        items = headers.items() if hasattr(headers, "items") else headers
        super().__init__((str(k).lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class FakeServer:
    """State + aiohttp application of the fake upstream. Runs on one event loop."""

    def __init__(self, max_records: int = 10_000, **defaults: Any) -> None:
        unknown = set(defaults) - DEFAULT_KNOBS.keys()
        if unknown:
            raise ValueError(f"unknown fake knobs: {sorted(unknown)}")
        self.startup_knobs: dict[str, Any] = {**DEFAULT_KNOBS, **defaults}
        self.knobs: dict[str, Any] = dict(self.startup_knobs)
        self.steps = _steps(self.startup_knobs["sequence"])  # what is left of `sequence`
        self.records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self.counts: dict[str, int] = {}
        self.cancelled = 0
        self.completed = 0
        self.in_flight = 0
        self._answering: set[asyncio.Task[Any]] = set()  # handlers of the in-flight answers
        self.oauth_calls = 0
        self.tokens: dict[str, float] = {}  # token -> expiry (unix seconds)
        self.function_states: set[str] = set()  # GigaChat functions_state_ids handed out
        self.gigachat_files: dict[str, dict[str, Any]] = {}  # GigaChat's file storage
        self._ids = itertools.count(1)

    # ---- state -------------------------------------------------------------------------
    def configure(self, knobs: dict[str, Any]) -> None:
        unknown = set(knobs) - DEFAULT_KNOBS.keys()
        if unknown:
            raise ValueError(f"unknown fake knobs: {sorted(unknown)}")
        if "sequence" in knobs:
            self.steps = _steps(knobs["sequence"])
        self.knobs = {**self.knobs, **knobs}

    def reset(self) -> None:
        self.knobs = dict(self.startup_knobs)
        self.steps = _steps(self.startup_knobs["sequence"])
        self.records.clear()
        self.counts = {}
        self.cancelled = 0
        self.completed = 0
        self.oauth_calls = 0
        self.function_states.clear()
        self.gigachat_files.clear()

    def abort_in_flight(self) -> None:
        """End every answer still streaming (its connection is dropped), so a long answer a
        test left behind does not run on into the next test."""
        for task in list(self._answering):
            task.cancel()

    def revoke_tokens(self) -> None:
        self.tokens = {}

    def stats(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "cancelled": self.cancelled,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "oauth": self.oauth_calls,
            "sequence_left": len(self.steps),
        }

    def _record(self, request: web.Request, body: Any) -> dict[str, Any]:
        path = request.path
        self.counts[path] = self.counts.get(path, 0) + 1
        rec = {
            "method": request.method,
            "path": path,
            "headers": request.headers,  # immutable proxy; converted on snapshot
            "body": body,
        }
        self.records.append(rec)
        return rec

    # ---- app ---------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post("/v1/chat/completions", self.openai_chat)
        r.add_post("/v1/completions", self.openai_completions)
        r.add_post("/beta/completions", self.openai_completions)
        r.add_post("/v1/embeddings", self.openai_embeddings)
        r.add_get("/v1/models", self.openai_models)
        r.add_post("/chat/completions", self.openai_chat)  # DeepSeek
        r.add_get("/models", self.deepseek_models)
        r.add_get("/api/tags", self.ollama_tags)
        r.add_post("/api/v2/oauth", self.gigachat_oauth)
        r.add_post("/api/v1/chat/completions", self.gigachat_chat)
        r.add_get("/api/v1/models", self.gigachat_models)
        r.add_post("/api/v1/embeddings", self.gigachat_embeddings)
        r.add_post("/api/v1/files", self.gigachat_upload)
        r.add_post("/api/v1/files/{file_id}/delete", self.gigachat_delete_file)
        r.add_get("/_fake/requests", self.ctl_requests)
        r.add_get("/_fake/stats", self.ctl_stats)
        r.add_post("/_fake/config", self.ctl_config)
        r.add_post("/_fake/reset", self.ctl_reset)
        r.add_post("/_fake/gigachat/revoke", self.ctl_revoke)
        return app

    # ---- chat (hot path) ---------------------------------------------------------------
    async def openai_chat(
        self, request: web.Request, last: dict[str, Any] | None = None
    ) -> web.StreamResponse:
        """``last``: knobs over all others (a dialect's own, e.g. GigaChat's)."""
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._record(request, None)
            return web.Response(
                status=400, body=_error_body(400, "invalid JSON body"), content_type=_JSON
            )
        rec = self._record(request, body)
        if not isinstance(body, dict):
            return web.Response(
                status=400, body=_error_body(400, "body must be a JSON object"), content_type=_JSON
            )
        k = self.knobs
        if self.steps:
            k = {**k, **self.steps.popleft()}
        fake = body.get("fake")
        if fake:
            if not isinstance(fake, dict) or not fake.keys() <= _REQUEST_KNOBS:
                return web.Response(
                    status=400,
                    body=_error_body(400, f"bad fake knobs: {fake!r}"),
                    content_type=_JSON,
                )
            k = {**k, **fake}
        if last:
            k = {**k, **last}
        self.in_flight += 1
        task = asyncio.current_task()
        if task is not None:
            self._answering.add(task)
        finished = False
        try:
            resp = await self._chat(request, body, k)
            finished = True
            return resp
        except (asyncio.CancelledError, ConnectionError):
            # client went away before the answer finished
            self.cancelled += 1
            rec["cancelled"] = True
            raise
        finally:
            self.in_flight -= 1
            self._answering.discard(task)
            if finished:
                self.completed += 1

    async def _chat(
        self, request: web.Request, body: dict[str, Any], k: dict[str, Any]
    ) -> web.StreamResponse:
        if k["latency_ms"]:
            await asyncio.sleep(k["latency_ms"] / 1000)
        if k["hang"]:
            await asyncio.get_running_loop().create_future()  # until cancelled
        status = k["status"]
        if status and status >= 400:
            headers = None
            if k["retry_after"] is not None:
                headers = {"Retry-After": str(k["retry_after"])}
            return web.Response(
                status=status, body=_error_body(status), content_type=_JSON, headers=headers
            )
        if "messages" not in body:
            return web.Response(
                status=400, body=_error_body(400, "'messages' is required"), content_type=_JSON
            )

        model = body.get("model")
        if not isinstance(model, str):
            model = "fake-model"
        tool = _tool_name(body) if _calls_tool(k["tool_call"], body) else None
        rid = f"chatcmpl-fake{next(self._ids)}"
        created = int(time.time())
        stream = body.get("stream") is True

        if not stream:
            if k["reset_after"] is not None:
                self._abort(request)  # no response at all
                return web.Response()
            deepseek = request.path == "/chat/completions"
            return self._chat_json(body, k, model, tool, rid, created, deepseek)

        tails = _stream_tails(
            model,
            int(k["chunks"]),
            k["content"],
            k["reasoning"] or None,
            tool,
            str(k["tool_arguments"]),
        )
        prefix = (
            b'data: {"id":"'
            + rid.encode()
            + b'","object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b","
        )
        events = [prefix + t for t in tails]
        so = body.get("stream_options")
        if isinstance(so, dict) and so.get("include_usage"):
            usage = self._usage(body, k, tool, request.path == "/chat/completions")
            events.append(
                b"data: "
                + orjson.dumps(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
                + b"\n\n"
            )
        tail = _DONE
        abort = False
        if k["reset_after"] is not None:
            events = events[: max(int(k["reset_after"]), 0)]
            tail, abort = b"", True
        elif k["error_event_after"] is not None:
            events = events[: max(int(k["error_event_after"]), 0)]
            tail = b"data: " + _error_body(500, "fake error event") + b"\n\n"
        elif k["done_after"] is not None:
            events = events[: max(int(k["done_after"]), 0)]

        resp = web.StreamResponse(headers=_SSE_HEADERS)
        await resp.prepare(request)
        if k["first_byte_ms"]:
            await asyncio.sleep(k["first_byte_ms"] / 1000)
        delay = k["chunk_delay_ms"] / 1000 if k["chunk_delay_ms"] else 0
        if delay:
            for i, ev in enumerate(events):
                if i:
                    await asyncio.sleep(delay)
                await resp.write(ev)
            if tail:
                await asyncio.sleep(delay)
                await resp.write(tail)
        else:
            events.append(tail)
            await resp.write(b"".join(events))
        if abort:
            self._abort(request)
            return resp
        await resp.write_eof()
        return resp

    @staticmethod
    def _abort(request: web.Request) -> None:
        """Close the TCP connection without finishing the (chunked) body."""
        transport = request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then FIN: body never terminated

    def _usage(
        self, body: dict[str, Any], k: dict[str, Any], tool: str | None, deepseek: bool = False
    ) -> dict[str, Any]:
        prompt = _prompt_tokens(body)
        reasoning = len(_split(k["reasoning"], int(k["chunks"]))) if k["reasoning"] else 0
        completion = 2 if tool is not None else len(_content_pieces(int(k["chunks"]), k["content"]))
        completion += reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        if deepseek:  # DeepSeek's context cache: hits and misses, and OpenAI's cached_tokens
            hit = min(int(k["cache_hit_tokens"]), prompt)
            usage["prompt_tokens_details"] = {"cached_tokens": hit}
            usage["prompt_cache_hit_tokens"] = hit
            usage["prompt_cache_miss_tokens"] = prompt - hit
        if isinstance(k.get("usage"), dict):
            usage.update(k["usage"])
        return usage

    def _chat_json(
        self,
        body: dict[str, Any],
        k: dict[str, Any],
        model: str,
        tool: str | None,
        rid: str,
        created: int,
        deepseek: bool = False,
    ) -> web.Response:
        message: dict[str, Any] = {"role": "assistant"}
        if k["reasoning"]:
            message["reasoning_content"] = k["reasoning"]
        if tool is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": "call_fake0",
                    "type": "function",
                    "function": {"name": tool, "arguments": str(k["tool_arguments"])},
                }
            ]
            finish = "tool_calls"
        else:
            content = k["content"]
            message["content"] = (
                "".join(_content_pieces(int(k["chunks"]), None)) if content is None else content
            )
            finish = "stop"
        payload = {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self._usage(body, k, tool, deepseek),
        }
        return web.Response(body=orjson.dumps(payload), content_type=_JSON)

    # ---- legacy completions and embeddings -------------------------------------------
    async def _guarded(
        self, request: web.Request, answer: Callable[[dict[str, Any], dict[str, Any]], Any]
    ) -> web.StreamResponse:
        """Parse, record and apply the knobs (latency, hang, status) around ``answer``."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        rec = self._record(request, body)
        if not isinstance(body, dict):
            return web.Response(status=400, body=_error_body(400), content_type=_JSON)
        k = self.knobs
        fake = body.get("fake")
        if isinstance(fake, dict) and fake.keys() <= DEFAULT_KNOBS.keys():
            k = {**k, **fake}
        self.in_flight += 1
        try:
            if k["latency_ms"]:
                await asyncio.sleep(k["latency_ms"] / 1000)
            if k["hang"]:
                await asyncio.get_running_loop().create_future()  # until cancelled
            status = k["status"]
            if status and status >= 400:
                headers = None
                if k["retry_after"] is not None:
                    headers = {"Retry-After": str(k["retry_after"])}
                return web.Response(
                    status=status, body=_error_body(status), content_type=_JSON, headers=headers
                )
            resp: web.StreamResponse = await answer(body, k)
            if isinstance(resp, _SSE):
                stream = web.StreamResponse(headers=_SSE_HEADERS)
                await stream.prepare(request)
                await stream.write(b"".join(resp.events) + _DONE)
                await stream.write_eof()
                resp = stream
            self.completed += 1
            return resp
        except (asyncio.CancelledError, ConnectionError):
            self.cancelled += 1
            rec["cancelled"] = True
            raise
        finally:
            self.in_flight -= 1

    async def openai_completions(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: dict[str, Any], k: dict[str, Any]) -> Any:
            prompt = body.get("prompt")
            if prompt is None:
                return web.Response(
                    status=400, body=_error_body(400, "'prompt' is required"), content_type=_JSON
                )
            prompts = prompt if isinstance(prompt, list) and prompt else [prompt]
            if all(isinstance(t, int) for t in prompts):
                prompts = [prompts]
            n = body.get("n") if isinstance(body.get("n"), int) else 1
            pieces = list(_content_pieces(int(k["chunks"]), k["content"]))
            model = body.get("model") if isinstance(body.get("model"), str) else "fake-model"
            rid, created = f"cmpl-fake{next(self._ids)}", int(time.time())
            base = {"id": rid, "object": "text_completion", "created": created, "model": model}
            text_in = " ".join(p if isinstance(p, str) else f"<{len(p)} tokens>" for p in prompts)
            prompt_tokens = max(1, (len(text_in) + len(str(body.get("suffix") or ""))) // 4)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(pieces) * n * len(prompts),
                "total_tokens": prompt_tokens + len(pieces) * n * len(prompts),
            }
            echo = body.get("echo") is True
            indexes = [(i * n + j, p) for i, p in enumerate(prompts) for j in range(n)]
            if body.get("stream") is not True:
                choices = [
                    {
                        "index": index,
                        "text": (p if echo and isinstance(p, str) else "") + "".join(pieces),
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for index, p in indexes
                ]
                payload = {**base, "choices": choices, "usage": usage}
                return web.Response(body=orjson.dumps(payload), content_type=_JSON)
            events = []
            for index, p in indexes:
                texts = ([p] if echo and isinstance(p, str) else []) + pieces
                for i, text in enumerate(texts):
                    finish = "stop" if i == len(texts) - 1 else None
                    choice = {
                        "index": index,
                        "text": text,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                    events.append(b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n")
            so = body.get("stream_options")
            if isinstance(so, dict) and so.get("include_usage"):
                last = {**base, "choices": [], "usage": usage}
                events.append(b"data: " + orjson.dumps(last) + b"\n\n")
            return _SSE(events)

        return await self._guarded(request, answer)

    async def openai_embeddings(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: dict[str, Any], k: dict[str, Any]) -> Any:
            value = body.get("input")
            if value is None or value == "" or value == []:
                return web.Response(
                    status=400, body=_error_body(400, "'input' is required"), content_type=_JSON
                )
            items = value if isinstance(value, list) else [value]
            if all(isinstance(t, int) for t in items):
                items = [items]
            dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(item, dims)}
                for i, item in enumerate(items)
            ]
            tokens = sum(len(t) // 4 + 1 if isinstance(t, str) else len(t) for t in items)
            payload = {
                "object": "list",
                "data": data,
                "model": body.get("model") if isinstance(body.get("model"), str) else "fake",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
            if body.get("encoding_format") == "base64":
                return web.Response(
                    status=400,
                    body=_error_body(400, "this fake answers floats only"),
                    content_type=_JSON,
                )
            return web.Response(body=orjson.dumps(payload), content_type=_JSON)

        return await self._guarded(request, answer)

    # ---- model lists -------------------------------------------------------------------
    def _models_refused(self) -> web.Response | None:
        status = self.knobs["models_status"]
        if status and status >= 400:
            return web.Response(status=status, body=_error_body(status), content_type=_JSON)
        return None

    async def openai_models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if refused := self._models_refused():
            return refused
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
            for m in self.knobs["models"]
        ]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)

    async def deepseek_models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if refused := self._models_refused():
            return refused
        data = [
            {"id": m, "object": "model", "owned_by": "deepseek"}
            for m in self.knobs["deepseek_models"]
        ]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)

    async def ollama_tags(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if refused := self._models_refused():
            return refused
        models = [
            {"name": m, "model": m, "modified_at": "2024-01-01T00:00:00Z", "size": 0, "digest": ""}
            for m in self.knobs["models"]
        ]
        return web.Response(body=orjson.dumps({"models": models}), content_type=_JSON)

    # ---- GigaChat ----------------------------------------------------------------------
    async def gigachat_oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        self._record(request, dict(form))
        self.oauth_calls += 1
        rquid = request.headers.get("RqUID", "")
        try:
            valid = uuid.UUID(rquid).version == 4
        except ValueError:
            valid = False
        if not valid:
            return web.json_response({"code": 5, "message": "RqUID: invalid UUID4"}, status=400)
        if form.get("scope") not in GIGACHAT_SCOPES:
            return web.json_response({"code": 7, "message": "scope is not valid"}, status=400)
        auth = request.headers.get("Authorization", "")
        if auth != "Basic " + self.knobs["gigachat_credentials"]:
            return web.json_response(
                {"code": 6, "message": "credentials doesn't match db data"}, status=401
            )
        token = "fake-giga-" + secrets.token_urlsafe(24)
        expires = time.time() + float(self.knobs["gigachat_token_ttl_s"])
        self.tokens[token] = expires
        return web.json_response({"access_token": token, "expires_at": int(expires * 1000)})

    def _bearer_ok(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        expires = self.tokens.get(auth[7:])
        return expires is not None and expires > time.time()

    async def gigachat_chat(self, request: web.Request) -> web.StreamResponse:
        if not self._bearer_ok(request):
            self._record(request, None)
            return web.Response(status=401, body=_GIGA_UNAUTHORIZED, content_type=_JSON)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            if refused := gigachat.problem(body, self.function_states, self.gigachat_files):
                self._record(request, body)
                message = orjson.dumps({"status": 422, "message": refused})
                return web.Response(status=422, body=message, content_type=_JSON)
            fake = body.get("fake")
            k = {**self.knobs, **(fake if isinstance(fake, dict) else {})}
            if name := gigachat.calls_function(k["tool_call"], body):
                self._record(request, body)
                stream = body.get("stream") is True
                answer = gigachat.function_answer(
                    body, name, str(k["tool_arguments"]), stream, self.function_states
                )
                if not stream:
                    return web.Response(body=answer, content_type=_JSON)
                resp = web.StreamResponse(headers=_SSE_HEADERS)
                await resp.prepare(request)
                await resp.write(answer)
                await resp.write_eof()
                return resp
        # Text answers as OpenAI's (GigaChat's stream chunks look the same); no OpenAI tool calls
        return await self.openai_chat(request, last={"tool_call": False})

    async def gigachat_upload(self, request: web.Request) -> web.Response:
        """``POST /files``: multipart ``file`` + ``purpose``; answers the stored file's id."""
        if not self._bearer_ok(request):
            self._record(request, None)
            return web.Response(status=401, body=_GIGA_UNAUTHORIZED, content_type=_JSON)
        if not request.content_type.startswith("multipart/form-data"):
            self._record(request, None)
            return web.json_response({"status": 400, "message": "multipart only"}, status=400)
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            self._record(request, dict(form))
            return web.json_response({"status": 400, "message": "file: required"}, status=400)
        data = upload.file.read()
        meta = {"purpose": form.get("purpose"), "filename": upload.filename,
                "mime": upload.content_type, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
        self._record(request, meta)
        if refused := gigachat.upload_problem(meta["purpose"], upload.content_type, data):
            return web.json_response({"status": 400, "message": refused}, status=400)
        file_id = str(uuid.uuid4())
        self.gigachat_files[file_id] = meta
        answer = {"id": file_id, "object": "file", "bytes": len(data), "access_policy": "private",
                  "created_at": int(time.time()), "filename": upload.filename,
                  "purpose": meta["purpose"]}  # fmt: skip
        return web.json_response(answer)

    async def gigachat_delete_file(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if not self._bearer_ok(request):
            return web.Response(status=401, body=_GIGA_UNAUTHORIZED, content_type=_JSON)
        file_id = request.match_info["file_id"]
        if self.gigachat_files.pop(file_id, None) is None:
            return web.json_response({"status": 404, "message": "file not found"}, status=404)
        return web.json_response({"id": file_id, "deleted": True})

    async def gigachat_embeddings(self, request: web.Request) -> web.StreamResponse:
        if not self._bearer_ok(request):
            self._record(request, None)
            return web.Response(status=401, body=_GIGA_UNAUTHORIZED, content_type=_JSON)

        async def answer(body: dict[str, Any], k: dict[str, Any]) -> Any:
            texts = body.get("input")
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return web.Response(
                    status=422, body=_error_body(422, "input: array of strings"), content_type=_JSON
                )
            data = [
                {
                    "object": "embedding",
                    "embedding": fake_vector(t, 8),
                    "index": i,
                    "usage": {"prompt_tokens": len(t) // 4 + 1},
                }
                for i, t in enumerate(texts)
            ]
            payload = {"object": "list", "data": data, "model": body.get("model")}
            return web.Response(body=orjson.dumps(payload), content_type=_JSON)

        return await self._guarded(request, answer)

    async def gigachat_models(self, request: web.Request) -> web.Response:
        self._record(request, None)
        if not self._bearer_ok(request):
            return web.Response(status=401, body=_GIGA_UNAUTHORIZED, content_type=_JSON)
        if refused := self._models_refused():
            return refused
        kinds = [(m, "chat") for m in self.knobs["gigachat_models"]]
        kinds += [(m, "embedder") for m in self.knobs["gigachat_embedders"]]
        data = [
            {"id": m, "object": "model", "owned_by": "salutedevices", "type": t} for m, t in kinds
        ]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=_JSON)

    # ---- control -----------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Recorded requests, newest last, with headers as a case-insensitive plain dict."""
        return [{**rec, "headers": Headers(rec["headers"])} for rec in self.records]

    async def ctl_requests(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.snapshot()), content_type=_JSON)

    async def ctl_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type=_JSON)

    async def ctl_config(self, request: web.Request) -> web.Response:
        try:
            knobs = orjson.loads(await request.read())
            if not isinstance(knobs, dict):
                raise ValueError("config must be a JSON object")
            self.configure(knobs)
        except ValueError as e:  # includes JSONDecodeError
            return web.Response(status=400, body=_error_body(400, str(e)), content_type=_JSON)
        return web.Response(body=orjson.dumps(self.knobs), content_type=_JSON)

    async def ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.Response(body=b'{"ok":true}', content_type=_JSON)

    async def ctl_revoke(self, request: web.Request) -> web.Response:
        self.revoke_tokens()
        return web.Response(body=b'{"ok":true}', content_type=_JSON)


async def _start_runner(
    server: FakeServer, sock: socket.socket, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    runner = web.AppRunner(
        server.make_app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
    )
    await runner.setup()
    await web.SockSite(runner, sock, backlog=2048, ssl_context=ssl_context).start()
    return runner


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class FakeUpstream:
    """The fake server in its own daemon thread and event loop (for pytest).

    ``with FakeUpstream(chunks=4) as fake: ... fake.base_url ...``
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **defaults: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # serve https with it
        self.server = FakeServer(**defaults)
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def gigachat_credentials(self) -> str:
        return str(self.server.knobs["gigachat_credentials"])

    def start(self) -> str:
        if self._thread is not None:
            return self.base_url
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        self.base_url = f"{scheme}://{host}:{self.port}"
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._runner = loop.run_until_complete(
                    _start_runner(self.server, sock, self.ssl_context)
                )
            except BaseException as e:
                error.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        if error:
            self._thread.join()
            self._thread = None
            loop.close()
            raise error[0]
        return self.base_url

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            with contextlib.suppress(Exception):
                fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server loop (thread-safe access to the state)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return fn()

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(10)

    def configure(self, **knobs: Any) -> None:
        self._call(lambda: self.server.configure(knobs))

    def reset(self) -> None:
        self._call(self.server.reset)

    def abort_in_flight(self, within: float = 5.0) -> None:
        """End the answers still streaming, and wait (up to ``within`` s) until they have."""
        self._call(self.server.abort_in_flight)
        deadline = time.monotonic() + within
        while self.server.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def revoke_gigachat_tokens(self) -> None:
        self._call(self.server.revoke_tokens)

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._call(self.server.snapshot)

    def count(self, path: str = "/v1/chat/completions") -> int:
        return self.server.counts.get(path, 0)

    @property
    def cancelled(self) -> int:
        return self.server.cancelled

    @property
    def in_flight(self) -> int:
        return self.server.in_flight

    def stats(self) -> dict[str, Any]:
        return self._call(self.server.stats)


# ---- CLI ---------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.fakes.upstream",
        description="Fake upstream LLM server (OpenAI, Ollama, GigaChat APIs).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--chunks", type=int, default=DEFAULT_KNOBS["chunks"], help="content pieces")
    p.add_argument("--latency-ms", type=float, default=0, help="delay before the response")
    p.add_argument("--first-byte-ms", type=float, default=0, help="stream: delay before 1st chunk")
    p.add_argument("--chunk-delay-ms", type=float, default=0, help="stream: delay between chunks")
    p.add_argument("--models", default=",".join(DEFAULT_KNOBS["models"]), help="comma separated")
    p.add_argument("--gigachat-credentials", default=DEFAULT_KNOBS["gigachat_credentials"])
    p.add_argument(
        "--gigachat-token-ttl-s", type=float, default=DEFAULT_KNOBS["gigachat_token_ttl_s"]
    )
    p.add_argument("--max-records", type=int, default=10_000, help="recorded requests kept")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = FakeServer(
        max_records=args.max_records,
        chunks=args.chunks,
        latency_ms=args.latency_ms,
        first_byte_ms=args.first_byte_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        models=[m for m in args.models.split(",") if m],
        gigachat_credentials=args.gigachat_credentials,
        gigachat_token_ttl_s=args.gigachat_token_ttl_s,
    )
    sock = _bind(args.host, args.port)
    runner = await _start_runner(server, sock)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"fake upstream listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(_serve(args))
            return
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
