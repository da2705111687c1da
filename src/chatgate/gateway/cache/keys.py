"""The cache key: a stable hash of everything that changes the upstream's answer.

Counted: the deployment (provider and upstream model, after alias resolution), the messages as
sent upstream (after the model's system prompt and the history rules), every other body field —
sampling parameters, tools, tool_choice, response_format, stop, n, seed, logprobs, and unknown
extras, since an unknown field may well change the answer.

Counted too, when ``cache.scope`` is not ``global``: the caller's partition, so one client can
neither read another's answers nor learn that it sent a prompt.

Not counted, because they don't change the answer: ``stream`` and ``stream_options`` (a streamed
answer serves a non-streamed request and back), ``user``, ``metadata``, ``store``,
``service_tier``, ``prompt_cache_key``, ``safety_identifier``, request ids; nor the reasoning
mode — the cache holds the upstream's answer and every mode is applied to it on the way out.

Other operations are keyed apart from chat (``kind``): legacy completions by whether they
stream too, since a ``text_completion`` stream and a whole one are not converted into each
other; embeddings (always whole, asked for as floats) by their input and options.

Canonical form: JSON with sorted keys and no whitespace (orjson), so key order and formatting
never matter; integral floats in sampling fields are normalised (``1`` and ``1.0`` are the same).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

VERSION = b"chatgate-cache-v1\n"

IGNORED = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "request_id",
    }
)
_FLOATS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})


def cache_key(body: dict[str, Any], deployment: str, kind: str = "", partition: str = "") -> bytes:
    """32-byte key for ``body`` (as sent upstream) on ``deployment`` (``provider/model``).
    ``kind`` is empty for chat, else the operation (``completions``, ``completions+stream``,
    ``embeddings``); ``partition`` is ``cache.scope``'s holder (``k:<key id>``, ``u:<user id>``;
    empty for the shared global cache, whose keys are those of before scopes existed)."""
    canonical: dict[str, Any] = {}
    for name, value in body.items():
        if name in IGNORED:
            continue
        if name in _FLOATS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        canonical[name] = value
    payload = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(VERSION, digest_size=32)
    if partition:
        digest.update(b"scope:" + partition.encode() + b"\n")
    digest.update(deployment.encode())
    if kind:
        digest.update(b"\n" + kind.encode())
    digest.update(b"\n")
    digest.update(payload)
    return digest.digest()
