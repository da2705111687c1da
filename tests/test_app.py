"""The top-level ASGI app: an unexpected error is answered in OpenAI's shape, and not handed on
to the server (which would log its traceback a second time)."""

from __future__ import annotations

import logging

import httpx
import pytest

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream


async def test_an_unexpected_error_is_a_500_in_openai_shape_and_not_raised_again(
    fake_server: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(gateway_config(fake_server.base_url))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.api.add_api_route("/boom", boom)
    routes = app.api.router.routes
    routes.insert(0, routes.pop())  # before the web UI's catch-all
    # ASGITransport re-raises whatever the app lets out, as uvicorn would log it: before the
    # fix this request raised RuntimeError here instead of returning the 500.
    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            r = await client.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"]["message"] == "Internal error; see the server log."
    assert "a bug" not in r.text
    logged = [rec for rec in caplog.records if rec.exc_info and "a bug" in str(rec.exc_info[1])]
    assert len(logged) == 1  # by our handler, with the traceback
