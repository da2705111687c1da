"""Files under ``/api/files``: upload (the raw body, streamed to storage), list, read, delete,
and the passage a citation points to. Every route acts for the signed-in (or implicit) user;
another user's file answers 404 ``file_not_found``, exactly like one that does not exist.

The upload is the one chat route whose body is not JSON: the guard lets it through
(``api.guard.RAW_BODY_ROUTES``; a foreign Origin without a key is still refused) and the body
limit there is ``files.max_bytes``, counted by the route itself as the bytes arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from chatgate.api.auth import chat_service_dep, csrf_dep, current_account
from chatgate.api.chat import JSON
from chatgate.chat.accounts import Account
from chatgate.chat.service import ChatService
from chatgate.files.store import public

FILES_PATH = "/api/files"


def _declared(request: Request) -> int | None:
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _disposition(kind: str, mime: str, name: str) -> str:
    inline = kind == "image"
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    how = "inline" if inline else "attachment"
    return f"{how}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def files_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Files"], dependencies=[Depends(csrf_dep)])
    Chat = Depends(chat_service_dep)
    Me = Depends(current_account)

    @router.post(
        "/files",
        status_code=201,
        summary="Upload a file: the raw bytes as the body, its type as Content-Type",
    )
    async def upload(
        request: Request,
        name: str = Query(..., min_length=1, max_length=1000, description="The file's name."),
        chat: ChatService = Chat,
        me: Account = Me,
    ) -> JSON:
        content_type = request.headers.get("content-type", "application/octet-stream")
        row = await chat.files.upload(
            me.id, name, content_type, _declared(request), request.stream()
        )
        return JSON(row, status_code=201)

    @router.get("/files", summary="Your files, what they take and your quota")
    async def list_files(chat: ChatService = Chat, me: Account = Me) -> JSON:
        return JSON(await chat.files.listing(me.id))

    @router.get("/files/{fid}", summary="A file's description")
    async def get_file(fid: str, chat: ChatService = Chat, me: Account = Me) -> JSON:
        return JSON(public(await chat.files.store.get(me.id, fid)))

    @router.delete("/files/{fid}", status_code=204, summary="Delete a file (bytes, passages)")
    async def delete_file(fid: str, chat: ChatService = Chat, me: Account = Me) -> Response:
        await chat.files.store.get(me.id, fid)  # 404 unless it is yours
        await chat.files.delete(me.id, [fid])
        return Response(status_code=204)

    @router.get(
        "/files/{fid}/content",
        summary="The file's bytes (images inline, anything else as a download)",
        response_class=StreamingResponse,
    )
    async def content(fid: str, chat: ChatService = Chat, me: Account = Me) -> StreamingResponse:
        row, body = await chat.files.content(me.id, fid)

        async def stream() -> AsyncIterator[bytes]:
            async for part in body:
                yield part

        return StreamingResponse(
            stream(),
            media_type=row["mime"],
            headers={
                "Content-Length": str(row["size"]),
                "Content-Disposition": _disposition(row["kind"], row["mime"], row["name"]),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=3600",
            },
        )

    @router.get("/files/{fid}/passages/{n}", summary="The passage a citation points to")
    async def passage(fid: str, n: int, chat: ChatService = Chat, me: Account = Me) -> JSON:
        return JSON(await chat.files.passage(me.id, fid, n))

    return router
