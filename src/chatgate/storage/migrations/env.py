"""Alembic environment: migrates the connection chatgate hands in, or the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from chatgate.storage import (  # noqa: F401  (every table)
    models,
    models_chat,
    models_files,
    models_responses,
)
from chatgate.storage.base import Base
from chatgate.storage.db import make_engine


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_name=models_chat.include_name,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_url(url: str) -> None:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_migrate)
            await conn.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    elif connection is not None:
        _migrate(connection)
    elif url:
        asyncio.run(_migrate_url(url))
    else:
        raise RuntimeError("no connection or sqlalchemy.url given to the chatgate migrations")


_main()
