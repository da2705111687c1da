"""Token counting for the context builder: an estimate calibrated per model.

No tokenizer ships that works offline for every upstream, so the count starts from UTF-8 bytes
divided by four (about right for English; it overcounts rather than undercounts Cyrillic, which
is the safe side for fitting a window) and is then scaled by the ratio of what the upstream
reported as ``prompt_tokens`` to what we estimated for the same prompt, averaged per model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

PER_MESSAGE = 4  # role and framing tokens chat templates add around each message
_ALPHA = 0.3  # weight of the newest observation in the running ratio
_MIN_RATIO, _MAX_RATIO = 0.25, 4.0


def raw_tokens(text: str) -> float:
    return len(text.encode()) / 4


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class TokenCounter:
    def __init__(self) -> None:
        self._ratio: dict[str, float] = {}

    def ratio(self, model: str) -> float:
        return self._ratio.get(model, 1.0)

    def count(self, model: str, text: str) -> int:
        return math.ceil(raw_tokens(text) * self.ratio(model))

    def message(self, model: str, message: dict[str, Any]) -> int:
        return self.count(model, message_text(message)) + PER_MESSAGE

    def raw_prompt(self, messages: Iterable[dict[str, Any]]) -> float:
        """The uncalibrated estimate of a whole prompt (what ``calibrate`` compares against)."""
        return sum(raw_tokens(message_text(m)) + PER_MESSAGE for m in messages)

    def calibrate(self, model: str, raw_estimate: float, reported: int) -> None:
        """Move the model's ratio towards ``reported / raw_estimate``."""
        if raw_estimate < 8 or reported <= 0:
            return  # too small to say anything about the ratio
        observed = min(_MAX_RATIO, max(_MIN_RATIO, reported / raw_estimate))
        old = self._ratio.get(model)
        self._ratio[model] = observed if old is None else old + _ALPHA * (observed - old)
