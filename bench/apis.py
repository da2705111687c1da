"""The APIs (doors) a chatgate target is measured through: path, request body, how wrk checks
an answer (`lua/chat.lua`'s `check=`), the modes it has. `chat` is the reference; every other
door's gateway CPU per request is reported against it, and its throughput against the direct
run of the upstream endpoint it calls (`direct` for chat completions, `direct@embeddings` and
`direct@completions` for the doors that call another one)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Body = Callable[[str, str, str], dict[str, Any]]  # (model, prompt, mode) -> request body


MODES = ("non-stream", "stream")


@dataclass(frozen=True)
class Api:
    name: str
    description: str
    path: str
    body: Body
    check: str  # the wrk script's validator: chat, responses, anthropic, ollama, completions…
    modes: tuple[str, ...] = MODES
    upstream: str | None = None  # the upstream path it calls, when not chat completions

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


def _messages(model: str, prompt: str, mode: str) -> dict[str, Any]:
    return {**_chat(model, prompt, mode), "max_tokens": 256}


def _ollama(model: str, prompt: str, mode: str) -> dict[str, Any]:
    # Ollama streams unless told not to.
    return {**_chat(model, prompt, mode), "stream": mode == "stream"}


def _completions(model: str, prompt: str, mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if mode == "stream":
        body["stream"] = True
    return body


def _embeddings(model: str, prompt: str, mode: str) -> dict[str, Any]:
    return {"model": model, "input": prompt}


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
    "anthropic": Api(
        "anthropic",
        "POST /v1/messages (Anthropic Messages)",
        "/v1/messages",
        _messages,
        "anthropic",
    ),
    "ollama": Api(
        "ollama", "POST /api/chat (Ollama, NDJSON stream)", "/api/chat", _ollama, "ollama"
    ),
    "completions": Api(
        "completions",
        "POST /v1/completions (legacy text completions)",
        "/v1/completions",
        _completions,
        "completions",
        upstream="/v1/completions",
    ),
    "embeddings": Api(
        "embeddings",
        "POST /v1/embeddings (non-stream only)",
        "/v1/embeddings",
        _embeddings,
        "embeddings",
        modes=("non-stream",),
        upstream="/v1/embeddings",
    ),
}


def write_bodies(
    work: Path, api: Api, model: str, prompt: str, modes: list[str]
) -> dict[str, Path]:
    """One request body file per mode. The mode is in the prompt: `stream` does not split cache
    keys, so the cache variant would otherwise answer streams with what non-stream stored."""
    bodies = {}
    for mode in modes:
        if mode not in api.modes:
            continue
        path = work / f"body-{api.name}-{mode}.json"
        path.write_text(json.dumps(api.body(model, f"{prompt} ({mode})", mode)))
        bodies[mode] = path
    return bodies
