"""``chatgate users create|list|update|password|disable|enable|sign-out``: the users of the
web chat, with argon2-hashed passwords and a client key's policy (rpm, tpm, budget, models).

Changes made here reach a running server at once in the database; its replicas drop what they
cached within ``auth.key_cache_ttl`` and close the streams of ended sessions within
``auth.session_check_seconds``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chatgate.chat.accounts import UNSET, Account, Accounts
from chatgate.chat.passwords import MIN_LENGTH
from chatgate.cli.common import Commands, OneLineParser, store_options
from chatgate.cli.db import database_url, run_db
from chatgate.cli.keys import amount, model_list, positive_int, rate
from chatgate.errors import ConfigError, GatewayError
from chatgate.gateway.pricing import format_amount
from chatgate.storage import Database, upgrade

T = TypeVar("T")
CLEARABLE = {
    "rpm": "rpm",
    "tpm": "tpm",
    "budget-tokens": "budget_tokens",
    "budget-cost": "budget_cost_nanos",
    "models": "models",
}


def clear_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in CLEARABLE]
    if not names or wrong:
        raise argparse.ArgumentTypeError(
            f"expected some of {','.join(CLEARABLE)} separated by commas, got {text!r}"
        )
    return names


def add_commands(sub: Commands) -> None:
    users = sub.add_parser(
        "users",
        help="manage chat users (create, list, update, password, disable, sign-out)",
        description="Users of the web chat and the /api/ chat API. Passwords are stored as "
        "argon2 hashes.",
    )
    actions = users.add_subparsers(
        dest="users_command", metavar="ACTION", required=True, parser_class=OneLineParser
    )
    create = actions.add_parser(
        "create",
        help="create a user",
        description="Create a user (or give the implicit single-user-mode user `local` a "
        "password, keeping its conversations). The password is asked for twice, or read from "
        "the first line of stdin with --password-stdin.",
    )
    store_options(create)
    create.add_argument("name", metavar="NAME")
    create.add_argument("--admin", action="store_true", help="make the user an administrator")
    _password_stdin(create)
    create.set_defaults(func=cmd_users_create)

    listing = actions.add_parser(
        "list", help="list users", description="List every user with their limits and state."
    )
    store_options(listing)
    listing.set_defaults(func=cmd_users_list)

    update = actions.add_parser(
        "update",
        help="set or clear a user's limits",
        description="Set a user's limits (as a client key's); --clear removes limits, e.g. "
        "--clear rpm,models. Tokens already used still count against a new budget.",
    )
    store_options(update)
    update.add_argument("name", metavar="NAME")
    update.add_argument("--rpm", type=rate, metavar="N", help="requests per minute")
    update.add_argument("--tpm", type=rate, metavar="N", help="tokens per minute")
    update.add_argument(
        "--budget-tokens", type=positive_int, metavar="N", help="total token budget (all time)"
    )
    update.add_argument(
        "--budget-cost",
        type=amount,
        metavar="AMOUNT",
        help="total spending budget (all time), in the config's pricing.currency (USD)",
    )
    update.add_argument("--models", type=model_list, metavar="A,B", help="allowed models")
    update.add_argument(
        "--clear",
        type=clear_list,
        metavar="FIELDS",
        default=[],
        help="limits to remove: rpm,tpm,budget-tokens,budget-cost,models",
    )
    update.set_defaults(func=cmd_users_update)

    password = actions.add_parser(
        "password",
        aliases=["passwd"],
        help="change a user's password (signs them out everywhere)",
        description="Set a new password, asked for twice or read from stdin with "
        "--password-stdin. Every session of the user ends.",
    )
    store_options(password)
    password.add_argument("name", metavar="NAME")
    _password_stdin(password)
    password.set_defaults(func=cmd_users_password)

    for action, help_text, func in (
        ("disable", "disable a user: no sign-in, every session ends", cmd_users_disable),
        ("enable", "enable a disabled user again", cmd_users_enable),
        ("sign-out", "sign a user out everywhere (end every session)", cmd_users_sign_out),
    ):
        description = help_text[0].upper() + help_text[1:] + "."
        parser = actions.add_parser(action, help=help_text, description=description)
        store_options(parser)
        parser.add_argument("name", metavar="NAME")
        parser.set_defaults(func=func)


def _password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def read_password(from_stdin: bool) -> str:
    """From a hidden prompt, asked twice, or the first line of stdin: never from the command
    line, where other local users could see it."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise ConfigError("password", "the two passwords differ")
    if len(password) < MIN_LENGTH:
        raise ConfigError("password", f"needs at least {MIN_LENGTH} characters")
    return password


def cmd_users_create(args: argparse.Namespace) -> int:
    """Creating the first user with a password ends the zero-config single-user mode."""
    url = database_url(args)
    password = read_password(args.password_stdin)

    async def create() -> Account:
        await upgrade(url)
        async with Database(url) as db:
            return await Accounts(db, "off", False).create_user(args.name, password, args.admin)

    try:
        account = run_db(url, create())
    except GatewayError as exc:
        if exc.status == 400:  # a bad name or an existing user: the user's to fix
            print(f"chatgate users create: {exc.message}", file=sys.stderr)
            return 2
        raise
    role = "administrator" if account.is_admin else "user"
    print(f"Created {role} {account.name} ({account.id}).")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    for account in _run(args, lambda accounts: accounts.list_users()):
        flags = ["admin"] if account.is_admin else []
        if account.implicit:
            flags.append("single-user mode, no password")
        if account.disabled:
            flags.append("disabled")
        shown = f"  ({', '.join(flags)})" if flags else ""
        print(f"{account.id}  {account.name}{shown}  {_policy(account)}")
    return 0


def _policy(account: Account) -> str:
    def num(value: int | None) -> str:
        return "-" if value is None else str(value)

    def money(value: int | None) -> str:
        return "-" if value is None else format_amount(value)

    models = ",".join(sorted(account.models)) if account.models is not None else "all"
    return (
        f"rpm={num(account.rpm)} tpm={num(account.tpm)} budget={num(account.budget_tokens)} "
        f"used={account.tokens_used} models={models} "
        f"budget_cost={money(account.budget_cost_nanos)} cost_used={money(account.cost_used_nanos)}"
    )


def _run(args: argparse.Namespace, work: Callable[[Accounts], Awaitable[T]]) -> T:
    url = database_url(args)

    async def go() -> T:
        await upgrade(url)
        async with Database(url) as db:
            return await work(Accounts(db, "off", False))

    return run_db(url, go())


def _on_user(args: argparse.Namespace, work: Callable[[Accounts, Account], Awaitable[Any]]) -> Any:
    """Run ``work`` on the user named ``args.name``; None when there is no such user."""

    async def find(accounts: Accounts) -> Any:
        account = await accounts.by_name(args.name)
        return None if account is None else (account, await work(accounts, account))

    return _run(args, find)


def _no_user(args: argparse.Namespace) -> int:
    print(f"chatgate users {args.users_command}: no user named {args.name!r}", file=sys.stderr)
    return 2


def cmd_users_update(args: argparse.Namespace) -> int:
    given = {
        "rpm": args.rpm,
        "tpm": args.tpm,
        "budget_tokens": args.budget_tokens,
        "budget_cost_nanos": args.budget_cost,
        "models": args.models,
    }
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    for name in args.clear:
        field = CLEARABLE[name]
        if field in changes:
            print(
                f"chatgate users update: --{name} and --clear {name} contradict each other",
                file=sys.stderr,
            )
            return 2
        changes[field] = None
    if not changes:
        print("chatgate users update: nothing to change (see -h)", file=sys.stderr)
        return 2
    fields = {k: changes.get(k, UNSET) for k in given}
    try:
        found = _on_user(args, lambda a, u: a.update_policy(u.id, **fields))
    except GatewayError as exc:
        if exc.status == 400:
            print(f"chatgate users update: {exc.message}", file=sys.stderr)
            return 2
        raise
    if found is None:
        return _no_user(args)
    account = found[1]
    print(f"Updated {account.name}: {_policy(account)}")
    return 0


def cmd_users_password(args: argparse.Namespace) -> int:
    password = read_password(args.password_stdin)
    found = _on_user(args, lambda a, u: a.set_password(u.id, password))
    if found is None:
        return _no_user(args)
    print(f"Changed the password of {args.name}; every session of theirs has ended.")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    found = _on_user(args, lambda a, u: a.set_disabled(u.id, True))
    if found is None:
        return _no_user(args)
    print(f"Disabled {args.name}: no sign-in, every session has ended.")
    return 0


def cmd_users_enable(args: argparse.Namespace) -> int:
    found = _on_user(args, lambda a, u: a.set_disabled(u.id, False))
    if found is None:
        return _no_user(args)
    print(f"Enabled {args.name}.")
    return 0


def cmd_users_sign_out(args: argparse.Namespace) -> int:
    found = _on_user(args, lambda a, u: a.end_sessions(u.id))
    if found is None:
        return _no_user(args)
    print(f"Signed {args.name} out everywhere ({found[1]} sessions ended).")
    return 0
