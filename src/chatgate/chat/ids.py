"""Public identifiers: a prefix, 12 hex digits of milliseconds (so ids sort by creation), and
64 random bits (so they cannot be guessed)."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
