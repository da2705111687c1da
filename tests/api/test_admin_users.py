"""The users' half of the admin API lives in ``api.admin_users`` (``api.admin``: keys, usage,
upstreams, cache): the same URLs, each behind the admin check. Their
behaviour is tested with the rest of the admin API in ``test_admin.py``."""

from __future__ import annotations

from fastapi.routing import APIRoute

from chatgate.app import create_app
from tests.conftest import gateway_config

USERS_ROUTES = {
    ("GET", "/admin/users"),
    ("GET", "/admin/users/{user_id}"),
    ("PATCH", "/admin/users/{user_id}"),
    ("POST", "/admin/users/{user_id}/password"),
    ("POST", "/admin/users/{user_id}/disable"),
    ("POST", "/admin/users/{user_id}/enable"),
    ("POST", "/admin/users/{user_id}/sign-out"),
}


def _routes(routes: list[object]) -> list[tuple[str, str]]:
    return [
        (method, r.path) for r in routes if isinstance(r, APIRoute) for method in r.methods or ()
    ]


def test_the_users_routes_live_in_admin_users() -> None:
    from chatgate.api.admin import admin_router, require_admin
    from chatgate.api.admin_users import admin_users_router

    users = admin_users_router()
    assert set(_routes(users.routes)) == USERS_ROUTES
    assert all(d.dependency is require_admin for d in users.dependencies)
    assert not [r for r in _routes(admin_router().routes) if r[1].startswith("/admin/users")]


def test_the_app_serves_the_same_users_urls() -> None:
    schema = create_app(gateway_config("http://127.0.0.1:9")).api.openapi()
    served = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/admin/users")
        for method in item
    }
    assert served == USERS_ROUTES
