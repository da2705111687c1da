"""``chatgate models``: list the models chatgate would route: provider, upstream name, and where
each came from (``configured``, ``listed`` by the provider, ``fallback`` when listing failed,
``alias of X``)."""

from __future__ import annotations

import argparse
import asyncio

from chatgate.cli.common import Commands, resolve_config, store_options


def add_commands(sub: Commands) -> None:
    models = sub.add_parser(
        "models",
        help="list routable models",
        description="List the models chatgate would route, with their provider, upstream name "
        "and source: configured, listed (by the provider's own model list), fallback (the "
        "provider's fallback_models, because listing failed) or alias of X.",
    )
    store_options(models)
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from chatgate.state import build_state, close_state

    _, config = resolve_config(args)

    async def listing() -> list[tuple[str, ...]]:
        state = await build_state(config)
        try:
            return [
                (
                    name,
                    dep.provider_name,
                    dep.upstream_model,
                    dep.source if dep.kind == "chat" else f"{dep.source}, embeddings",
                )
                for name, dep in state.router.public_models()
            ]
        finally:
            await close_state(state)

    rows = [("MODEL", "PROVIDER", "UPSTREAM MODEL", "SOURCE"), *asyncio.run(listing())]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]]))
    return 0
