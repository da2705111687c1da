"""``chatgate keys create|list|revoke``: client API keys, stored hashed and shown once."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from chatgate.cli.common import Commands, OneLineParser, store_options
from chatgate.cli.db import database_url, run_db
from chatgate.errors import NotFoundError
from chatgate.gateway.pricing import format_amount, from_nanos, to_nanos
from chatgate.storage import (
    ClientKey,
    Database,
    KeyRepository,
    KeyTotals,
    UsageRepository,
    upgrade,
)
from chatgate.storage.keys import MAX_BUDGET, MAX_EXPIRES_DAYS, MAX_RATE

T = TypeVar("T")


def positive_int(text: str, top: int = MAX_BUDGET) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= top:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {top}, got {text!r}")
    return value


def rate(text: str) -> int:
    return positive_int(text, MAX_RATE)


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value <= MAX_EXPIRES_DAYS:
        raise argparse.ArgumentTypeError(
            f"expected a number above 0 and at most {MAX_EXPIRES_DAYS:g}, got {text!r}"
        )
    return value


def amount(text: str) -> int:
    """A positive amount of money (``2.50``) as nano-units."""
    try:
        value = to_nanos(text)
    except (ArithmeticError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an amount of money, got {text!r}") from None
    if not 1 <= value <= MAX_BUDGET:
        raise argparse.ArgumentTypeError(f"expected an amount above 0, got {text!r}")
    return value


def model_list(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise argparse.ArgumentTypeError("expected model names separated by commas")
    return list(dict.fromkeys(models))


def add_commands(sub: Commands) -> None:
    keys = sub.add_parser(
        "keys",
        help="manage client API keys (create, list, revoke)",
        description="Client (virtual) keys for the /v1 API: stored hashed, shown once. "
        "With auth.require_keys (serve --require-keys) every /v1 call needs one.",
    )
    actions = keys.add_subparsers(
        dest="keys_command", metavar="ACTION", required=True, parser_class=OneLineParser
    )
    create = actions.add_parser(
        "create",
        help="create a key and print it (once)",
        description="Create a client key. Prints a summary, then the key alone on the last "
        "line (`| tail -1` in scripts); it is never shown again.",
    )
    store_options(create)
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--rpm", type=rate, metavar="N", help="requests per minute")
    create.add_argument("--tpm", type=rate, metavar="N", help="tokens per minute")
    create.add_argument(
        "--budget-tokens", type=positive_int, metavar="N", help="total token budget (all time)"
    )
    create.add_argument(
        "--budget-cost",
        type=amount,
        metavar="AMOUNT",
        help="total spending budget (all time), in the config's pricing.currency (USD)",
    )
    create.add_argument(
        "--models", type=model_list, metavar="A,B", help="allowed models (default: all)"
    )
    create.add_argument(
        "--expires-days", type=positive_number, metavar="N", help="expire after N days"
    )
    create.set_defaults(func=cmd_keys_create)

    listing = actions.add_parser(
        "list", help="list keys (never their secrets)", description="List every client key."
    )
    store_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_keys_list)

    revoke = actions.add_parser(
        "revoke",
        help="revoke a key",
        description="Revoke a key by its id (see `chatgate keys list`). Replicas stop accepting "
        "it within auth.key_cache_ttl seconds.",
    )
    store_options(revoke)
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(func=cmd_keys_revoke)


async def _with_keys(url: str, work: Callable[[KeyRepository], Awaitable[T]]) -> T:
    return await _with_db(url, lambda db: work(KeyRepository(db)))


async def _with_db(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    await upgrade(url)
    async with Database(url) as db:
        return await work(db)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _num(value: int | None, none: str = "-") -> str:
    return none if value is None else str(value)


def cmd_keys_create(args: argparse.Namespace) -> int:
    url = database_url(args)

    async def create(repo: KeyRepository) -> tuple[ClientKey, str]:
        return await repo.create(
            args.name,
            rpm=args.rpm,
            tpm=args.tpm,
            budget_tokens=args.budget_tokens,
            models=args.models,
            expires_days=args.expires_days,
            budget_cost_nanos=args.budget_cost,
        )

    key, secret = run_db(url, _with_keys(url, create))
    limits = ", ".join(
        [
            f"rpm {_num(key.rpm, 'unlimited')}",
            f"tpm {_num(key.tpm, 'unlimited')}",
            f"budget {_num(key.budget_tokens, 'unlimited')} tokens",
            f"spending budget {_money(key.budget_cost_nanos, 'unlimited')}",
            f"models {','.join(key.models) if key.models is not None else 'all'}",
            f"expires {_when(key.expires_at) + ' UTC' if key.expires_at else 'never'}",
        ]
    )
    print(f"Created key {key.id} ({key.name}): {limits}.")
    print("The key is shown only this once; store it now:")
    print(secret)
    return 0


def _money(nanos: int | None, none: str = "-") -> str:
    return none if nanos is None else format_amount(nanos)


def _by_currency(amounts: dict[str, int]) -> str:
    """``1.25 USD + 300 RUB``; ``-`` for nothing."""
    parts = [f"{format_amount(n)} {c}" for c, n in sorted(amounts.items()) if n]
    return " + ".join(parts) or "-"


def key_row(key: ClientKey, totals: KeyTotals | None = None) -> dict[str, Any]:
    """A key's public fields (no secret, no hash), its spending and its cache savings."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "active": key.is_active(),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget_tokens": key.budget_tokens,
        "tokens_used": key.tokens_used,
        "models": key.models,
        "budget_cost": None if key.budget_cost_nanos is None else from_nanos(key.budget_cost_nanos),
        "cost_used": from_nanos(key.cost_used_nanos or 0),
        "spend": {c: from_nanos(n) for c, n in totals.cost.items()} if totals else {},
        "saved": {c: from_nanos(n) for c, n in totals.saved.items()} if totals else {},
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def cmd_keys_list(args: argparse.Namespace) -> int:
    url = database_url(args)

    async def listing(db: Database) -> tuple[list[ClientKey], dict[str, KeyTotals]]:
        return await KeyRepository(db).list(), await UsageRepository(db).totals_by_key()

    keys, totals = run_db(url, _with_db(url, listing))
    if args.json:
        print(json.dumps([key_row(k, totals.get(k.id)) for k in keys], indent=2))
        return 0
    if not keys:
        print("No keys yet: create one with `chatgate keys create --name NAME`.")
        return 0
    headers = ["ID", "NAME", "PREFIX", "CREATED", "EXPIRES", "REVOKED", "RPM", "TPM", "BUDGET"]
    rows = [
        [
            k.id,
            k.name,
            k.prefix + "…",
            _when(k.created_at),
            _when(k.expires_at),
            _when(k.revoked_at),
            _num(k.rpm),
            _num(k.tpm),
            _num(k.budget_tokens),
            str(k.tokens_used),
            _money(k.budget_cost_nanos),
            _money(k.cost_used_nanos or 0),
            _by_currency(totals[k.id].cost) if k.id in totals else "-",
            _by_currency(totals[k.id].saved) if k.id in totals else "-",
            ",".join(k.models) if k.models is not None else "*",
        ]
        for k in keys
    ]
    more = ["USED", "COST-BUDGET", "COST-USED", "SPEND", "SAVED", "MODELS"]
    print(table([*headers, *more], rows))
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    url = database_url(args)
    key_id: str = args.key_id

    async def revoke(repo: KeyRepository) -> tuple[ClientKey | None, bool]:
        before = await repo.get(key_id)
        if before is None or not await repo.revoke(key_id):
            return None, False
        return await repo.get(key_id), before.revoked_at is not None

    key, already = run_db(url, _with_keys(url, revoke))
    if key is None:
        raise NotFoundError(f"no key with id {key_id!r} (see `chatgate keys list`)")
    when = _when(key.revoked_at)
    if already:
        print(f"Key {key.id} ({key.name}) was already revoked at {when} UTC.")
    else:
        print(f"Revoked key {key.id} ({key.name}) at {when} UTC.")
    return 0
