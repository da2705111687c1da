"""Transport errors that say the request never reached the upstream, so trying again is safe.

Shared by every transport behind the seam (:mod:`chatgate.providers.http1`,
:mod:`chatgate.providers.httpx_pool`) and the proxy tunnel (:mod:`chatgate.providers.proxies`):
the retry loop reads "was it sent?" from the type alone.
"""

from __future__ import annotations


class ConnectError(OSError):
    """No connection to the upstream could be made: the request was never sent."""


class ConnectTimeout(ConnectError, TimeoutError):
    """Connecting took longer than the connect timeout (the request was never sent)."""


class ConnectRefused(ConnectError, ConnectionRefusedError):
    """Nothing listens there (the request was never sent)."""
