"""``chatgate db upgrade``, and how every command finds and reaches the database."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from chatgate.cli.common import Commands, OneLineParser, resolve_config, store_options
from chatgate.errors import ConfigError, GatewayError
from chatgate.storage import current_revision, head_revision, normalize_url, upgrade

T = TypeVar("T")


def add_commands(sub: Commands) -> None:
    db = sub.add_parser(
        "db", help="database maintenance", description="Database schema maintenance."
    )
    actions = db.add_subparsers(
        dest="db_command", metavar="ACTION", required=True, parser_class=OneLineParser
    )
    up = actions.add_parser(
        "upgrade",
        help="run the migrations",
        description="Bring the database schema up to date (serve also does this at start-up).",
    )
    store_options(up)
    up.set_defaults(func=cmd_db_upgrade)


def database_url(args: argparse.Namespace) -> str:
    """The database as ``serve`` finds it: ``--database-url``, ``CHATGATE_DATABASE_URL``, then
    the ``database.url`` of ``--config``."""
    _, config = resolve_config(args)
    return config.database.url


def _shown(url: str) -> str:
    """``url`` without its password."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def run_db(url: str, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``, turning a bad URL into a config error (exit 2) and an unreachable database
    into a one-line :class:`GatewayError` (exit 1)."""
    from alembic.util.exc import CommandError

    try:
        return asyncio.run(work)
    except ArgumentError as exc:  # includes an unknown driver
        raise ConfigError("database.url", f"{_reason(exc)} ({_shown(url)})") from None
    except (OSError, TimeoutError, SQLAlchemyError, CommandError) as exc:
        raise GatewayError(f"database {_shown(url)} unavailable: {_reason(exc)}") from None


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = database_url(args)

    async def migrate() -> tuple[str | None, str | None]:
        before = await current_revision(url)
        await upgrade(url)
        return before, await current_revision(url)

    before, after = run_db(url, migrate())
    head = head_revision()
    print(f"Database: {_shown(url)}")
    print(f"Revision before: {before or 'none (empty database)'}")
    note = " (head)" if after == head else f" (head is {head})"
    if before == after:
        note += ", already up to date"
    print(f"Revision after:  {after}{note}")
    return 0
