"""Command line: ``chatgate serve``, ``models``, ``chat``, ``keys`` and ``db`` (in ``cli_keys``).

Every option is also an env var ``CHATGATE_<NAME>``; options override env, env overrides the YAML
config. A configuration error prints one line naming the field and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from chatgate.config import Config, Settings, load_config, load_settings
from chatgate.discovery import read_env, with_discovered
from chatgate.errors import ConfigError, GatewayError
from chatgate.observability.logging import setup_logging

EXIT_CONFIG = 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="YAML configuration file (env CHATGATE_CONFIG)"
    )


def _database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database (env CHATGATE_DATABASE_URL; default sqlite+aiosqlite:///./chatgate.db, "
        "PostgreSQL as postgresql+asyncpg://user:password@host/db)",
    )


def _store_options(parser: argparse.ArgumentParser) -> None:
    """--config and --database-url: how every command that uses the database finds it."""
    _common(parser)
    _database(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatgate",
        description="Self-hosted LLM chat service and OpenAI-compatible gateway.",
        epilog="Every option is also an environment variable CHATGATE_<OPTION>, "
        "e.g. CHATGATE_PORT=9000. Run `chatgate COMMAND -h` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the gateway (HTTP API, docs, health)",
        description="Serve the OpenAI-compatible API on HOST:PORT. With no configuration it "
        "serves the bundled local model as `local`, plus any provider found in the environment "
        "(DEEPSEEK_API_KEY, OPENAI_API_KEY, GIGACHAT_CREDENTIALS, OLLAMA_BASE_URL).",
    )
    _common(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    serve.add_argument(
        "--enable-cache",
        action="store_true",
        default=None,
        help="cache answers (memory, disk, and Redis when --redis-url is set)",
    )
    serve.add_argument("--cache-dir", metavar="DIR", help="where the disk cache lives (./cache)")
    serve.add_argument(
        "--redis-url", metavar="URL", help="shared Redis for cache tier (redis://host:6379/0)"
    )
    serve.add_argument(
        "--reasoning",
        choices=["strip", "separate", "keep"],
        help="what to do with <think> reasoning: strip it, separate it into "
        "reasoning_content (default, as DeepSeek's API does) or keep it inline",
    )
    _database(serve)
    serve.add_argument(
        "--require-keys",
        action="store_true",
        default=None,
        help="every /v1 call needs a client key (see `chatgate keys create`)",
    )
    serve.add_argument(
        "--admin-key",
        metavar="KEY",
        help="protect /admin/ with this bearer key (prefer env CHATGATE_ADMIN_KEY: "
        "options are visible to other local users)",
    )
    serve.set_defaults(func=cmd_serve)

    models = sub.add_parser(
        "models",
        help="list routable models",
        description="List the models chatgate would route, with their provider and upstream name.",
    )
    _store_options(models)
    models.set_defaults(func=cmd_models)

    from chatgate.cli_keys import add_commands

    add_commands(sub, _store_options)

    from chatgate.chat.cli import add_commands as add_user_commands

    add_user_commands(sub, _store_options)

    from chatgate.chat_cli import cmd_chat

    chat = sub.add_parser(
        "chat",
        help="chat in the terminal",
        description="Chat with a model in the terminal through the chatgate at --url; when "
        "nothing listens there, run the gateway in-process (zero-config: the local model). "
        "Ctrl-C stops an answer; Ctrl-C or Ctrl-D at the prompt leaves. Commands: "
        "/model NAME, /clear (forget the conversation), /exit. Reads stdin when piped too.",
    )
    _store_options(chat)
    chat.add_argument("-m", "--model", help="model name (env CHATGATE_MODEL, default local)")
    chat.add_argument(
        "--url", help="chatgate to talk to (env CHATGATE_URL, default http://127.0.0.1:8000)"
    )
    chat.add_argument(
        "--reasoning",
        choices=["strip", "separate", "keep"],
        help="what to do with <think> reasoning (sent as X-Chatgate-Reasoning); "
        "separated reasoning is shown dimmed above the answer",
    )
    chat.add_argument("--system", metavar="TEXT", help="system prompt for the conversation")
    chat.set_defaults(func=cmd_chat)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
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
    )
    return load_settings({n: getattr(args, n, None) for n in names})


def resolve_config(args: argparse.Namespace) -> tuple[Settings, Config]:
    settings = settings_from_args(args)
    env = read_env(dict(os.environ))
    return settings, with_discovered(load_config(settings, env), env)


def _export(settings: Settings) -> None:
    """Hand the command-line options to worker processes, which read ``CHATGATE_*``."""
    for name, value in settings.model_dump(exclude_none=True).items():
        secret = getattr(value, "get_secret_value", None)
        os.environ[f"CHATGATE_{name.upper()}"] = str(secret() if secret else value)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chatgate.app import create_app

    settings, config = resolve_config(args)
    server = config.server
    setup_logging(server.log_level)
    options: dict[str, Any] = {
        "log_config": None,  # ours, set up above: JSON off a terminal, buffered
        "host": server.host,
        "port": server.port,
        "log_level": server.log_level,
        "access_log": False,
        "http": "httptools",
        "loop": "uvloop",
        "lifespan": "on",
        "timeout_graceful_shutdown": server.drain_seconds,
        # chatgate reads no client address; uvicorn's X-Forwarded-For middleware is pure cost
        "proxy_headers": False,
    }
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal under the
    # handler it found at start. Finding a no-op there makes a graceful stop exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    if server.workers > 1:
        _export(settings)
        uvicorn.run("chatgate.app:app_from_env", factory=True, workers=server.workers, **options)
    else:
        uvicorn.run(create_app(config), **options)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from chatgate.state import build_state, close_state

    _, config = resolve_config(args)

    async def listing() -> list[tuple[str, str, str]]:
        state = await build_state(config)
        try:
            return [
                (name, dep.provider_name, dep.upstream_model)
                for name, dep in state.router.public_models()
            ]
        finally:
            await close_state(state)

    rows = asyncio.run(listing())
    width = max([len("MODEL"), *(len(r[0]) for r in rows)])
    pwidth = max([len("PROVIDER"), *(len(r[1]) for r in rows)])
    print(f"{'MODEL':<{width}}  {'PROVIDER':<{pwidth}}  UPSTREAM MODEL")
    for name, provider, upstream in rows:
        print(f"{name:<{width}}  {provider:<{pwidth}}  {upstream}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"chatgate: config error: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    except GatewayError as exc:
        print(f"chatgate: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
