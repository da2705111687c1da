"""How chatgate serves the built UI (src/chatgate/api/ui.py), without a browser."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from chatgate.api.ui import CSP, ui_router
from chatgate.errors import GatewayError


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(
        '<!doctype html><script type="module" src="/assets/app-abc123.js"></script>'
    )
    (tmp_path / "assets" / "app-abc123.js").write_text("console.log('ui')")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    (tmp_path.parent / "secret.txt").write_text("not for you")
    return tmp_path


def client_for(static: Path) -> TestClient:
    app = FastAPI()

    @app.exception_handler(GatewayError)
    async def gateway_error(_request: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status)

    @app.get("/api/known")
    async def known() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(ui_router(static))
    return TestClient(app)


def test_index_and_spa_routes_carry_the_csp(built: Path) -> None:
    with client_for(built) as c:
        for path in ("/", "/c/abc123", "/settings/deep/link"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "app-abc123.js" in r.text
        assert "script-src 'self'" in CSP and "'unsafe-eval'" not in CSP
        assert "frame-ancestors 'none'" in CSP and "object-src 'none'" in CSP


def test_hashed_assets_are_cached_for_a_year(built: Path) -> None:
    with client_for(built) as c:
        r = c.get("/assets/app-abc123.js")
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "javascript" in r.headers["content-type"]
        assert c.get("/favicon.svg").status_code == 200
        missing = c.get("/assets/app-zzz.js")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/json")


def test_no_path_escapes_the_static_dir(built: Path) -> None:
    with client_for(built) as c:
        for path in (
            "/assets/../../secret.txt",
            "/assets/%2e%2e/%2e%2e/secret.txt",
            "/../secret.txt",
        ):
            r = c.get(path)
            assert "not for you" not in r.text, path


def test_api_paths_never_fall_back_to_the_page(built: Path) -> None:
    with client_for(built) as c:
        assert c.get("/api/known").json() == {"ok": True}
        for path in ("/api/unknown", "/v1/nope", "/admin/x", "/health/x"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert not r.headers["content-type"].startswith("text/html"), path
        # Other methods are not the UI's: a 404, not a 405 from the catch-all.
        assert c.post("/somewhere", json={}).status_code == 404
        assert c.delete("/").status_code in (404, 405)


def test_unbuilt_ui_says_how_to_build_it(tmp_path: Path) -> None:
    with client_for(tmp_path) as c:
        r = c.get("/")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("text/html")
        assert "make ui" in r.text


def test_the_gateway_serves_api_and_ui_side_by_side(ui_url: str) -> None:
    with httpx.Client(base_url=ui_url, timeout=30) as c:
        page = c.get("/")
        assert page.status_code in (200, 503)
        assert page.headers["content-security-policy"] == CSP
        assert c.get("/v1/models").json()["object"] == "list"
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/openapi.json").status_code == 200
        nope = c.get("/v1/nope")
        assert nope.status_code == 404 and "error" in nope.json()
        assert c.post("/not-a-route", json={}).status_code == 404
