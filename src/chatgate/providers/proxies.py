"""Which outbound proxy an upstream URL goes through: ``proxy:`` in YAML, else the environment.

The environment is read exactly as the ``openai`` SDK's HTTP client (httpx, ``trust_env``) reads
it, so a gateway and the SDK on the same machine agree about every URL:

- ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http ones, ``ALL_PROXY`` for both; the
  lower-case names win over the upper-case ones (``urllib.request.getproxies``, which also drops
  ``HTTP_PROXY`` when ``REQUEST_METHOD`` is set, as under CGI). A value without a scheme is an
  ``http://`` proxy.
- ``NO_PROXY``, comma-separated: ``*`` turns every proxy off; ``example.com`` is that host and
  its subdomains (not ``wwwexample.com``); ``.example.com`` only the subdomains; an IP address or
  ``localhost`` only that host; ``host:port`` only that port; ``scheme://host`` only that scheme.
  Like httpx, a CIDR range (``10.0.0.0/8``) is not a range: it stands for its first address only.
- Of the rules that match a URL the most specific wins (a port first, then the longest host,
  then a scheme), as httpx orders its mounts.

Credentials in a proxy URL (``http://user:pass@proxy:3128``) become ``Proxy-Authorization:
Basic …``; :meth:`Proxy.secrets` is what upstream errors are cleaned of, and :attr:`Proxy.display`
is the URL without them.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies

from chatgate.providers.neterrors import ConnectError

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_MAX_REPLY = 65536
DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
DIRECT = ("none", "")
"""``proxy:`` values that mean no proxy for that provider, whatever the environment says."""


@dataclass(frozen=True)
class Proxy:
    """One proxy server; ``url`` holds the credentials and must never be shown (see display)."""

    url: str = field(repr=False)
    scheme: str
    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value, when the URL names a user."""
        if not self.username and not self.password:
            return None
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return "Basic " + token

    def secrets(self) -> list[str]:
        """What to remove from any message: the password, the pair, its Basic token, the URL."""
        auth = self.authorization
        if auth is None:
            return []
        found = [self.url, auth.split(" ", 1)[1], f"{self.username}:{self.password}"]
        if len(self.password) >= 4:
            found.append(self.password)
        return sorted(set(found), key=len, reverse=True)


def parse_proxy(url: str) -> Proxy:
    """A proxy from its URL (a bare ``host:port`` is an http proxy); ValueError if unusable."""
    url = url.strip()
    full = url if "://" in url else "http://" + url
    parts = urlsplit(full)
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise ValueError(
            f"proxy scheme `{scheme}` is not supported; use one of {', '.join(PROXY_SCHEMES)}"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the proxy URL has an invalid port") from None
    if not parts.hostname:
        raise ValueError("the proxy URL has no host")
    return Proxy(
        url=full,
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


@dataclass(frozen=True)
class _Rule:
    """One httpx-style mount pattern: ``scheme://host:port`` with ``all`` and ``*`` wildcards."""

    scheme: str  # "" for any
    host: str  # "" for any
    port: int | None
    proxy: Proxy | None  # None: go direct
    host_regex: re.Pattern[str] | None

    @classmethod
    def parse(cls, pattern: str, proxy: Proxy | None) -> _Rule:
        parts = urlsplit(pattern)
        scheme = "" if parts.scheme == "all" else parts.scheme.lower()
        netloc = parts.netloc
        port: int | None = None
        host = netloc
        if netloc.startswith("["):  # [v6] or [v6]:port
            end = netloc.find("]")
            host, rest = netloc[1:end], netloc[end + 1 :]
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        elif netloc.count(":") == 1:
            host, _, tail = netloc.partition(":")
            port = int(tail) if tail.isdigit() else None
        host = host.lower()
        regex: re.Pattern[str] | None
        if not host or host == "*":
            host, regex = "", None
        elif host.startswith("*."):  # subdomains only
            regex = re.compile(rf"^.+\.{re.escape(host[2:])}$")
        elif host.startswith("*"):  # the domain and its subdomains
            regex = re.compile(rf"^(.+\.)?{re.escape(host[1:])}$")
        else:
            regex = re.compile(rf"^{re.escape(host)}$")
        return cls(scheme, host, port, proxy, regex)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.host_regex is not None and not self.host_regex.match(host):
            return False
        return self.port is None or self.port == port

    @property
    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))


def _is_ip(text: str, version: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        version(text.split("/")[0])
    except ValueError:
        return False
    return True


class ProxyRules:
    """The proxy for each upstream URL, from environment variables read as httpx reads them."""

    def __init__(self, rules: list[_Rule]) -> None:
        self.rules = sorted(rules, key=lambda r: r.priority)

    @classmethod
    def from_environment(cls, proxies: dict[str, str] | None = None) -> ProxyRules:
        """Rules from ``proxies`` as ``urllib.request.getproxies()`` returns them (the default:
        the process environment). Unusable proxy URLs raise ValueError naming the variable."""
        info = getproxies() if proxies is None else proxies
        rules: list[_Rule] = []
        for scheme in ("http", "https", "all"):
            value = info.get(scheme)
            if value:
                try:
                    proxy = parse_proxy(value)
                except ValueError as exc:
                    raise ValueError(f"{scheme.upper()}_PROXY: {exc}") from None
                rules.append(_Rule.parse(f"{scheme}://", proxy))
        for entry in (host.strip() for host in info.get("no", "").split(",")):
            if entry == "*":
                return cls([])
            if not entry:
                continue
            if "://" in entry:
                pattern = entry
            elif _is_ip(entry, ipaddress.IPv4Address) or entry.lower() == "localhost":
                pattern = f"all://{entry}"
            elif _is_ip(entry, ipaddress.IPv6Address):
                pattern = f"all://[{entry}]"
            else:
                pattern = f"all://*{entry}"
            rules.append(_Rule.parse(pattern, None))
        return cls(rules)

    @classmethod
    def fixed(cls, proxy: Proxy | None) -> ProxyRules:
        """Every URL through ``proxy`` (or none): a provider's own ``proxy:`` setting."""
        return cls([_Rule.parse("all://", proxy)] if proxy is not None else [])

    def proxy_for(self, url: str) -> Proxy | None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        for rule in self.rules:
            if rule.matches(scheme, host, port):
                return rule.proxy
        return None

    def secrets(self) -> list[str]:
        found = {s for rule in self.rules if rule.proxy for s in rule.proxy.secrets()}
        return sorted(found, key=len, reverse=True)


class ProxyError(ConnectError):
    """The proxy refused or failed the tunnel (its message never holds the credentials)."""


async def open_tunnel(
    loop: asyncio.AbstractEventLoop,
    proxy: Proxy,
    authority: str,
    protocol: asyncio.Protocol,
    context: ssl.SSLContext,
    server_hostname: str,
) -> None:
    """``CONNECT authority`` through ``proxy``, then TLS to the origin inside the tunnel, with
    ``protocol`` on top (its ``connection_made`` gets the TLS transport)."""
    opened: asyncio.Future[bytes] = loop.create_future()
    raw, _ = await loop.create_connection(lambda: _TunnelReply(opened), proxy.host, proxy.port)
    try:
        head = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
        if proxy.authorization is not None:
            head += f"proxy-authorization: {proxy.authorization}\r\n"
        raw.write(head.encode() + b"\r\n")
        status_line = await opened
        parts = status_line.split(None, 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if not 200 <= status < 300:
            answer = status_line.decode("latin-1", "replace")[:200]
            raise ProxyError(f"the proxy {proxy.display} refused the tunnel: {answer}")
        tls = await loop.start_tls(raw, protocol, context, server_hostname=server_hostname)
    except BaseException:
        raw.abort()
        raise
    if tls is None:  # pragma: no cover - only when the loop cannot start TLS at all
        raise ProxyError("TLS could not be started inside the proxy tunnel")
    protocol.connection_made(tls)


class _TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT`` up to its blank line; gives its status line."""

    def __init__(self, opened: asyncio.Future[bytes]) -> None:
        self.opened = opened
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.opened.set_result(self.buffer.split(b"\r\n", 1)[0])
        elif len(self.buffer) > _MAX_REPLY:
            self.opened.set_exception(ProxyError("the proxy's CONNECT answer is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                exc or ConnectionResetError("the proxy closed the connection during CONNECT")
            )
