"""Accounts: local users with argon2 passwords, login sessions, and the implicit single user.

A session cookie holds a random token; the database keeps only its sha256, so a leaked database
cannot be replayed as cookies. Single-user mode (the zero-config local run) makes every request
act as one implicit user with no password, named ``local``; it is on in ``auto`` mode only while
no user with a password exists, the server is bound to loopback and the request comes straight
from this machine (a loopback peer without forwarding headers: not through a proxy).

A user carries the policy knobs a client key has (rpm, tpm, token budget, model allow-list):
admins set them with :meth:`Accounts.update_policy`; ``None`` is no limit. Admins can also
change a password, disable a user and sign a user out everywhere; each of these ends the
user's sessions (and with them, through ``chat.sessions``, their open streams).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from chatgate.chat.ids import new_id
from chatgate.chat.passwords import MIN_LENGTH, Hashing
from chatgate.chat.throttle import LoginThrottle
from chatgate.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError
from chatgate.storage import Database, User, UserSession
from chatgate.storage.base import utcnow
from chatgate.storage.keys import MAX_BUDGET, MAX_RATE

IMPLICIT_NAME = "local"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_NAME = re.compile(r"^[\w.@+-]{1,100}$")
# How long "does a user with a password exist?" is trusted: a user made with the CLI while the
# server runs ends single-user mode within this.
_SINGLE_USER_TTL = 5.0

SingleUserMode = Literal["auto", "on", "off"]
MAX_MODEL_NAME = 200  # usage_daily.model


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "unset"


# "Leave this policy field as it is" for update_policy, where None means "no limit".
UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class Account:
    """A user as a request sees them: identity, role and policy (None: no limit / every model).

    ``tokens_used`` is the budget counter as read with the account; the usage recorder adds to
    it in the database in batches, so it lags by what has not been written yet.
    """

    id: str
    name: str
    is_admin: bool
    implicit: bool = False  # the single-user-mode user, who has no password
    rpm: int | None = None
    tpm: int | None = None
    budget_tokens: int | None = None
    tokens_used: int = 0
    models: frozenset[str] | None = None
    created_at: datetime | None = None
    disabled: bool = False
    budget_cost_nanos: int | None = None  # nano-units of the budgets' currency
    cost_used_nanos: int = 0

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(
            user.id,
            user.name,
            user.is_admin,
            user.password_hash is None,
            rpm=user.rpm,
            tpm=user.tpm,
            budget_tokens=user.budget_tokens,
            tokens_used=user.tokens_used or 0,
            models=None if user.models is None else frozenset(user.models),
            created_at=user.created_at,
            disabled=user.disabled_at is not None,
            budget_cost_nanos=user.budget_cost_nanos,
            cost_used_nanos=user.cost_used_nanos or 0,
        )

    def allows_model(self, model: str) -> bool:
        """Whether the model allow-list (None = all models) admits `model`."""
        return self.models is None or model in self.models

    @property
    def budget_left(self) -> int | None:
        """Tokens left in the budget as read (never negative), or None without a budget."""
        if self.budget_tokens is None:
            return None
        return max(0, self.budget_tokens - self.tokens_used)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequestError("A user name is 1-100 letters, digits or . _ @ + -", param="name")
    return name


def _check_limit(name: str, value: object, top: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise InvalidRequestError(
            f"`{name}` is a whole number from 1 to {top}, or null for no limit.", param=name
        )
    return value


def check_models(models: object) -> list[str] | None:
    """The allow-list to store (names stripped, repeats dropped, order kept), or None for every
    model; InvalidRequestError unless it is None or a non-empty list of printable names of 1 to
    MAX_MODEL_NAME characters."""
    if models is None:
        return None
    wrong = InvalidRequestError(
        "`models` is a non-empty list of model names, or null for every model.", param="models"
    )
    if isinstance(models, str) or not isinstance(models, Sequence) or not models:
        raise wrong
    names: list[str] = []
    for model in models:
        name = model.strip() if isinstance(model, str) else ""
        if not name or len(name) > MAX_MODEL_NAME or not name.isprintable():
            raise wrong
        if name not in names:
            names.append(name)
    return names


class Accounts:
    def __init__(
        self,
        db: Database,
        mode: SingleUserMode,
        loopback: bool,
        session_days: float = 30.0,
        hashing: Hashing | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.db = db
        self.mode = mode
        self.loopback = loopback
        self.session_ttl = timedelta(days=session_days)
        self.hashing = hashing or Hashing()
        self.throttle = throttle or LoginThrottle()
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
        hashed = await self.hashing.hash(password)
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
        """Every user with their policy, oldest first."""
        async with self.db.session() as s:
            users = await s.scalars(select(User).order_by(User.created_at, User.id))
            return [Account.of(u) for u in users]

    async def update_policy(
        self,
        user_id: str,
        *,
        rpm: int | Unset | None = UNSET,
        tpm: int | Unset | None = UNSET,
        budget_tokens: int | Unset | None = UNSET,
        models: Sequence[str] | Unset | None = UNSET,
        budget_cost_nanos: int | Unset | None = UNSET,
    ) -> Account | None:
        """Set (a value) or clear (None) each given policy field, leaving UNSET ones alone; the
        updated account, or None when no user has this id. InvalidRequestError names a value
        out of range (rpm/tpm 1..MAX_RATE, budget_tokens 1..MAX_BUDGET) or a bad model list.
        ``tokens_used`` is not reset: a new budget counts what was already used."""
        values: dict[str, Any] = {}
        for name, value, top in (
            ("rpm", rpm, MAX_RATE),
            ("tpm", tpm, MAX_RATE),
            ("budget_tokens", budget_tokens, MAX_BUDGET),
            ("budget_cost_nanos", budget_cost_nanos, MAX_BUDGET),
        ):
            if value is not UNSET:
                values[name] = _check_limit(name, value, top)
        if models is not UNSET:
            values["models"] = check_models(models)
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            if user is None:
                return None
            for name, value in values.items():
                setattr(user, name, value)
        # The implicit user is remembered: this replica follows at once (others keep theirs
        # until restart).
        return self._remember(Account.of(user))

    async def get(self, user_id: str) -> Account | None:
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            return Account.of(user) if user is not None else None

    async def by_name(self, name: str) -> Account | None:
        async with self.db.session() as s:
            user = (await s.scalars(select(User).where(User.name == name))).one_or_none()
            return Account.of(user) if user is not None else None

    async def set_password(self, user_id: str, password: str) -> Account | None:
        """A new password (InvalidRequestError if too short); every session of the user ends.
        None when no user has this id."""
        if len(password) < MIN_LENGTH:
            raise InvalidRequestError(
                f"A password needs at least {MIN_LENGTH} characters.", param="password"
            )
        hashed = await self.hashing.hash(password)
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            if user is None:
                return None
            user.password_hash = hashed
            await s.execute(delete(UserSession).where(UserSession.user_id == user_id))
        self._has_passwords = None
        return self._remember(Account.of(user))

    async def set_disabled(self, user_id: str, disabled: bool) -> Account | None:
        """Disable (every session ends; sign-in, sessions and the request path refuse the
        user) or enable again. None when no user has this id."""
        async with self.db.session() as s:
            user = await s.get(User, user_id)
            if user is None:
                return None
            if disabled and user.disabled_at is None:
                user.disabled_at = utcnow()
                await s.execute(delete(UserSession).where(UserSession.user_id == user_id))
            elif not disabled:
                user.disabled_at = None
        return self._remember(Account.of(user))

    async def end_sessions(self, user_id: str) -> int:
        """Sign the user out everywhere: the number of sessions ended."""
        async with self.db.session() as s:
            result = await s.execute(delete(UserSession).where(UserSession.user_id == user_id))
        return int(getattr(result, "rowcount", 0) or 0)

    def _remember(self, account: Account) -> Account:
        if self._implicit is not None and self._implicit.id == account.id:
            self._implicit = account
        return account

    # -- sessions --------------------------------------------------------------------------------
    async def login(
        self, name: str, password: str, address: str | None = None
    ) -> tuple[Account, str]:
        """The account and a new session token, or AuthenticationError (same for both mistakes);
        RateLimitError while the account or the client ``address`` is throttled."""
        self.throttle.begin(name, address)
        async with self.db.session() as s:
            user = (await s.scalars(select(User).where(User.name == name))).one_or_none()
        hashed = user.password_hash if user is not None else None
        if not await self.hashing.verify(hashed, password) or user is None:
            self.throttle.failed(name, address)
            raise AuthenticationError("Wrong user name or password.", code="invalid_credentials")
        self.throttle.succeeded(name, address)
        if user.disabled_at is not None:
            raise PermissionDeniedError("This account is disabled.", code="account_disabled")
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
            .where(
                UserSession.id == token_hash(token),
                UserSession.expires_at > utcnow(),
                User.disabled_at.is_(None),
            )
        )
        async with self.db.session() as s:
            user = (await s.scalars(query)).one_or_none()
        return Account.of(user) if user is not None else None

    # -- single-user mode ------------------------------------------------------------------------
    async def single_user_active(self, local: bool = True) -> bool:
        """Whether a request acts as the implicit user. ``local``: it came straight from this
        machine (``api.peers.Peers.is_local``: a loopback peer, no proxy in between); in
        ``auto`` mode nothing else qualifies, whatever address the server is bound to."""
        if self.mode == "off":
            return False
        if self.mode == "on":
            return True
        return local and self.loopback and not await self._passwords_exist()

    async def passwords_exist(self) -> bool:
        """Whether some user has a password (which ends ``auto`` single-user mode), asked now:
        not remembered, so users made just after a start-up look count at once."""
        async with self.db.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(User).where(User.password_hash.is_not(None))
            )
        return bool(count)

    async def implicit_user(self, local: bool = True) -> Account | None:
        """The implicit user (created on first use) when single-user mode is on for this
        request (see :meth:`single_user_active`), else None."""
        if not await self.single_user_active(local):
            return None
        if self._implicit is not None:
            return None if self._implicit.disabled else self._implicit
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
        return None if self._implicit.disabled else self._implicit

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
