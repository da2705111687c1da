"""Conversations and messages in the database; every read and write is scoped to its user.

Reads use Core rows turned into plain dicts (no ORM objects: a 2,000-message conversation loads
in one query and serialises straight to JSON). A conversation of another user is simply not
found, so the API answers 404 and leaks nothing about its existence.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, select, update

from chatgate.chat.ids import new_id
from chatgate.errors import NotFoundError
from chatgate.storage import Conversation, Database, Message
from chatgate.storage.base import utcnow

Row = dict[str, Any]

CONVERSATION_FIELDS = (
    "id",
    "title",
    "model",
    "system_prompt",
    "params",
    "pinned",
    "created_at",
    "updated_at",
    "active_leaf_id",
)
MESSAGE_FIELDS = (
    "id",
    "parent_id",
    "role",
    "content",
    "reasoning",
    "status",
    "model",
    "generation_id",
    "usage",
    "context",
    "error",
    "created_at",
    "updated_at",
)
_CONV_COLS = [getattr(Conversation, f) for f in CONVERSATION_FIELDS]
_MSG_COLS = [getattr(Message, f) for f in MESSAGE_FIELDS]
EDITABLE = frozenset({"title", "pinned", "model", "system_prompt", "params", "active_leaf_id"})


def conversation_not_found() -> NotFoundError:
    return NotFoundError("Conversation not found.", code="conversation_not_found")


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- conversations ---------------------------------------------------------------------------
    async def list_for(self, user_id: str, limit: int = 100, offset: int = 0) -> builtins.list[Row]:
        """Pinned first, then the most recently updated."""
        query = (
            select(*_CONV_COLS)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id)
            .limit(limit)
            .offset(offset)
        )
        return await self._rows(query)

    async def create(self, user_id: str, values: Row) -> Row:
        now = utcnow()
        row = {
            "id": new_id("c"),
            "title": "",
            "system_prompt": None,
            "params": {},
            "pinned": False,
            "active_leaf_id": None,
            **values,
            "user_id": user_id,
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.session() as s:
            await s.execute(insert(Conversation).values(**row))
        return {k: row[k] for k in CONVERSATION_FIELDS}

    async def get(self, user_id: str, cid: str) -> Row:
        query = select(*_CONV_COLS).where(Conversation.id == cid, Conversation.user_id == user_id)
        rows = await self._rows(query)
        if not rows:
            raise conversation_not_found()
        return rows[0]

    async def update(self, user_id: str, cid: str, values: Row) -> Row:
        values = {k: v for k, v in values.items() if k in EDITABLE}
        if values:
            values["updated_at"] = utcnow()
            stmt = (
                update(Conversation)
                .where(Conversation.id == cid, Conversation.user_id == user_id)
                .values(**values)
            )
            async with self.db.session() as s:
                result = await s.execute(stmt, execution_options={"synchronize_session": False})
                if not getattr(result, "rowcount", 1):
                    raise conversation_not_found()
        return await self.get(user_id, cid)

    async def delete(self, user_id: str, cid: str) -> None:
        stmt = delete(Conversation).where(Conversation.id == cid, Conversation.user_id == user_id)
        async with self.db.session() as s:
            result = await s.execute(stmt, execution_options={"synchronize_session": False})
            if not getattr(result, "rowcount", 1):
                raise conversation_not_found()

    async def set_title(self, cid: str, title: str) -> None:
        stmt = update(Conversation).where(Conversation.id == cid).values(title=title[:300])
        async with self.db.session() as s:
            await s.execute(stmt, execution_options={"synchronize_session": False})

    # -- messages --------------------------------------------------------------------------------
    async def messages(self, cid: str) -> builtins.list[Row]:
        """All messages of a conversation, in creation order (the caller checked the owner)."""
        query = select(*_MSG_COLS).where(Message.conversation_id == cid).order_by(Message.num)
        return await self._rows(query)

    async def add_messages(
        self, cid: str, rows: Sequence[Row], active_leaf: str | None, title: str | None = None
    ) -> None:
        """Insert messages and make ``active_leaf`` the conversation's branch (and set its
        ``title``, when given), in one transaction."""
        now = utcnow()
        full = [
            {
                "parent_id": None,
                "content": "",
                "reasoning": None,
                "status": "done",
                "model": None,
                "generation_id": None,
                "usage": None,
                "context": None,
                "error": None,
                "created_at": now,
                "updated_at": now,
                **row,
                "conversation_id": cid,
            }
            for row in rows
        ]
        conv: Row = {"updated_at": now}
        if active_leaf is not None:
            conv["active_leaf_id"] = active_leaf
        if title is not None:
            conv["title"] = title[:300]
        async with self.db.session() as s:
            for row in full:  # one by one: SQLite assigns `num` in this order
                await s.execute(insert(Message).values(**row))
            await s.execute(update(Conversation).where(Conversation.id == cid).values(**conv))

    async def save_partials(self, parts: Iterable[tuple[str, str, str | None]]) -> None:
        """Many streaming answers' text so far, as one statement: (id, content, reasoning)."""
        params = [{"mid": m, "c": c, "r": r, "t": utcnow()} for m, c, r in parts]
        if not params:
            return
        stmt = (
            update(Message)
            .where(Message.id == bindparam("mid"), Message.status == "streaming")
            .values(content=bindparam("c"), reasoning=bindparam("r"), updated_at=bindparam("t"))
        )
        async with self.db.session() as s:
            conn = await s.connection()
            await conn.execute(stmt, params)

    async def update_message(self, mid: str, values: Row) -> None:
        stmt = update(Message).where(Message.id == mid).values(**values, updated_at=utcnow())
        async with self.db.session() as s:
            await s.execute(stmt, execution_options={"synchronize_session": False})

    async def edit_message(self, user_id: str, cid: str, mid: str, content: str) -> Row:
        await self.get(user_id, cid)
        stmt = (
            update(Message)
            .where(Message.id == mid, Message.conversation_id == cid)
            .values(content=content, updated_at=utcnow())
        )
        async with self.db.session() as s:
            result = await s.execute(stmt, execution_options={"synchronize_session": False})
            if not getattr(result, "rowcount", 1):
                raise NotFoundError("Message not found.", code="message_not_found")
        return await self.message(mid)

    async def message(self, mid: str) -> Row:
        rows = await self._rows(select(*_MSG_COLS).where(Message.id == mid))
        if not rows:
            raise NotFoundError("Message not found.", code="message_not_found")
        return rows[0]

    async def by_generation(self, user_id: str, gid: str) -> tuple[str, Row] | None:
        """(conversation id, assistant message) of a generation of this user."""
        query = (
            select(Message.conversation_id, *_MSG_COLS)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.generation_id == gid, Conversation.user_id == user_id)
        )
        rows = await self._rows(query)
        if not rows:
            return None
        row = rows[0]
        return row.pop("conversation_id"), row

    async def interrupted(self, older_than_seconds: float) -> int:
        """Mark answers left ``streaming`` by a process that died as ``error``; how many."""
        cutoff = utcnow() - timedelta(seconds=older_than_seconds)
        stmt = (
            update(Message)
            .where(
                Message.status == "streaming",
                Message.updated_at < cutoff,
            )
            .values(status="error", error="interrupted: the server stopped during the answer")
        )
        async with self.db.session() as s:
            result = await s.execute(stmt, execution_options={"synchronize_session": False})
            return int(getattr(result, "rowcount", 0) or 0)

    async def _rows(self, query: Select[Any]) -> builtins.list[Row]:
        # A bare connection: Core rows, no ORM session machinery (half the time on big reads).
        async with self.db.engine.connect() as conn:
            result = await conn.execute(query)
            return [dict(r._mapping) for r in result]
