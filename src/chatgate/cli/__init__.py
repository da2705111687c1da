"""The ``chatgate`` command: ``serve``, ``models``, ``keys``, ``db``, ``users`` and ``chat``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from chatgate.errors import ConfigError, GatewayError

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: the commands bring in the database layer and more, which
    # `import chatgate.cli` alone does not need.
    from chatgate.cli import chat, db, keys, models, serve, users

    parser = argparse.ArgumentParser(
        prog="chatgate",
        description="Self-hosted LLM chat service and OpenAI-compatible gateway.",
        epilog="Every option is also an environment variable CHATGATE_<OPTION>, "
        "e.g. CHATGATE_PORT=9000. Run `chatgate COMMAND -h` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (serve, models, keys, db, users, chat):
        command.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a config error prints one line naming the field and exits 2."""
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
