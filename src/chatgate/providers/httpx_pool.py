"""httpx behind the transport seam: for what chatgate's own client does not do (SOCKS and
``https://`` proxies), or everything, with ``transport: httpx``.

Needs httpx (``pip install 'chatgate[httpx]'``, which brings ``socksio`` for SOCKS). The
environment is not read here (``trust_env=False``): the proxy was already chosen by
:class:`~chatgate.providers.proxies.ProxyRules`, with httpx's own rules. Errors are translated to
what :mod:`chatgate.providers.http1` raises: ``ConnectError`` (never sent), ``TimeoutError``,
``ProxyError`` and other ``OSError``. httpcore's debug logs are cleaned of the proxies' credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from chatgate.providers.base import redact
from chatgate.providers.http1 import Headers
from chatgate.providers.neterrors import ConnectError, ConnectTimeout
from chatgate.providers.proxies import Proxy, ProxyError

if TYPE_CHECKING:
    from ssl import SSLContext

    import httpx

_closing: set[asyncio.Task[None]] = set()


class _Redactor(logging.Filter):
    """Cleans httpcore's debug traces of proxy credentials (its SOCKS trace logs them whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def add(self, proxy: Proxy) -> None:
        found = {*self.secrets, *proxy.secrets(), proxy.password}
        self.secrets = sorted((s for s in found if s), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            cleaned = redact(text, self.secrets)
            if cleaned != text:
                record.msg, record.args = cleaned, None
        return True


_REDACTOR = _Redactor()
for _name in ("connection", "http11", "http2", "proxy", "socks"):
    logging.getLogger(f"httpcore.{_name}").addFilter(_REDACTOR)


@contextmanager
def _translated() -> Iterator[None]:
    import httpx

    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise ConnectTimeout(str(exc) or "connecting timed out") from None
    except httpx.TimeoutException as exc:
        raise TimeoutError(str(exc) or "upstream timed out") from None
    except httpx.ProxyError as exc:
        raise ProxyError(f"the proxy refused the tunnel: {exc}") from None
    except httpx.ConnectError as exc:
        raise ConnectError(str(exc) or type(exc).__name__) from None
    except httpx.TransportError as exc:
        raise ConnectionError(str(exc) or type(exc).__name__) from None


class HTTPXResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers = Headers()
        for name, value in resp.headers.multi_items():
            self.headers.add(name.lower(), value)

    async def read(self) -> bytes:
        with _translated():
            try:
                return await self._resp.aread()
            finally:
                await self._resp.aclose()

    async def iter_pieces(self) -> AsyncIterator[bytes]:
        with _translated():
            try:
                async for piece in self._resp.aiter_bytes():
                    if piece:
                        yield piece
            finally:
                await self._resp.aclose()

    def close(self) -> None:
        if not self._resp.is_closed:  # a body not read to its end: drop the connection
            task = asyncio.get_running_loop().create_task(self._resp.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)


class HTTPXPool:
    """One origin through an ``httpx.AsyncClient`` (its own pool, proxy, limits, timeouts)."""

    def __init__(
        self,
        origin: str,
        *,
        ssl: SSLContext | bool | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        max_connections: int = 256,
        keepalive_expiry: float = 5.0,
        proxy: Proxy | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - installed with the dev extras
            raise ConnectionError(
                "this upstream needs the httpx transport: pip install 'chatgate[httpx]'"
            ) from None

        self.origin = origin
        if proxy is not None and proxy.authorization is not None:
            _REDACTOR.add(proxy)
        try:
            self.client = httpx.AsyncClient(
                verify=True if ssl is None else ssl,
                proxy=proxy.url if proxy is not None else None,
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(
                    connect=connect_timeout,
                    read=read_timeout,
                    write=read_timeout,
                    pool=None,
                ),
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=max_connections,
                    keepalive_expiry=keepalive_expiry,
                ),
            )
        except ImportError as exc:  # socks5:// without socksio
            raise ConnectionError(f"{exc} (pip install 'chatgate[httpx]')") from None

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> HTTPXResponse:
        client = self.client
        with _translated():
            request = client.build_request(
                method, self.origin + target, headers=headers, content=body or None
            )
            return HTTPXResponse(await client.send(request, stream=True))

    async def close(self) -> None:
        await self.client.aclose()
