"""Accounts: local users with argon2 passwords, login sessions, and the implicit single user.

A session cookie holds a random token; the database keeps only its sha256, so a leaked database
cannot be replayed as cookies. Single-user mode (the zero-config local run) makes every request
act as one implicit user with no password, named ``local``; it is on in ``auto`` mode only while
no user with a password exists and the server is bound to loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from chatgate.chat.ids import new_id
from chatgate.chat.passwords import MIN_LENGTH, hash_password_async, verify_password_async
from chatgate.errors import AuthenticationError, InvalidRequestError
from chatgate.storage import Database, User, UserSession
from chatgate.storage.base import utcnow

IMPLICIT_NAME = "local"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_NAME = re.compile(r"^[\w.@+-]{1,100}$")
# How long "does a user with a password exist?" is trusted: a user made with the CLI while the
# server runs ends single-user mode within this.
_SINGLE_USER_TTL = 5.0

SingleUserMode = Literal["auto", "on", "off"]


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    is_admin: bool
    implicit: bool = False  # the single-user-mode user, who has no password
    # the user's policy, as client keys have it (None: unlimited, every model)
    rpm: int | None = None
    tpm: int | None = None
    models: frozenset[str] | None = None
    budget_tokens: int | None = None
    tokens_used: int = 0

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(user.id, user.name, user.is_admin, user.password_hash is None)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequestError("A user name is 1-100 letters, digits or . _ @ + -", param="name")
    return name


class Accounts:
    def __init__(
        self, db: Database, mode: SingleUserMode, loopback: bool, session_days: float = 30.0
    ) -> None:
        self.db = db
        self.mode = mode
        self.loopback = loopback
        self.session_ttl = timedelta(days=session_days)
        self._has_passwords: tuple[float, bool] | None = None
        self._counting: asyncio.Future[bool] | None = None  # the one look in flight
        self._implicit: Account | None = None

    # -- users -----------------------------------------------------------------------------------
    async def create_user(self, name: str, password: str, is_admin: bool = False) -> Account:
        """A new user. The implicit user's name can be claimed: it keeps its conversations."""
        check_name(name)
        if len(password) < MIN_LENGTH:
            raise InvalidRequestError(
                f"A password needs at least {MIN_LENGTH} characters.", param="password"
            )
        hashed = await hash_password_async(password)
        async with self.db.session() as s:
            user = (await s.scalars(select(User).where(User.name == name))).one_or_none()
            if user is not None and user.password_hash is not None:
                raise InvalidRequestError(f"User {name!r} already exists.", param="name")
            if user is None:
                user = User(id=new_id("u"), name=name, created_at=utcnow())
                s.add(user)
            user.password_hash = hashed
            user.is_admin = is_admin
        self._has_passwords = None
        return Account.of(user)

    async def list_users(self) -> list[Account]:
        async with self.db.session() as s:
            users = await s.scalars(select(User).order_by(User.created_at, User.id))
            return [Account.of(u) for u in users]

    async def get(self, user_id: str) -> Account | None:
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            return Account.of(user) if user is not None else None

    # -- sessions --------------------------------------------------------------------------------
    async def login(self, name: str, password: str) -> tuple[Account, str]:
        """The account and a new session token, or AuthenticationError (same for both mistakes)."""
        async with self.db.session() as s:
            user = (await s.scalars(select(User).where(User.name == name))).one_or_none()
        hashed = user.password_hash if user is not None else None
        if not await verify_password_async(hashed, password) or user is None:
            raise AuthenticationError("Wrong user name or password.", code="invalid_credentials")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.session() as s:
            s.add(
                UserSession(
                    id=token_hash(token),
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + self.session_ttl,
                )
            )
            # Expired sessions of this user go when they next log in.
            await s.execute(
                delete(UserSession).where(
                    UserSession.user_id == user.id, UserSession.expires_at < now
                )
            )
        return Account.of(user), token

    async def logout(self, token: str) -> None:
        async with self.db.session() as s:
            await s.execute(delete(UserSession).where(UserSession.id == token_hash(token)))

    async def for_token(self, token: str) -> Account | None:
        """The account of a live session token."""
        query = (
            select(User)
            .join(UserSession, UserSession.user_id == User.id)
            .where(UserSession.id == token_hash(token), UserSession.expires_at > utcnow())
        )
        async with self.db.session() as s:
            user = (await s.scalars(query)).one_or_none()
        return Account.of(user) if user is not None else None

    # -- single-user mode ------------------------------------------------------------------------
    async def single_user_active(self) -> bool:
        if self.mode == "off":
            return False
        if self.mode == "on":
            return True
        return self.loopback and not await self._passwords_exist()

    async def implicit_user(self) -> Account | None:
        """The implicit user (created on first use) when single-user mode is on, else None."""
        if not await self.single_user_active():
            return None
        if self._implicit is not None:
            return self._implicit
        async with self.db.session() as s:
            user = (await s.scalars(select(User).where(User.name == IMPLICIT_NAME))).one_or_none()
        if user is None:
            try:
                async with self.db.session() as s:
                    user = User(
                        id=new_id("u"), name=IMPLICIT_NAME, is_admin=True, created_at=utcnow()
                    )
                    s.add(user)
            except IntegrityError:  # another request or replica made it first
                async with self.db.session() as s:
                    found = await s.scalars(select(User).where(User.name == IMPLICIT_NAME))
                    user = found.one()
        self._implicit = Account.of(user)
        return self._implicit

    async def _passwords_exist(self) -> bool:
        now = time.monotonic()
        if self._has_passwords is not None and now - self._has_passwords[0] < _SINGLE_USER_TTL:
            return self._has_passwords[1]
        # Every request asks; when the answer expires under load, one query answers them all.
        if self._counting is None:
            self._counting = asyncio.ensure_future(self._count_passwords(now))
        return await asyncio.shield(self._counting)

    async def _count_passwords(self, now: float) -> bool:
        try:
            async with self.db.engine.connect() as conn:
                count = await conn.scalar(
                    select(func.count()).select_from(User).where(User.password_hash.is_not(None))
                )
        finally:
            self._counting = None
        exists = bool(count)
        self._has_passwords = (now, exists)
        if exists:
            self._implicit = None
        return exists
