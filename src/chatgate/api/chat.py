"""Chat application API under ``/api/``: conversations, messages, generations, search, export.

Every route acts for the signed-in (or implicit) user; another user's conversation or
generation is answered 404, exactly like one that does not exist. Sending a message returns at
once with the generation's id: the answer is produced by a job the server owns and followed over
``GET /api/generations/{id}/events`` (SSE, resumable with ``Last-Event-ID``) or ``/api/ws``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatgate.api.auth import chat_service_dep, csrf_dep, current_account, session_ticket
from chatgate.api.deps import runtime_of
from chatgate.api.eventstream import EventStream
from chatgate.chat.accounts import Account
from chatgate.chat.events import conversation_event
from chatgate.chat.job import Job
from chatgate.chat.records import compact, full
from chatgate.chat.search import search
from chatgate.chat.service import ChatService, Send
from chatgate.chat.transfer import conversation_view, export_json, export_markdown, parse_import
from chatgate.chat.tree import Tree
from chatgate.drain import shutting_down
from chatgate.errors import InvalidRequestError, NotFoundError
from chatgate.files.transfer import export_files, import_files


def _cut_event(**fields: Any) -> bytes:
    """The last event of a chat stream cut at the drain deadline (the web UI ends on it)."""
    return b"data: %s\n\n" % orjson.dumps({"type": "error", **fields, **shutting_down().to_body()})


class JSON(Response):
    """orjson-rendered JSON (datetimes included); the API's responses are plain dicts."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _storable_params(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Params are stored and served as JSON: refuse what JSON here cannot carry (integers
    beyond 64 bits, found by fuzzing), at the door, before it reaches the database."""
    if value is not None:
        try:
            orjson.dumps(value)
        except TypeError as exc:
            raise ValueError(f"params cannot be stored as JSON: {exc}") from None
    return value


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field("", max_length=300)
    model: str | None = Field(None, description="Default: chat.default_model, else `local`.")
    system_prompt: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="Sampling parameters sent with every request."
    )
    pinned: bool = False

    _check_params = field_validator("params")(_storable_params)


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=300)
    pinned: bool | None = None
    model: str | None = None
    system_prompt: str | None = None
    params: dict[str, Any] | None = None
    active_leaf_id: str | None = Field(None, description="Switch branch: any message of it.")

    _check_params = field_validator("params")(_storable_params)


class NewMessage(BaseModel):
    """A new user message (after ``parent_id``, default the active branch's last message), an
    edit (``edit_of``: a sibling of that user message), or a regenerate (``regenerate_of``: a
    sibling of that answer, no new user message)."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    parent_id: str | None = None
    edit_of: str | None = None
    regenerate_of: str | None = None
    model: str | None = Field(None, description="This answer only; default the conversation's.")
    attachments: list[str] | None = Field(
        None,
        max_length=10,
        description="Files (ids from POST /api/files) the message carries; an edit without "
        "this field keeps the edited message's.",
    )
    models: list[str] | None = Field(
        None, description="Side by side: 2–3 models, one answer each (siblings), instead of model."
    )


class MessagePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str


IMPORT_PATH = "/api/conversations/import"  # its own body limit: files.import_max_bytes


def _check_model(chat: ChatService, model: str | None) -> None:
    if model is not None:
        chat.router.resolve(model)


def chat_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Chat"], dependencies=[Depends(csrf_dep)])
    Chat = Depends(chat_service_dep)
    Me = Depends(current_account)

    @router.get("/conversations", summary="Your conversations: pinned first, then newest")
    async def list_conversations(
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=2**31 - 1),
        chat: ChatService = Chat,
        me: Account = Me,
    ) -> JSON:
        return JSON({"data": await chat.store.list_for(me.id, limit, offset)})

    @router.post("/conversations", status_code=201, summary="Start a conversation")
    async def create_conversation(
        body: NewConversation, chat: ChatService = Chat, me: Account = Me
    ) -> JSON:
        model = body.model or chat.default_model()
        _check_model(chat, model)
        values = body.model_dump()
        values["model"] = model
        conv = await chat.store.create(me.id, values)
        await chat.events.publish(me.id, conversation_event("created", conv["id"]))
        return JSON(conv, status_code=201)

    @router.get("/conversations/{cid}", summary="A conversation with its active branch")
    async def get_conversation(cid: str, chat: ChatService = Chat, me: Account = Me) -> JSON:
        conv, rows = await chat.store.with_messages(me.id, cid)
        files = await chat.files.store.conversation_attachments(cid)
        return JSON(conversation_view(conv, rows, files))

    @router.patch("/conversations/{cid}", summary="Rename, pin, switch branch, change settings")
    async def patch_conversation(
        cid: str, body: ConversationPatch, chat: ChatService = Chat, me: Account = Me
    ) -> JSON:
        values = body.model_dump(exclude_unset=True)
        for key in ("title", "pinned", "model", "params", "active_leaf_id"):
            if key in values and values[key] is None:
                raise InvalidRequestError(f"`{key}` cannot be null.", param=key)
        _check_model(chat, values.get("model"))
        _, rows = await chat.store.with_messages(me.id, cid)
        if "active_leaf_id" in values:
            tree = Tree(rows)
            leaf = tree.by_id.get(values["active_leaf_id"])
            if leaf is None or leaf["role"] == "summary":
                raise NotFoundError("No such message in this conversation.", param="active_leaf_id")
        conv = await chat.store.update(me.id, cid, values)
        await chat.events.publish(me.id, conversation_event("updated", cid))
        files = await chat.files.store.conversation_attachments(cid)
        return JSON(conversation_view(conv, rows, files))

    @router.delete("/conversations/{cid}", status_code=204, summary="Delete a conversation")
    async def delete_conversation(cid: str, chat: ChatService = Chat, me: Account = Me) -> None:
        await chat.store.get(me.id, cid)
        for job in list(chat.generations.jobs.values()):
            if job.conversation_id == cid:
                await chat.generations.stop(job)
        attached_only_here = await chat.files.store.only_in(me.id, cid)
        await chat.store.delete(me.id, cid)
        await chat.files.delete(me.id, attached_only_here)
        await chat.events.publish(me.id, conversation_event("deleted", cid))

    @router.post(
        "/conversations/{cid}/messages",
        status_code=202,
        summary="Send a message (or edit, or regenerate): starts a generation",
    )
    async def send_message(
        cid: str, body: NewMessage, chat: ChatService = Chat, me: Account = Me
    ) -> JSON:
        send = Send(
            content=body.content,
            parent_id=body.parent_id,
            parent_given="parent_id" in body.model_fields_set,
            edit_of=body.edit_of,
            regenerate_of=body.regenerate_of,
            model=body.model,
            attachments=tuple(body.attachments) if body.attachments is not None else None,
            models=tuple(body.models or ()),
        )
        return JSON(await chat.send(me, cid, send), status_code=202)

    @router.patch(
        "/conversations/{cid}/messages/{mid}",
        summary="Edit a summary checkpoint (edit other messages with `edit_of`: a new branch)",
    )
    async def patch_message(
        cid: str, mid: str, body: MessagePatch, chat: ChatService = Chat, me: Account = Me
    ) -> JSON:
        await chat.store.get(me.id, cid)
        row = await chat.store.message(mid)
        if row["role"] != "summary":
            raise InvalidRequestError(
                "Only summaries are edited in place; send the message with `edit_of` instead.",
                param="mid",
            )
        edited = await chat.store.edit_message(me.id, cid, mid, body.content)
        await chat.events.publish(me.id, conversation_event("updated", cid))
        return JSON(edited)

    @router.get(
        "/conversations/{cid}/messages/{mid}/context",
        summary="What an answer's prompt held: the ids sent, dropped and summarised",
    )
    async def message_context(
        cid: str, mid: str, chat: ChatService = Chat, me: Account = Me
    ) -> JSON:
        record = full(*await chat.store.context(me.id, cid, mid))
        if record is None:
            raise NotFoundError("This message has no context record.", code="context_not_found")
        return JSON(record)

    @router.get("/conversations/{cid}/export", summary="Export as JSON (whole tree) or Markdown")
    async def export(
        cid: str,
        format: Literal["json", "markdown"] = Query("json"),
        chat: ChatService = Chat,
        me: Account = Me,
    ) -> Response:
        conv, rows = await chat.store.with_messages(me.id, cid, detail=format == "json")
        filename = f"conversation-{cid}"
        if format == "markdown":
            return Response(
                export_markdown(conv, rows),
                media_type="text/markdown; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{filename}.md"'},
            )
        files = await chat.files.store.conversation_attachments(cid)
        return JSON(
            export_json(conv, rows, files, await export_files(chat.files, files)),
            headers={"Content-Disposition": f'attachment; filename="{filename}.json"'},
        )

    @router.post(IMPORT_PATH.removeprefix("/api"), status_code=201, summary="Import a JSON export")
    async def import_conversation(
        data: Any = Body(...),  # noqa: B008
        chat: ChatService = Chat,
        me: Account = Me,
    ) -> JSON:
        values, rows, leaf = parse_import(data, chat.default_model())
        links = await import_files(chat.files, me.id, data, rows)
        conv = await chat.store.create(me.id, values)
        if rows:
            await chat.store.add_messages(conv["id"], rows, leaf, links=links)
        conv, rows = await chat.store.with_messages(me.id, conv["id"])
        await chat.events.publish(me.id, conversation_event("created", conv["id"]))
        files = await chat.files.store.conversation_attachments(conv["id"])
        return JSON(conversation_view(conv, rows, files), status_code=201)

    @router.get("/search", summary="Full-text search over your messages")
    async def search_messages(
        q: str = Query(..., min_length=1, max_length=500),
        limit: int = Query(50, ge=1, le=200),
        chat: ChatService = Chat,
        me: Account = Me,
    ) -> JSON:
        return JSON({"data": await search(chat.db, me.id, q, limit)})

    @router.get(
        "/generations/{gid}/events",
        summary="Follow a generation (SSE): everything so far, then the rest",
        response_class=StreamingResponse,
    )
    async def events(
        request: Request,
        gid: str,
        after: int | None = Query(None, ge=0, description="Resume after this event id."),
        last_event_id: str | None = Header(None),
        chat: ChatService = Chat,
        me: Account = Me,
    ) -> StreamingResponse:
        source = await chat.find(me, gid)
        start = after if after is not None else _event_id(last_event_id)
        ticket = session_ticket(chat, request, me)

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 1000\n\n"
            async for batch in chat.follow(source, start):
                yield b"".join([e.sse for e in batch]) if batch else b": keep-alive\n\n"

        drain = runtime_of(request.app).drain
        return EventStream(stream(), drain, _cut_event(generation_id=gid), ticket)

    @router.get(
        "/events",
        summary="Your conversations' events (SSE): created, updated, deleted, answer started",
        response_class=StreamingResponse,
    )
    async def user_events(
        request: Request, chat: ChatService = Chat, me: Account = Me
    ) -> StreamingResponse:
        listener = chat.events.listen(me.id)  # hears everything from now on
        ticket = session_ticket(chat, request, me)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 1000\n\n"
                async for event in listener:
                    yield b"data: %s\n\n" % orjson.dumps(event) if event else b": keep-alive\n\n"
            finally:
                listener.close()

        return EventStream(stream(), runtime_of(request.app).drain, _cut_event(), ticket)

    @router.get("/generations/{gid}", summary="A generation's state")
    async def generation(gid: str, chat: ChatService = Chat, me: Account = Me) -> JSON:
        source = await chat.find(me, gid)
        if isinstance(source, Job):
            row = await chat.store.message(source.message_id)
            row["content"] = "".join(source.content)
        else:
            row = await chat.stored(me, gid)
        row.pop("updated_at", None)
        row["context"] = compact(row["context"])
        return JSON({"generation_id": gid, "message": row})

    @router.post("/generations/{gid}/stop", summary="Stop: cancels the upstream, keeps the text")
    async def stop(gid: str, chat: ChatService = Chat, me: Account = Me) -> JSON:
        return JSON(await chat.stop(me, gid))

    return router


def _event_id(value: str | None) -> int:
    try:
        return max(int(value), 0) if value else 0
    except ValueError:
        return 0
