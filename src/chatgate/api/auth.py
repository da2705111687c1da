"""Chat API sign-in: ``POST /api/auth/login``, ``POST /api/auth/logout``, ``GET /api/me``, and
the dependencies every ``/api/`` route uses: who is asking, and CSRF protection.

The session cookie is HttpOnly, SameSite=Lax, Secure when the request came over https. Against
cross-site request forgery, every state-changing ``/api/`` request must carry a JSON body or an
``X-Requested-With`` header (neither can be sent cross-site without a CORS preflight, which
chatgate never grants), and a browser's ``Origin``, when sent, must be this server's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from chatgate.api.deps import peers_of, runtime_of
from chatgate.chat.accounts import Account
from chatgate.chat.service import ChatService
from chatgate.chat.sessions import Ticket
from chatgate.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError

COOKIE = "chatgate_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def chat_service(request: Request) -> ChatService:
    return service_of(request.app)


def service_of(app: Any) -> ChatService:
    state = runtime_of(app).require()
    if state.chat is None:
        raise ServiceUnavailableError("the chat service is not running", retry_after=1)
    return state.chat


async def resolve_account(chat: ChatService, conn: HTTPConnection) -> Account | None:
    """The signed-in user, else the implicit single user (when that mode is on for this
    request: see ``api.peers``), else None."""
    token = conn.cookies.get(COOKIE)
    if token:
        account = await chat.accounts.for_token(token)
        if account is not None:
            return account
    return await chat.accounts.implicit_user(peers_of(conn.app).is_local(conn.scope))


def origin_allowed(headers: Mapping[str, str]) -> bool:
    """No Origin (not a browser, or a same-origin GET), or one naming this very host."""
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host")
    return origin != "null" and host is not None and urlsplit(origin).netloc == host


def csrf_guard(request: Request) -> None:
    if request.method in SAFE_METHODS:
        return
    if not origin_allowed(request.headers):
        raise PermissionDeniedError("Cross-origin request refused.", code="csrf")
    content_type = request.headers.get("content-type", "")
    if not (
        content_type.split(";")[0].strip().lower() == "application/json"
        or request.headers.get("x-requested-with")
    ):
        raise PermissionDeniedError(
            "State-changing requests need a JSON body or an X-Requested-With header.",
            code="csrf",
        )


# FastAPI runs a plain-function dependency in a worker thread: two thread hops per request for
# what takes microseconds. The routers depend on these async twins instead.
async def chat_service_dep(request: Request) -> ChatService:
    return service_of(request.app)


async def csrf_dep(request: Request) -> None:
    csrf_guard(request)


async def current_account(request: Request) -> Account:
    account = await resolve_account(chat_service(request), request)
    if account is None:
        raise AuthenticationError("Sign in first (POST /api/auth/login).", code="not_signed_in")
    return account


def session_ticket(chat: ChatService, conn: HTTPConnection, account: Account) -> Ticket | None:
    """What a stream opened by ``account`` watches to close when its session ends (None for
    the implicit single user, who has no session)."""
    return None if account.implicit else chat.sessions.watch(conn.cookies.get(COOKIE))


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    id: str
    name: str
    is_admin: bool
    single_user: bool = Field(description="Signed in implicitly: the single-user local mode.")

    @classmethod
    def of(cls, account: Account) -> Me:
        return cls(
            id=account.id,
            name=account.name,
            is_admin=account.is_admin,
            single_user=account.implicit,
        )


def auth_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Chat: accounts"], dependencies=[Depends(csrf_dep)])

    @router.post("/auth/login", summary="Sign in: sets the session cookie")
    async def login(body: Login, request: Request, response: Response) -> Me:
        chat = chat_service(request)
        address = peers_of(request.app).client(request.scope)
        account, token = await chat.accounts.login(body.name, body.password, address)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(chat.accounts.session_ttl.total_seconds()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=is_https(request),
        )
        return Me.of(account)

    @router.post("/auth/logout", status_code=204, summary="Sign out: ends the session")
    async def logout(request: Request, response: Response) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            chat = chat_service(request)
            await chat.accounts.logout(token)
            chat.sessions.end(token)  # its open streams close now
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")

    @router.get("/me", summary="The signed-in user")
    async def me(account: Account = Depends(current_account)) -> Me:  # noqa: B008
        return Me.of(account)

    return router
