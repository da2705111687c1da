"""Conversations and messages in the database; every read and write is scoped to its user.

Reads use Core rows turned into plain dicts (no ORM objects: a 2,000-message conversation loads
in one query and serialises straight to JSON). A conversation of another user is simply not
found, so the API answers 404 and leaks nothing about its existence.

Writes go through one ``GroupWriter``: the writes of concurrent requests share a transaction,
and the same writes of many requests (new messages, the conversation's new leaf, the answers'
texts) run as one ``executemany``. Their statements are built once per set of columns, with
placeholders, so that the writer can tell they are the same.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, Update, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.chat.ids import new_id
from chatgate.errors import NotFoundError
from chatgate.storage import Conversation, Database, Message, MessageFile
from chatgate.storage.base import utcnow
from chatgate.storage.writer import GroupWriter, Step

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
    "citations",
    "created_at",
    "updated_at",
)
_CONV_COLS = [getattr(Conversation, f) for f in CONVERSATION_FIELDS]
_MSG_COLS = [getattr(Message, f) for f in MESSAGE_FIELDS]
EDITABLE = frozenset({"title", "pinned", "model", "system_prompt", "params", "active_leaf_id"})


def conversation_not_found() -> NotFoundError:
    return NotFoundError("Conversation not found.", code="conversation_not_found")


# -- statements, built once per set of columns (the group writer merges equal statements) --------
@cache
def _insert(table: type[Conversation] | type[Message], columns: frozenset[str]) -> Insert:
    return insert(table)  # the columns name the statement: rows of one shape share it


@cache
def _update(table: type[Conversation] | type[Message], columns: frozenset[str]) -> Update:
    """UPDATE table SET the columns WHERE id = :b_id (parameters from ``_by_id``)."""
    return (
        update(table)
        .where(table.id == bindparam("b_id"))
        .values({c: bindparam(f"b_{c}") for c in sorted(columns)})
    )


# Reads, built once too: a statement built per call costs more CPU than running it (expressions,
# cache key, result-column adaptation) — half of a conversation read with its messages.
_LIST = (
    select(*_CONV_COLS)
    .where(Conversation.user_id == bindparam("uid"))
    .order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id)
    .limit(bindparam("lim"))
    .offset(bindparam("off"))
)
_CONVERSATION = select(*_CONV_COLS).where(
    Conversation.id == bindparam("cid"), Conversation.user_id == bindparam("uid")
)
_MESSAGES = (
    select(*_MSG_COLS).where(Message.conversation_id == bindparam("cid")).order_by(Message.num)
)
# The export's read: the context records' id lists too (never read by the open).
_MESSAGES_DETAIL = (
    select(*_MSG_COLS, Message.context_detail)
    .where(Message.conversation_id == bindparam("cid"))
    .order_by(Message.num)
)
_MESSAGE = select(*_MSG_COLS).where(Message.id == bindparam("mid"))
_CONTEXT = select(Message.context, Message.context_detail).where(
    Message.id == bindparam("mid"), Message.conversation_id == bindparam("cid")
)
_BY_GENERATION = (
    select(Message.conversation_id, *_MSG_COLS)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .where(Message.generation_id == bindparam("gid"), Conversation.user_id == bindparam("uid"))
)

_LINK = insert(MessageFile)
_SAVE_PARTIAL = (
    update(Message)
    .where(Message.id == bindparam("mid"), Message.status == "streaming")
    .values(content=bindparam("c"), reasoning=bindparam("r"), updated_at=bindparam("t"))
)


def _by_id(rid: str, values: Row) -> Row:
    return {"b_id": rid, **{f"b_{k}": v for k, v in values.items()}}


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.writer = GroupWriter(db)

    async def close(self) -> None:
        """Write what is still queued."""
        await self.writer.close()

    # -- conversations ---------------------------------------------------------------------------
    async def list_for(self, user_id: str, limit: int = 100, offset: int = 0) -> builtins.list[Row]:
        """Pinned first, then the most recently updated."""
        return await self._rows(_LIST, {"uid": user_id, "lim": limit, "off": offset})

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
        await self.writer.execute((_insert(Conversation, frozenset(row)), row))
        return {k: row[k] for k in CONVERSATION_FIELDS}

    async def get(self, user_id: str, cid: str) -> Row:
        async with self.db.engine.connect() as conn:
            return await _conversation(conn, user_id, cid)

    async def with_messages(
        self, user_id: str, cid: str, detail: bool = False
    ) -> tuple[Row, builtins.list[Row]]:
        """The conversation and all its messages (in creation order), on one connection; with
        ``detail``, each with its ``context_detail`` (the export: O(n²) ids, not for opens)."""
        async with self.db.engine.connect() as conn:
            conv = await _conversation(conn, user_id, cid)
            if detail:
                return conv, await _rows(conn, _MESSAGES_DETAIL, {"cid": cid})
            return conv, await _messages(conn, cid)

    async def context(self, user_id: str, cid: str, mid: str) -> tuple[Row | None, Row | None]:
        """A message's ``context`` and ``context_detail``."""
        async with self.db.engine.connect() as conn:
            await _conversation(conn, user_id, cid)
            rows = await _rows(conn, _CONTEXT, {"cid": cid, "mid": mid})
        if not rows:
            raise NotFoundError("Message not found.", code="message_not_found")
        return rows[0]["context"], rows[0]["context_detail"]

    async def update(self, user_id: str, cid: str, values: Row) -> Row:
        values = {k: v for k, v in values.items() if k in EDITABLE}
        if values:
            values["updated_at"] = utcnow()
            stmt = (
                update(Conversation)
                .where(Conversation.id == cid, Conversation.user_id == user_id)
                .values(**values)
            )
            if not await self.writer.execute_counted(stmt):
                raise conversation_not_found()
        return await self.get(user_id, cid)

    async def delete(self, user_id: str, cid: str) -> None:
        stmt = delete(Conversation).where(Conversation.id == cid, Conversation.user_id == user_id)
        if not await self.writer.execute_counted(stmt):
            raise conversation_not_found()

    async def set_title(self, cid: str, title: str) -> None:
        values = {"title": title[:300]}
        await self.writer.execute((_update(Conversation, frozenset(values)), _by_id(cid, values)))

    # -- messages --------------------------------------------------------------------------------
    async def messages(self, cid: str) -> builtins.list[Row]:
        """All messages of a conversation, in creation order (the caller checked the owner)."""
        async with self.db.engine.connect() as conn:
            return await _messages(conn, cid)

    async def add_messages(
        self,
        cid: str,
        rows: Sequence[Row],
        active_leaf: str | None,
        title: str | None = None,
        links: Sequence[Row] = (),
    ) -> None:
        """Insert messages and make ``active_leaf`` the conversation's branch (and set its
        ``title``, when given), in one transaction (shared with other requests' writes);
        ``links``: the messages' attached files (``message_files`` rows)."""
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
                "context_detail": None,
                "error": None,
                "citations": None,
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
        # One executemany per run of rows of one shape, in order: `num` follows `rows`.
        runs: builtins.list[tuple[Insert, builtins.list[Row]]] = []
        for row in full:
            stmt = _insert(Message, frozenset(row))
            if runs and runs[-1][0] is stmt:
                runs[-1][1].append(row)
            else:
                runs.append((stmt, [row]))
        conv_step: Step = (_update(Conversation, frozenset(conv)), _by_id(cid, conv))
        link_steps: list[Step] = [(_LINK, list(links))] if links else []
        await self.writer.execute(*runs, *link_steps, conv_step)

    async def save_partials(self, parts: Iterable[tuple[str, str, str | None]]) -> None:
        """Many streaming answers' text so far, as one statement: (id, content, reasoning)."""
        params = [{"mid": m, "c": c, "r": r, "t": utcnow()} for m, c, r in parts]
        if params:
            await self.writer.execute((_SAVE_PARTIAL, params))

    async def update_message(self, mid: str, values: Row) -> None:
        values = {**values, "updated_at": utcnow()}
        await self.writer.execute((_update(Message, frozenset(values)), _by_id(mid, values)))

    async def edit_message(self, user_id: str, cid: str, mid: str, content: str) -> Row:
        await self.get(user_id, cid)
        stmt = (
            update(Message)
            .where(Message.id == mid, Message.conversation_id == cid)
            .values(content=content, updated_at=utcnow())
        )
        if not await self.writer.execute_counted(stmt):
            raise NotFoundError("Message not found.", code="message_not_found")
        return await self.message(mid)

    async def message(self, mid: str) -> Row:
        rows = await self._rows(_MESSAGE, {"mid": mid})
        if not rows:
            raise NotFoundError("Message not found.", code="message_not_found")
        return rows[0]

    async def by_generation(self, user_id: str, gid: str) -> tuple[str, Row] | None:
        """(conversation id, assistant message) of a generation of this user."""
        rows = await self._rows(_BY_GENERATION, {"gid": gid, "uid": user_id})
        if not rows:
            return None
        row = rows[0]
        return row.pop("conversation_id"), row

    async def close_unfinished(self, mid: str, status: str) -> bool:
        """End a ``streaming`` answer with ``status``, keeping its text; whether it was one."""
        stmt = (
            update(Message)
            .where(Message.id == mid, Message.status == "streaming")
            .values(status=status, updated_at=utcnow())
        )
        return bool(await self.writer.execute_counted(stmt))

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
        return await self.writer.execute_counted(stmt)

    async def _rows(self, query: Select[Any], params: Row) -> builtins.list[Row]:
        async with self.db.engine.connect() as conn:
            return await _rows(conn, query, params)


# A bare connection: Core rows, no ORM session machinery (half the time on big reads); rows
# zipped with the keys once (a RowMapping per row costs as much again).
async def _rows(conn: AsyncConnection, query: Select[Any], params: Row) -> builtins.list[Row]:
    result = await conn.execute(query, params)
    keys = tuple(result.keys())
    return [dict(zip(keys, r, strict=True)) for r in result]


async def _conversation(conn: AsyncConnection, user_id: str, cid: str) -> Row:
    rows = await _rows(conn, _CONVERSATION, {"cid": cid, "uid": user_id})
    if not rows:
        raise conversation_not_found()
    return rows[0]


async def _messages(conn: AsyncConnection, cid: str) -> builtins.list[Row]:
    return await _rows(conn, _MESSAGES, {"cid": cid})
