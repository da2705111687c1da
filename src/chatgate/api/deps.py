"""The one way a door reaches the running app: ``app.state.runtime`` (built by ``app.py``).

Routers depend on these instead of importing the application, so nothing under ``api/`` imports
``app.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from chatgate.state import AppState, Runtime


def runtime_of(app: Any) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


def app_state(request: Request) -> AppState:
    """The state while serving; 503 while starting up or shutting down."""
    return runtime_of(request.app).require()


State: Any = Depends(app_state)
"""``state: AppState = State`` in a route's parameters."""
