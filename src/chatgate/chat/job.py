"""A generation job's record: what started it (``Spec``), what it has produced (``Job``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatgate.chat.joblog import JobLog, LogEvent
from chatgate.chat.tree import Row, Tree
from chatgate.gateway.path import Exchange


@dataclass
class Spec:
    """Everything a job needs, prepared by the request that started it."""

    generation_id: str
    user_id: str
    conversation: Row
    tree: Tree
    branch: list[str]  # root → the message being answered
    message_id: str  # the assistant message, stored with status "streaming"
    model: str
    window: int
    exchange: Exchange  # admitted: the caller's identity and rate-limit reservation
    params: dict[str, Any] = field(default_factory=dict)
    regenerate: bool = False
    title_from: str | None = None  # the first user message, when the conversation has no title


class Job:
    __slots__ = (
        "content",
        "conversation_id",
        "dirty",
        "ended",
        "id",
        "log",
        "message_id",
        "reasoning",
        "stop_requested",
        "task",
        "user_id",
    )

    def __init__(self, spec: Spec, mirror: Callable[[str, LogEvent], None] | None) -> None:
        self.id = spec.generation_id
        self.user_id = spec.user_id
        self.conversation_id = spec.conversation["id"]
        self.message_id = spec.message_id
        self.log = JobLog(spec.generation_id, mirror)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.dirty = False
        self.stop_requested = False
        self.ended = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
