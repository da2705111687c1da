"""``gigachat`` provider: Sber's GigaChat API behind its OAuth token, spoken to as OpenAI.

Requests and answers are translated by :mod:`chatgate.providers.gigachat_wire` (OpenAI tools
as GigaChat functions, both ways, streams included; images uploaded to its file storage first
and named in ``attachments``: :mod:`chatgate.providers.gigachat_files`). Its model list mixes
chat models and embedders (``type: embedder``), served through ``/v1/embeddings``. The OAuth
token is fetched once for all concurrent callers and renewed ``token_margin_s`` before its
``expires_at``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import orjson
from pydantic import Field, SecretStr, model_validator

from chatgate.errors import InvalidRequestError, UpstreamError
from chatgate.protocol.openai import ChunkBatch, completion_id
from chatgate.providers.base import ProviderPlugin
from chatgate.providers.gigachat_files import Image, Uploads, multipart, parse_image
from chatgate.providers.gigachat_wire import image_urls, to_gigachat, to_openai
from chatgate.providers.openai import HTTPConfig, HTTPUpstream

__all__ = ["GigaChatConfig", "GigaChatProvider", "plugin", "to_gigachat", "to_openai"]

DEFAULT_BASE_URL = "https://gigachat.devices.sberbank.ru/api/v1"
DEFAULT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_SCOPE = "GIGACHAT_API_PERS"
T = TypeVar("T")
_JSON = "application/json"


class GigaChatConfig(HTTPConfig):
    type: Literal["gigachat"] = "gigachat"
    auth_url: str | None = Field(None, description=f"OAuth endpoint; {DEFAULT_AUTH_URL} if unset.")
    scope: str | None = Field(None, description=f"OAuth scope; {DEFAULT_SCOPE} if unset.")
    credentials: SecretStr | None = Field(
        None, description="Authorization key (base64 client_id:secret); api_keys add more."
    )

    @model_validator(mode="after")
    def _check_credentials(self) -> GigaChatConfig:
        if self.credentials is None and not self.api_keys:
            raise ValueError("credentials is required for a gigachat provider")
        return self

    def pool_keys(self) -> list[str]:
        # The key pool rotates authorization keys; `credentials` is the first of them.
        keys = super().pool_keys()
        if self.credentials is not None:
            keys.insert(0, self.credentials.get_secret_value())
        return keys


@dataclass(slots=True)
class _Token:
    value: str | None = None
    expires_at: float = 0.0  # unix seconds
    pending: asyncio.Future[str] | None = None
    renewed_at: float = 0.0  # when a renewal behind the callers' backs last started


class GigaChatProvider(HTTPUpstream[GigaChatConfig]):
    token_margin_s = 60.0  # renew this long before the token's expiry, while it still works
    token_grace_s = 5.0  # a token this close to its expiry is not sent any more: wait for one

    def __init__(self, name: str, cfg: GigaChatConfig) -> None:
        super().__init__(name, cfg)
        self.base_url = (cfg.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.auth_url = cfg.auth_url or DEFAULT_AUTH_URL
        self.scope = cfg.scope or DEFAULT_SCOPE
        creds = cfg.credentials.get_secret_value() if cfg.credentials else None
        self.credentials = creds or (self.keys[0] if self.keys else "")
        self._tokens: dict[str, _Token] = {}  # per credentials: the key pool may rotate them
        self._embedders: set[str] = set()  # listed models of type "embedder"
        self._uploads = Uploads()  # images already in GigaChat's storage

    async def close(self) -> None:
        for slot in self._tokens.values():
            if slot.pending is not None:
                slot.pending.cancel()  # a renewal nobody waits for
        await super().close()

    def secrets(self) -> list[str]:
        tokens = [t.value for t in self._tokens.values() if t.value]
        return [self.credentials, *super().secrets(), *tokens]

    async def access_token(self, credentials: str | None = None, stale: str | None = None) -> str:
        """A valid token; concurrent callers share one fetch. ``stale``: a token the API refused.

        Within ``token_margin_s`` of its expiry the token is still handed out while a new one
        is fetched behind the callers' backs, so nobody waits for the renewal."""
        creds = credentials or self.credentials
        slot = self._tokens.setdefault(creds, _Token())
        now = time.time()
        if slot.value is not None and slot.value != stale:
            if now < slot.expires_at - self.token_margin_s:
                return slot.value
            if now < slot.expires_at - self.token_grace_s:
                if slot.pending is None and now - slot.renewed_at >= self.token_grace_s:
                    slot.renewed_at = now  # a failing renewal is retried at most this often
                    self._fetch(creds, slot)
                return slot.value
        # shield: a waiter that is cancelled must not cancel the fetch the others wait on
        return await asyncio.shield(slot.pending or self._fetch(creds, slot))

    def _fetch(self, credentials: str, slot: _Token) -> asyncio.Future[str]:
        fut = asyncio.ensure_future(self._fetch_token(credentials, slot))
        slot.pending = fut
        fut.add_done_callback(lambda f: _settle(slot, f))
        return fut

    async def _fetch_token(self, credentials: str, slot: _Token) -> str:
        headers = {
            "Authorization": "Basic " + credentials,
            "RqUID": str(uuid.uuid4()),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        body = urlencode({"scope": self.scope}).encode()
        try:
            data = await self.post_json(self.auth_url, body, headers)
        except UpstreamError as exc:
            status, detail = exc.upstream_status, exc.message.removeprefix(self.name + ": ")
            # A refused oauth call means our credentials or scope are wrong, never the client's
            # request: report it as a 401 so it stays a 502 and the key pool disables the key.
            if status in (400, 401, 403):
                status = 401
            raise UpstreamError(
                f"{self.name}: GigaChat authorization failed ({detail})",
                upstream_status=status,
                retry_after=exc.retry_after,
            ) from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"{self.name}: GigaChat oauth answer has no access_token")
        slot.expires_at = _expiry(data)
        slot.value = token
        return token

    async def _authorized(self, api_key: str | None, call: Callable[[str], Awaitable[T]]) -> T:
        """``call(token)``; on a 401 from the API, refresh the token once and call again."""
        token = await self.access_token(api_key)
        try:
            return await call(token)
        except UpstreamError as exc:
            if exc.upstream_status != 401:
                raise
        return await call(await self.access_token(api_key, stale=token))

    def _headers(self, token: str, accept: str = _JSON) -> dict[str, str]:
        return {"Authorization": "Bearer " + token, "Content-Type": _JSON, "Accept": accept}

    async def _files(
        self, body: dict[str, Any], api_key: str | None
    ) -> tuple[dict[str, str], bool]:
        """Each image URL of ``body`` -> its file id in GigaChat's storage, uploaded once per
        credentials and content (every image checked, 400, before any goes up); and whether
        some were uploaded by an earlier request (they may be gone since)."""
        images = {url: parse_image(url) for url in image_urls(body)}
        credentials = api_key or self.credentials
        earlier = any(self._uploads.known(credentials, image) for image in images.values())

        async def upload(image: Image) -> str:
            return await self._authorized(api_key, lambda token: self._upload(token, image))

        files = {
            url: await self._uploads.file_id(credentials, image, upload)
            for url, image in images.items()
        }
        return files, earlier

    async def _upload(self, token: str, image: Image) -> str:
        payload, content_type = multipart(image)
        headers = {"Authorization": "Bearer " + token, "Content-Type": content_type}
        data = await self.post_json(self.base_url + "/files", payload, {**headers, "Accept": _JSON})
        file_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise UpstreamError(f"{self.name}: GigaChat's file upload answered no id")
        return file_id

    def _stale(self, exc: UpstreamError, api_key: str | None, files: dict[str, str]) -> bool:
        """Whether a refused request named stored files, which may be gone from GigaChat's
        storage: then they are forgotten, so that they are uploaded again."""
        if not files or exc.upstream_status not in (400, 403, 404, 422):
            return False
        self._uploads.forget(api_key or self.credentials, set(files.values()))
        return True

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        for retry in (False, True):
            files, earlier = await self._files(body, api_key)
            payload = orjson.dumps(to_gigachat(body, model, stream=False, files=files))
            try:
                result = await self._whole(payload, api_key)
                break
            except UpstreamError as exc:
                # a file uploaded earlier and refused now: uploaded again, asked again once
                if not (self._stale(exc, api_key, files) and earlier) or retry:
                    raise
        if not isinstance(result, dict):
            raise UpstreamError(f"{self.name}: upstream sent a completion that is not an object")
        return to_openai(result, model, "chat.completion", completion_id())

    async def _whole(self, payload: bytes, api_key: str | None) -> Any:
        url = self.base_url + "/chat/completions"
        return await self._authorized(
            api_key, lambda token: self.post_json(url, payload, self._headers(token))
        )

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        cid = completion_id()
        for retry in (False, True):
            files, earlier = await self._files(body, api_key)
            payload = orjson.dumps(to_gigachat(body, model, stream=True, files=files))
            started = False
            try:
                async for batch in self._stream(payload, model, cid, api_key):
                    started = True
                    yield batch
                return
            except UpstreamError as exc:
                stale = self._stale(exc, api_key, files)
                if started or retry or not (stale and earlier):
                    raise

    async def _stream(
        self, payload: bytes, model: str, cid: str, api_key: str | None
    ) -> AsyncIterator[ChunkBatch]:
        url = self.base_url + "/chat/completions"
        stale: str | None = None
        for attempt in (0, 1):
            token = await self.access_token(api_key, stale)
            started = False
            try:
                async for batch in self.post_stream(
                    url, payload, self._headers(token, "text/event-stream")
                ):
                    started = True
                    yield [to_openai(c, model, "chat.completion.chunk", cid) for c in batch]
                return
            except UpstreamError as exc:
                if started or attempt or exc.upstream_status != 401:
                    raise
                stale = token

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        """GigaChat's ``/embeddings`` (model ``Embeddings`` or ``EmbeddingsGigaR``): it takes
        an array of strings and reports usage per item; OpenAI's shape sums it."""
        value = body.get("input")
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidRequestError(
                "GigaChat embeds text input only, not token arrays.",
                param="input",
                code="invalid_value",
            )
        payload = orjson.dumps({"model": model, "input": texts})
        url = self.base_url + "/embeddings"
        result = await self._authorized(
            api_key, lambda token: self.post_json(url, payload, self._headers(token))
        )
        items = result.get("data") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise UpstreamError(f"{self.name}: upstream sent embeddings without `data`")
        data, tokens = [], 0
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise UpstreamError(
                    f"{self.name}: upstream sent an embedding that is not an object"
                )
            usage = item.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                tokens += usage["prompt_tokens"]
            data.append(
                {
                    "object": "embedding",
                    "index": item.get("index", i),
                    "embedding": item.get("embedding"),
                }
            )
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def list_models(self) -> list[str]:
        data = await self._authorized(None, self._get_models)
        items = data.get("data", []) if isinstance(data, dict) else []
        models = [m for m in items if isinstance(m, dict) and "id" in m]
        # The list holds embedding models too (type "embedder"): routable for /v1/embeddings.
        self._embedders = {str(m["id"]) for m in models if m.get("type") == "embedder"}
        return [str(m["id"]) for m in models]

    def model_kind(self, model: str) -> Literal["chat", "embeddings"]:
        # Unlisted (configured) names: GigaChat's embedders are all named Embeddings*.
        embedder = model in self._embedders or model.startswith("Embeddings")
        return "embeddings" if embedder else "chat"

    async def _get_models(self, token: str) -> Any:
        return await self.get_json(self.base_url + "/models", self._headers(token))


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _expiry(answer: dict[str, Any]) -> float:
    """When the token in GigaChat's oauth ``answer`` expires, in unix seconds: its
    ``expires_at`` (documented in milliseconds; a value in seconds is taken as such), else
    OAuth's ``expires_in``, else the documented 30 minutes from now."""
    expires_at = _number(answer.get("expires_at"))
    if expires_at is not None:
        return expires_at / 1000 if expires_at > 1e11 else expires_at
    expires_in = _number(answer.get("expires_in"))
    return time.time() + (expires_in if expires_in is not None else 1800)


def _settle(slot: _Token, fut: asyncio.Future[str]) -> None:
    if slot.pending is fut:
        slot.pending = None
    if not fut.cancelled():
        fut.exception()  # retrieved here so a fetch nobody awaits any more is not logged


plugin = ProviderPlugin("gigachat", GigaChatConfig, GigaChatProvider)
