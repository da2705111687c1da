"""A proxy.py plug-in: the proxy alone resolves ``*.internal`` names, to 127.0.0.1.

Loaded by the proxy process that :class:`tests.fakes.proxy.LoopbackProxy` starts, so an upstream
at ``upstream.internal`` is reachable through the proxy and nowhere else.
"""

from __future__ import annotations

from typing import Any

from proxy.http.proxy import HttpProxyBasePlugin


class InternalHosts(HttpProxyBasePlugin):  # type: ignore[misc]
    def resolve_dns(self, host: str, port: int) -> tuple[Any, Any]:
        if host.endswith(".internal"):
            return "127.0.0.1", None
        return None, None
