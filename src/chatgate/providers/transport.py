"""The one seam every HTTP provider sends through: ``Transport.request(method, url, …)``.

Modelled on httpx's ``AsyncBaseTransport``: one call takes a request and gives back a response
whose headers are in and whose body is read from it. Behind it, one connection pool per origin,
each an :class:`OriginPool`: chatgate's own HTTP/1.1 client (:class:`~chatgate.providers.http1.
HTTP1Pool`, the fast path) or httpx (:mod:`chatgate.providers.httpx_pool`) where that client
does not go: SOCKS and ``https://`` proxies. ``kind`` picks: ``http1`` and ``httpx`` always
use that one, ``auto`` (the default) uses http1 unless the origin's proxy needs httpx.

Which proxy an origin goes through is decided once, when its pool is made, so a request pays
nothing for proxy support beyond the pool lookup it always did.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from chatgate.providers.http1 import Headers, HTTP1Pool, origin_of
from chatgate.providers.proxies import Proxy, ProxyRules

if TYPE_CHECKING:
    from chatgate.providers.httpx_pool import HTTPXPool

TransportKind = Literal["auto", "http1", "httpx"]


class UpstreamResponse(Protocol):
    """A response whose headers have arrived. Read the body whole, or piece by piece; ``close``
    returns the connection to its pool when the body was read whole, else drops it."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Headers: ...
    async def read(self) -> bytes: ...
    def iter_pieces(self) -> AsyncIterator[bytes]: ...
    def close(self) -> None: ...


class OriginPool(Protocol):
    """Connections to one origin; ``target`` is the path and query."""

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> UpstreamResponse: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class TransportSettings:
    ssl: ssl.SSLContext | bool | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_connections: int = 256
    keepalive_expiry: float = 5.0
    kind: TransportKind = "auto"


class Transport:
    """Requests to any URL: a pool per origin, each made on first use with its proxy."""

    def __init__(self, settings: TransportSettings, proxies: ProxyRules) -> None:
        self.settings = settings
        self.proxies = proxies
        self._pools: dict[str, OriginPool] = {}
        self._closed = False

    async def request(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> UpstreamResponse:
        origin, target = origin_of(url)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = self._make_pool(origin)
        return await pool.request(method, target, headers, body)

    def pool_for(self, origin: str) -> OriginPool | None:
        return self._pools.get(origin)

    def _make_pool(self, origin: str) -> OriginPool:
        if self._closed:
            raise ConnectionError("the transport is closed")
        proxy = self.proxies.proxy_for(origin)
        s = self.settings
        pool: type[HTTP1Pool | HTTPXPool] = HTTP1Pool
        if s.kind == "httpx" or (s.kind == "auto" and needs_httpx(proxy)):
            from chatgate.providers.httpx_pool import HTTPXPool  # only when used

            pool = HTTPXPool
        elif needs_httpx(proxy):
            assert proxy is not None
            raise ValueError(
                f"a {proxy.scheme}:// proxy needs `transport: httpx` (or `auto`), not http1"
            )
        return pool(
            origin,
            ssl=s.ssl,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            max_connections=s.max_connections,
            keepalive_expiry=s.keepalive_expiry,
            proxy=proxy,
        )

    async def close(self) -> None:
        self._closed = True
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()


def needs_httpx(proxy: Proxy | None) -> bool:
    """Whether chatgate's own client cannot use ``proxy`` (it speaks plain http:// proxies)."""
    return proxy is not None and proxy.scheme != "http"
