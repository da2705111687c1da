"""``openai`` provider: DeepSeek, OpenAI, Ollama's /v1, vLLM, SGLang, any OpenAI-compatible server.

Bodies are forwarded as the client sent them with only ``model`` and ``stream`` set, so every
OpenAI field passes through. Besides chat it serves legacy completions (``/completions``, at
``completions_base_url`` when set: DeepSeek serves fill-in-the-middle only under ``/beta``) and
embeddings (``/embeddings``). ``HTTPUpstream`` (configured by ``HTTPConfig``) is the part every
HTTP provider shares: keep-alive connection pools (see :mod:`chatgate.providers.http1`), TLS,
timeouts and error translation.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from chatgate.errors import ConfigError, UpstreamError, UpstreamTimeoutError
from chatgate.protocol.openai import Chunk, ChunkBatch
from chatgate.protocol.sse import SSEDecoder
from chatgate.providers.base import (
    ProviderPlugin,
    parse_retry_after,
    redact,
    upstream_error_message,
)
from chatgate.providers.neterrors import ConnectError
from chatgate.providers.proxies import DIRECT, ProxyRules, parse_proxy
from chatgate.providers.settings import ProviderConfig
from chatgate.providers.transport import (
    Transport,
    TransportKind,
    TransportSettings,
    UpstreamResponse,
)

_JSON = "application/json"
_USAGE = {"include_usage": True}


class HTTPConfig(ProviderConfig):
    """What every HTTP provider's config adds: TLS trust, the proxy and the client behind it."""

    verify_ssl: bool = True
    ca_bundle: Path | None = None
    proxy: SecretStr | None = Field(
        None,
        description="Proxy URL for this provider (http://, https://, socks5://; credentials "
        "as http://user:pass@host:3128). Unset: HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY, read "
        "as the openai SDK reads them; null or `none`: no proxy at all.",
    )
    transport: TransportKind = Field(
        "auto",
        description="The HTTP client: http1 (chatgate's own, fastest), httpx, or auto (http1 "
        "unless the proxy is one only httpx speaks: socks5://, https://).",
    )
    keepalive_expiry: float = Field(
        5.0,
        gt=0,
        description="Seconds an idle upstream connection is kept for reuse; keep it below "
        "the upstream's (or proxy's) own idle timeout.",
    )

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip().lower() not in DIRECT:
            parse_proxy(value.get_secret_value())  # ValueError: the scheme or host is unusable
        return value

    def proxy_rules(self) -> ProxyRules:
        """This provider's proxy: its own ``proxy:`` when set (null or none: direct), else the
        environment's rules. ValueError when an environment variable holds an unusable URL."""
        if "proxy" not in self.model_fields_set:
            return ProxyRules.from_environment()
        url = self.proxy.get_secret_value().strip() if self.proxy is not None else ""
        return ProxyRules.fixed(None if url.lower() in DIRECT else parse_proxy(url))


class OpenAIConfig(HTTPConfig):
    type: Literal["openai"] = "openai"
    discovery: Literal["openai", "ollama"] = Field(
        "openai", description="How to list models: /v1/models, or Ollama's /api/tags."
    )
    completions_base_url: str | None = Field(
        None,
        description="Where legacy /completions (and fill-in-the-middle) are served, if not at "
        "base_url: DeepSeek's are at https://api.deepseek.com/beta.",
    )

    @model_validator(mode="after")
    def _check_base_url(self) -> OpenAIConfig:
        if not self.base_url:
            raise ValueError("base_url is required for an openai provider")
        return self


H = TypeVar("H", bound=HTTPConfig)


class HTTPUpstream(Generic[H]):
    """What every HTTP provider shares: the transport (pools per origin, proxies), timeouts and
    error translation."""

    def __init__(self, name: str, cfg: H) -> None:
        self.name = name
        self.cfg = cfg
        self.keys = [k.get_secret_value() for k in cfg.api_keys]
        self.extra_headers = cfg.header_values()
        self.header_secrets = cfg.header_secrets()
        self.proxies = ProxyRules([])
        self._transport: Transport | None = None

    def _ssl(self) -> ssl.SSLContext | bool | None:
        if not self.cfg.verify_ssl:
            return False
        if self.cfg.ca_bundle is not None:
            return ssl.create_default_context(cafile=str(self.cfg.ca_bundle))
        return None  # the system's default verification

    async def start(self) -> None:
        try:
            self.proxies = self.cfg.proxy_rules()
        except ValueError as exc:  # an unusable *_PROXY variable
            raise ConfigError(f"providers.{self.name}", str(exc)) from None
        cfg = self.cfg
        settings = TransportSettings(
            ssl=self._ssl(),
            connect_timeout=cfg.timeouts.connect,
            read_timeout=cfg.timeouts.read,
            max_connections=cfg.max_connections,
            keepalive_expiry=cfg.keepalive_expiry,
            kind=cfg.transport,
        )
        self._transport = Transport(settings, self.proxies)

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> UpstreamResponse:
        transport = self._transport
        if transport is None:
            raise UpstreamError(f"provider {self.name} is not started")
        merged = {**self.extra_headers, **headers} if self.extra_headers else headers
        try:
            return await transport.request(method, url, list(merged.items()), body)
        except ValueError as exc:  # a proxy this transport cannot use
            raise UpstreamError(f"{self.name}: {redact(str(exc), self.secrets())}") from None

    def secrets(self) -> list[str]:
        """Everything redacted from upstream errors: the keys, the configured headers and the
        proxies' credentials."""
        return [*self.keys, *self.header_secrets, *self.proxies.secrets()]

    def http_error(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        message = redact(upstream_error_message(raw), self.secrets())
        if status == 407 and not message:  # from a proxy, about its credentials
            message = "HTTP 407 Proxy Authentication Required"
        retry_after = parse_retry_after(headers.get("retry-after"))
        return UpstreamError(
            f"{self.name}: {message}" if message else f"{self.name}: HTTP {status}",
            upstream_status=status,
            retry_after=retry_after,
        )

    def transport_error(self, exc: BaseException) -> UpstreamError:
        """The gateway error for a transport failure, saying whether the request was sent."""
        detail = redact(str(exc), self.secrets()) or type(exc).__name__
        if isinstance(exc, ConnectError):
            kind = UpstreamTimeoutError if isinstance(exc, TimeoutError) else UpstreamError
            return kind(f"{self.name}: cannot connect to the upstream ({detail})", sent=False)
        if isinstance(exc, TimeoutError):
            return UpstreamTimeoutError(f"{self.name}: upstream timed out")
        return UpstreamError(f"{self.name}: upstream connection failed ({detail})")

    async def post_json(self, url: str, payload: bytes, headers: dict[str, str]) -> Any:
        return await self._json("POST", url, headers, payload)

    async def get_json(self, url: str, headers: dict[str, str]) -> Any:
        return await self._json("GET", url, headers)

    async def _json(self, method: str, url: str, headers: dict[str, str], body: bytes = b"") -> Any:
        try:
            resp = await self._send(method, url, headers, body)
            raw = await resp.read()
        except (OSError, TimeoutError) as exc:
            raise self.transport_error(exc) from None
        if resp.status >= 400:
            raise self.http_error(resp.status, raw, resp.headers)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"{self.name}: upstream sent a body that is not JSON") from None

    async def post_stream(
        self, url: str, payload: bytes, headers: dict[str, str]
    ) -> AsyncIterator[ChunkBatch]:
        """POST and yield the parsed ``data:`` events of an SSE answer, one batch per read."""
        finished = False
        end: bool | UpstreamError = False
        try:
            resp = await self._send("POST", url, headers, payload)
            if resp.status >= 400:
                raise self.http_error(resp.status, await resp.read(), resp.headers)
            decoder = SSEDecoder()
            pieces = resp.iter_pieces()
            try:
                while True:
                    piece = await anext(pieces, None)
                    events = decoder.feed(piece) if piece is not None else decoder.flush()
                    batch, end = self._parse_events(events)
                    if batch:
                        finished = finished or any(map(_has_finish, batch))
                        yield batch
                    if isinstance(end, UpstreamError):
                        raise end
                    if end or piece is None:
                        break
            finally:
                resp.close()  # reusable only if the body was read whole
        except (OSError, TimeoutError) as exc:
            raise self.transport_error(exc) from None
        if not finished and end is not True:
            # The connection ended cleanly but the answer did not: never pass that off as whole.
            raise UpstreamError(f"{self.name}: upstream stream ended before the answer finished")

    def _parse_events(self, events: list[bytes]) -> tuple[ChunkBatch, bool | UpstreamError]:
        """The chunks of ``events``, and how the stream ends here: ``True`` at ``[DONE]``, an
        error at an error event (raised after the chunks before it are delivered)."""
        batch: ChunkBatch = []
        for data in events:
            if data == b"[DONE]":
                return batch, True
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                return batch, UpstreamError(f"{self.name}: upstream sent an event that is not JSON")
            if not isinstance(chunk, dict):
                return batch, UpstreamError(f"{self.name}: upstream sent a non-object event")
            if "error" in chunk and "choices" not in chunk:
                err = chunk["error"]
                msg = err.get("message") if isinstance(err, dict) else str(err)
                return batch, UpstreamError(f"{self.name}: {redact(str(msg), self.secrets())}")
            batch.append(chunk)
        return batch, False


def _has_finish(chunk: Chunk) -> bool:
    choices = chunk.get("choices")
    if not choices:
        return False
    return any(c.get("finish_reason") for c in choices if isinstance(c, dict))


class OpenAIProvider(HTTPUpstream[OpenAIConfig]):
    def __init__(self, name: str, cfg: OpenAIConfig) -> None:
        super().__init__(name, cfg)
        assert cfg.base_url is not None  # checked by OpenAIConfig
        self.base_url = cfg.base_url.rstrip("/")
        self._chat_url = self.base_url + "/chat/completions"
        completions_base = (cfg.completions_base_url or self.base_url).rstrip("/")
        self._completions_url = completions_base + "/completions"
        self._embeddings_url = self.base_url + "/embeddings"

    def _headers(self, api_key: str | None) -> dict[str, str]:
        key = api_key if api_key is not None else (self.keys[0] if self.keys else None)
        headers = {"Content-Type": _JSON}
        if key:
            headers["Authorization"] = "Bearer " + key
        return headers

    async def _whole(
        self, url: str, body: dict[str, Any], model: str, api_key: str | None, streams: bool = True
    ) -> dict[str, Any]:
        # `stream: false` only where the endpoint has the field (embeddings have none)
        fields = {**body, "model": model, "stream": False} if streams else {**body, "model": model}
        result = await self.post_json(url, orjson.dumps(fields), self._headers(api_key))
        if not isinstance(result, dict):
            raise UpstreamError(f"{self.name}: upstream sent an answer that is not an object")
        return result

    def _stream(
        self, url: str, body: dict[str, Any], model: str, api_key: str | None
    ) -> AsyncIterator[ChunkBatch]:
        # Usage is always asked for (accounting and faithful cache replays need it); the
        # pipeline drops the usage chunk again for clients that did not ask.
        options = body.get("stream_options")
        options = {**options, "include_usage": True} if isinstance(options, dict) else _USAGE
        payload = orjson.dumps({**body, "model": model, "stream": True, "stream_options": options})
        headers = self._headers(api_key)
        headers["Accept"] = "text/event-stream"
        return self.post_stream(url, payload, headers)

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        return await self._whole(self._chat_url, body, model, api_key)

    def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        return self._stream(self._chat_url, body, model, api_key)

    async def completions(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        return await self._whole(self._completions_url, body, model, api_key)

    def completions_stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        return self._stream(self._completions_url, body, model, api_key)

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        result = await self._whole(self._embeddings_url, body, model, api_key, streams=False)
        if not isinstance(result.get("data"), list):
            raise UpstreamError(f"{self.name}: upstream sent embeddings without `data`")
        return result

    async def list_models(self) -> list[str]:
        if self.cfg.discovery == "ollama":
            root = self.base_url.removesuffix("/v1")
            data = await self.get_json(root + "/api/tags", self._headers(None))
            items = data.get("models", []) if isinstance(data, dict) else []
            return [str(m.get("name") or m.get("model")) for m in items if isinstance(m, dict)]
        data = await self.get_json(self.base_url + "/models", self._headers(None))
        items = data.get("data", []) if isinstance(data, dict) else []
        return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]


plugin = ProviderPlugin("openai", OpenAIConfig, OpenAIProvider)
