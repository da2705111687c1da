"""``chatgate models``: list the models chatgate would route, with provider and upstream name."""

from __future__ import annotations

import argparse
import asyncio

from chatgate.cli.common import Commands, resolve_config, store_options


def add_commands(sub: Commands) -> None:
    models = sub.add_parser(
        "models",
        help="list routable models",
        description="List the models chatgate would route, with their provider and upstream name.",
    )
    store_options(models)
    models.set_defaults(func=cmd_models)


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
