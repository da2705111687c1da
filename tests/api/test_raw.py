"""What /docs shows for the raw doors (``api.raw``): every door with a summary, a short
description, its request schema, its answer, and its errors in its own shape, including the
refusals made before any door (``api.guard``: 413, 415, 421)."""

from __future__ import annotations

from typing import Any

import pytest

from chatgate.app import create_app
from tests.conftest import gateway_config

OPENAI = ("error", "object")
ANTHROPIC = ("type", "const")
OLLAMA = ("error", "string")
# Every raw door and its error shape: a top-level key and what it holds.
DOORS = {
    "/v1/chat/completions": OPENAI,
    "/v1/completions": OPENAI,
    "/v1/embeddings": OPENAI,
    "/v1/responses": OPENAI,
    "/v1/messages": ANTHROPIC,
    "/v1/messages/count_tokens": ANTHROPIC,
    "/api/chat": OLLAMA,
    "/api/generate": OLLAMA,
}


@pytest.fixture(scope="module")
def paths() -> dict[str, Any]:
    app = create_app(gateway_config("http://127.0.0.1:9"))
    schema: dict[str, Any] = app.api.openapi()
    return schema["paths"]


def test_every_raw_door_is_documented(paths: dict[str, Any]) -> None:
    from chatgate.app import Gateway

    assert set(DOORS) == set(Gateway(gateway_config("http://127.0.0.1:9")).raw)
    for path in DOORS:
        assert path in paths, path
        post = paths[path]["post"]
        assert 10 < len(post["summary"]) < 90, (path, post["summary"])
        assert len(post.get("description", "")) > 60, (path, "no description")
        request = post["requestBody"]["content"]["application/json"]["schema"]
        assert request.get("properties"), (path, "no request fields")
        assert post["responses"]["200"]["content"], path


@pytest.mark.parametrize("path", list(DOORS))
def test_the_refusals_before_a_door_are_in_its_shape(paths: dict[str, Any], path: str) -> None:
    responses = paths[path]["post"]["responses"]
    for status in ("400", "401", "413", "415", "421"):
        assert status in responses, (path, status)
        schema = responses[status]["content"]["application/json"]["schema"]
        key, kind = DOORS[path]
        field = schema["properties"][key]
        assert kind in (field.get("type"), next(iter(field), None)), (path, status, schema)
    # A foreign Origin without a key is a 403 as well, whatever else the door means by one.
    assert "another site" in responses["403"]["description"].lower(), path
