"""The web chat UI: the built front end (``make ui`` → ``chatgate/static``) served at ``/``.

``/`` and any other non-API path answer ``index.html`` (the UI routes in the browser), with a
strict Content-Security-Policy so model output rendered in the page can never run script.
Hashed files under ``/assets/`` are cached for a year. Included last, so every API route wins.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from chatgate.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page names the current hashed bundle: always revalidate it.
    "Cache-Control": "no-cache",
}
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
# Paths that belong to the API and never fall back to the UI (a typo there is a JSON 404).
API_PREFIXES = (
    "api/",
    "v1/",
    "admin/",
    "chatgpt/",
    "gigachat/",
    "docs",
    "redoc",
    "openapi.json",
    "health",
    "ready",
    "metrics",
)

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chatgate</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>chatgate</h1>
<p>The web UI is not built. Run <code>make ui</code> (or <code>make run</code>, which builds it),
then reload this page.</p>
<p>The API is up: <a href="/docs">/docs</a>, <code>POST /v1/chat/completions</code>,
<a href="/v1/models">/v1/models</a>.</p>
</body></html>
"""


class UiRoute(APIRoute):
    """Matches only GET/HEAD of non-API paths: anything else is not the UI's, so a POST to an
    unknown path stays a 404 (not a 405 from a path match) and API typos stay JSON errors."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        if scope["path"].lstrip("/").startswith(API_PREFIXES):
            return Match.NONE, {}
        return super().matches(scope)


def ui_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    router = APIRouter(include_in_schema=False, route_class=UiRoute)
    root = static_dir.resolve()
    assets = root / "assets"

    def page() -> Response:
        index = root / "index.html"
        try:
            body = index.read_bytes()
        except FileNotFoundError:
            return HTMLResponse(NOT_BUILT, status_code=503, headers=PAGE_HEADERS)
        return HTMLResponse(body, headers=PAGE_HEADERS)

    def inside(base: Path, rel: str) -> Path | None:
        """``base/rel`` if it is a file inside ``base`` (no ``..`` escapes), else None."""
        try:
            path = (base / rel).resolve()
        except (OSError, ValueError):
            return None
        if not path.is_relative_to(base) or not path.is_file():
            return None
        return path

    @router.api_route("/", methods=["GET", "HEAD"])
    async def index(request: Request) -> Response:
        answer = page()
        if request.method == "HEAD" and answer.status_code == 503:
            # Ollama's clients probe `HEAD /` to see that the server is up: it is, built UI
            # or not (a checkout that never ran the front end's build).
            return Response(status_code=200, headers=PAGE_HEADERS)
        return answer

    @router.get("/assets/{rel:path}")
    async def asset(rel: str) -> Response:
        path = inside(assets, rel)
        if path is None:
            raise NotFoundError("Not found.")
        return FileResponse(path, headers=ASSET_HEADERS)

    @router.get("/{rel:path}")
    async def fallback(rel: str) -> Response:
        # Top-level files of the build (favicon.svg, ...); anything else is a UI route.
        if "/" not in rel:
            path = inside(root, rel)
            if path is not None and path.name != "index.html":
                return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
        return page()

    return router
