"""The checks every request and WebSocket handshake passes before any route sees it.

- **Host allow-list** (``server.allowed_hosts``): a page on ``evil.test`` that rebinds its own
  name to 127.0.0.1 reaches the server with ``Host: evil.test``; any name not on the list gets
  421. Bound to loopback, the default list is the loopback names and addresses plus the
  configured host; bound to anything else, any name (set the list to lock it down).
- **Foreign Origin without a key**: a browser tells where a request comes from; one from another
  site (not this Host, not ``server.allowed_origins``) that carries no ``Authorization`` /
  ``x-api-key`` is refused (403) on every state-changing method and every WebSocket. A page
  cannot add those headers cross-site without a CORS preflight, which chatgate never grants, so
  a request that has one was not forged by a page.
- **JSON only**: a body must be ``application/json`` (or ``application/*+json``): 415
  otherwise. Text, form and multipart bodies are what a page can send cross-site without a
  preflight.
- **Declared length** over ``server.max_body_bytes``: 413 before reading a byte (the bytes
  actually read are counted by :class:`chatgate.api.bodylimit.BodyLimit` and ``read_body``).

Each refusal comes in the error shape of the door the request was for (``asgi.ErrorShapes``):
Anthropic's at ``/v1/messages``, Ollama's at its ``/api/…`` paths, the seed's at ``/chatgpt/``
and ``/gigachat/``, OpenAI's elsewhere.

One pass over the headers, no allocation on the common path: verdicts per Host value are
memoised (bounded), so the allow-list costs one dict lookup per request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.api.asgi import ErrorBody, Scope, Send, send_error
from chatgate.api.peers import Peers
from chatgate.chat.accounts import is_loopback
from chatgate.config import ServerConfig
from chatgate.errors import (
    GatewayError,
    MisdirectedRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD"})
_MEMO_LIMIT = 1024


def host_name(host: str | bytes) -> str:
    """The name part of a Host value (``[::1]:8000`` → ``::1``), lower-cased."""
    text = host.decode("latin-1") if isinstance(host, bytes) else host
    text = text.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text[1:]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def default_hosts(bind: str) -> list[str] | None:
    """The allow-list when none is configured: None (any host) unless bound to loopback."""
    if not is_loopback(bind):
        return None
    return [*LOOPBACK_NAMES, host_name(bind)]


class HostList:
    def __init__(self, entries: list[str] | None) -> None:
        self.any = entries is None or "*" in entries
        names = [host_name(e) for e in entries or ()]
        self.suffixes = tuple(n for n in names if n.startswith("."))
        self.exact = frozenset(n for n in names if not n.startswith("."))
        self._memo: dict[bytes, bool] = {}

    def allows(self, host: bytes) -> bool:
        if self.any:
            return True
        known = self._memo.get(host)
        if known is None:
            name = host_name(host)
            known = name in self.exact or any(
                name.endswith(s) or name == s[1:] for s in self.suffixes
            )
            if len(self._memo) < _MEMO_LIMIT:  # a flood of made-up names is judged, not kept
                self._memo[bytes(host)] = known
        return known

    def describe(self) -> str:
        if self.any:
            return "any host"
        return ", ".join(sorted(self.exact) + ["*" + s for s in sorted(self.suffixes)])


def is_json(content_type: bytes) -> bool:
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


# Ollama's answering endpoints, which Ollama's documentation calls with `curl -d` (a form content
# type). A browser always sends Origin with a POST, so a cross-site form still gets 415.
CURL_FRIENDLY = frozenset({"/api/chat", "/api/generate", "/api/show"})
# Routes whose body is raw bytes, not JSON (file uploads), each counting its own size limit as
# it reads (``files.max_bytes``): no JSON check and no ``server.max_body_bytes`` check here.
RAW_BODY_ROUTES = frozenset({"/api/files"})


class Guard:
    __slots__ = ("hosts", "limit", "limits", "origins", "peers")

    def __init__(
        self, server: ServerConfig, peers: Peers, limits: Mapping[str, int] | None = None
    ) -> None:
        entries = server.allowed_hosts
        self.hosts = HostList(entries if entries is not None else default_hosts(server.host))
        self.origins = frozenset(o.rstrip("/").lower().encode() for o in server.allowed_origins)
        self.limit = server.max_body_bytes
        self.limits = dict(limits or {})  # path -> its own body limit (the import's)
        self.peers = peers

    def check(self, scope: Scope) -> GatewayError | None:
        """The refusal for this request or handshake, or None to let it through."""
        host = origin = content_type = None
        length = b""
        chunked = credential = False
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            elif key == b"origin":
                origin = value
            elif key == b"content-type":
                content_type = value
            elif key == b"content-length":
                length = value
            elif key == b"transfer-encoding":
                chunked = True
            elif key == b"authorization" or key == b"x-api-key":
                credential = True
        if host is None:
            if not self.hosts.any:
                return MisdirectedRequestError("A Host header is required.")
        elif not self.hosts.allows(host):
            return MisdirectedRequestError(
                f"This server does not answer for the host `{host_name(host)}`; an operator "
                "adds it to server.allowed_hosts (see README: Security).",
                code="host_not_allowed",
            )
        websocket = scope["type"] == "websocket"
        if (
            origin is not None
            and not credential
            and (websocket or scope["method"] not in SAFE_METHODS)
            and not self._own_origin(origin, host, scope)
        ):
            return PermissionDeniedError(
                "Cross-origin request refused: a request from another site needs an API key.",
                code="csrf",
            )
        if websocket or scope["path"] in RAW_BODY_ROUTES:
            return None
        if length and length != b"0":
            try:
                declared = int(length)
            except ValueError:
                declared = 0
            limit = self.limits.get(scope["path"], self.limit)
            if declared > limit:
                return PayloadTooLargeError(
                    f"Request body is larger than the limit of {limit} bytes."
                )
        elif not chunked:
            return None  # no body: nothing to check its type of
        if content_type is None or not is_json(content_type):
            if origin is None and scope["path"] in CURL_FRIENDLY:
                return None  # not a browser (no Origin): Ollama's own docs post with `curl -d`
            return UnsupportedMediaTypeError(
                "This API takes JSON bodies: send `Content-Type: application/json`."
            )
        return None

    def _own_origin(self, origin: bytes, host: bytes | None, scope: Scope) -> bool:
        """The page that sent this is served by this server (or trusted in config)."""
        netloc = origin.partition(b"://")[2]
        if host is not None and netloc and netloc.lower() == host.lower():
            return True
        if origin.rstrip(b"/").lower() in self.origins:
            return True
        forwarded = self.peers.forwarded_host(scope) if self.peers.trusted else None
        return forwarded is not None and netloc.lower() == forwarded.lower()


async def refuse(scope: Scope, send: Send, error: GatewayError, shape: ErrorBody) -> None:
    """Answer ``error`` to an HTTP request in ``shape`` (the error shape of the door the request
    was for: ``asgi.ErrorShapes``), or deny a WebSocket handshake with it (as an HTTP response
    where the server supports that, else a policy-violation close)."""
    if scope["type"] == "http":
        request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = request_id or os.urandom(16).hex().encode()
        await send_error(send, error, [(b"x-request-id", request_id)], shape)
        return
    extensions: dict[str, Any] = scope.get("extensions") or {}
    if "websocket.http.response" not in extensions:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "websocket.http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": orjson.dumps(shape(error))})
