"""Who is on the other end of a request: the TCP peer, and what trusted proxies say about it.

The peer address comes from the connection (``scope["client"]``; ``chatgate serve`` turns
uvicorn's own X-Forwarded-For handling off). Forwarding headers (``X-Forwarded-For``,
``X-Forwarded-Host``, ``Forwarded``, …) are believed only from a peer in
``server.trusted_proxies``; a request carrying them from anyone else is not "direct", which is
what keeps single-user mode from being handed to every visitor of a proxy on the same host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDING_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-real-ip",
    }
)


def parse_ip(value: str | None) -> IPAddress | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_loopback_ip(value: str | None) -> bool:
    address = parse_ip(value)
    return address is not None and address.is_loopback


class Peers:
    """The trusted proxies, parsed once; asked per request by the doors that need a client
    address (login throttling) or a direct local peer (single-user mode)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies
        )

    def is_trusted(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in net for net in self.trusted)

    def peer(self, scope: Any) -> str | None:
        client = scope.get("client")
        return str(client[0]) if client else None

    def client(self, scope: Any) -> str | None:
        """The client's address: the peer's, or behind trusted proxies the first address in
        X-Forwarded-For (from the right) that is not one of theirs."""
        peer = self.peer(scope)
        if not self.trusted or not self.is_trusted(parse_ip(peer)):
            return peer
        return self._forwarded_client(scope) or peer

    def _forwarded_client(self, scope: Any) -> str | None:
        chain: list[str] = []
        for key, value in scope["headers"]:
            if key == b"x-forwarded-for":
                chain += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
        for hop in reversed(chain):
            if not self.is_trusted(parse_ip(hop)):
                return hop
        return chain[0] if chain else None

    def forwarded_host(self, scope: Any) -> bytes | None:
        """X-Forwarded-Host when a trusted proxy sent it (the name the browser used)."""
        if not self.trusted or not self.is_trusted(parse_ip(self.peer(scope))):
            return None
        for key, value in scope["headers"]:
            if key == b"x-forwarded-host":
                return bytes(value.split(b",")[0].strip())
        return None

    def is_local(self, scope: Any) -> bool:
        """A person on this very machine: a loopback peer with no forwarding headers, or a
        trusted proxy forwarding (X-Forwarded-For) for a loopback client."""
        peer = parse_ip(self.peer(scope))
        if peer is None:
            return False
        forwarded = any(key in FORWARDING_HEADERS for key, _ in scope["headers"])
        if not forwarded:
            return peer.is_loopback
        if not self.is_trusted(peer):
            return False  # a proxy we were not told about: its visitors are not local
        return is_loopback_ip(self._forwarded_client(scope))
