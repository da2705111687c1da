"""``chatgate serve``: run the gateway under uvicorn, in one process or several workers."""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from chatgate.cli.common import Commands, config_option, database_option, resolve_config
from chatgate.config import Settings
from chatgate.observability.logging import setup_logging


def add_commands(sub: Commands) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gateway (HTTP API, docs, health)",
        description="Serve the OpenAI-compatible API on HOST:PORT. With no configuration it "
        "serves the bundled local model as `local`, plus any provider found in the environment "
        "(DEEPSEEK_API_KEY, OPENAI_API_KEY, GIGACHAT_CREDENTIALS, OLLAMA_BASE_URL).",
    )
    config_option(serve)
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
    database_option(serve)
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
        "ws_max_size": server.max_body_bytes,  # a WebSocket frame is a body too
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
