"""What the commands share: one-line usage errors, --config/--database-url, the resolved config."""

from __future__ import annotations

import argparse
import os
from typing import NoReturn, TypeAlias

from chatgate.config import Config, Settings, load_config, load_settings
from chatgate.discovery import read_env, with_discovered

# argparse's type for what add_subparsers() returns, where each command adds its parser
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``chatgate keys create: error: …``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="YAML configuration file (env CHATGATE_CONFIG)"
    )


def database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database (env CHATGATE_DATABASE_URL; default sqlite+aiosqlite:///./chatgate.db, "
        "PostgreSQL as postgresql+asyncpg://user:password@host/db)",
    )


def store_options(parser: argparse.ArgumentParser) -> None:
    """--config and --database-url: how every command that uses the database finds it."""
    config_option(parser)
    database_option(parser)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Options override ``CHATGATE_*`` env vars, which override the YAML config."""
    names = (
        "config",
        "host",
        "port",
        "workers",
        "log_level",
        "reasoning",
        "enable_cache",
        "cache_dir",
        "redis_url",
        "database_url",
        "require_keys",
        "admin_key",
        "metrics_token",
    )
    return load_settings({n: getattr(args, n, None) for n in names})


def resolve_config(args: argparse.Namespace) -> tuple[Settings, Config]:
    settings = settings_from_args(args)
    env = read_env(dict(os.environ))
    return settings, with_discovered(load_config(settings, env), env)
