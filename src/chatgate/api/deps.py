"""The one way a door reaches the running app: ``app.state.runtime`` (built by ``app.py``).

Routers depend on these instead of importing the application, so nothing under ``api/`` imports
``app.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from chatgate.api.peers import Peers
from chatgate.state import AppState, Runtime


def runtime_of(app: Any) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def peers_of(app: Any) -> Peers:
    """Who is on the other end of a request (trusted proxies, built once by ``app.py``)."""
    peers: Peers = app.state.peers
    return peers


def app_state(request: Request) -> AppState:
    """The state while serving; 503 while starting up or shutting down."""
    return runtime_of(request.app).require()


State: Any = Depends(app_state)
"""``state: AppState = State`` in a route's parameters."""
