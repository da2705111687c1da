"""The APIs (doors) a chatgate target is measured through: path, request body, how wrk checks
an answer. `chat` is the reference; every other door's cost is reported against it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Body = Callable[[str, str, str], dict[str, Any]]  # (model, prompt, mode) -> request body


@dataclass(frozen=True)
class Api:
    name: str
    description: str
    path: str
    body: Body
    check: str  # the wrk script's validator: "chat" or "responses"

    def suffix(self) -> str:
        """What a target's name gets for this API (nothing for the reference)."""
        return "" if self.name == REFERENCE else "@" + self.name


def _chat(model: str, prompt: str, mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if mode == "stream":
        body["stream"] = True
    return body


def _responses(store: bool) -> Body:
    def body(model: str, prompt: str, mode: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "input": prompt}
        if mode == "stream":
            out["stream"] = True
        if not store:
            out["store"] = False
        return out

    return body


REFERENCE = "chat"
APIS: dict[str, Api] = {
    "chat": Api("chat", "POST /v1/chat/completions", "/v1/chat/completions", _chat, "chat"),
    "responses": Api(
        "responses",
        "POST /v1/responses, stored (store defaults to true: one database row per answer)",
        "/v1/responses",
        _responses(store=True),
        "responses",
    ),
    "responses-nostore": Api(
        "responses-nostore",
        "POST /v1/responses with store: false (Codex's way)",
        "/v1/responses",
        _responses(store=False),
        "responses",
    ),
}


def write_bodies(
    work: Path, api: Api, model: str, prompt: str, modes: list[str]
) -> dict[str, Path]:
    """One request body file per mode. The mode is in the prompt: `stream` does not split cache
    keys, so the cache variant would otherwise answer streams with what non-stream stored."""
    bodies = {}
    for mode in modes:
        path = work / f"body-{api.name}-{mode}.json"
        path.write_text(json.dumps(api.body(model, f"{prompt} ({mode})", mode)))
        bodies[mode] = path
    return bodies
