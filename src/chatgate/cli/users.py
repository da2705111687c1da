"""``chatgate users create|list``: the users of the web chat, with argon2-hashed passwords."""

from __future__ import annotations

import argparse
import getpass
import sys

from chatgate.chat.accounts import Account, Accounts
from chatgate.chat.passwords import MIN_LENGTH
from chatgate.cli.common import Commands, OneLineParser, store_options
from chatgate.cli.db import database_url, run_db
from chatgate.errors import ConfigError, GatewayError
from chatgate.storage import Database, upgrade


def add_commands(sub: Commands) -> None:
    users = sub.add_parser(
        "users",
        help="manage chat users (create, list)",
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
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create.set_defaults(func=cmd_users_create)
    listing = actions.add_parser("list", help="list users", description="List every user.")
    store_options(listing)
    listing.set_defaults(func=cmd_users_list)


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
    url = database_url(args)

    async def listing() -> list[Account]:
        await upgrade(url)
        async with Database(url) as db:
            return await Accounts(db, "off", False).list_users()

    for account in run_db(url, listing()):
        flags = ["admin"] if account.is_admin else []
        if account.implicit:
            flags.append("single-user mode, no password")
        print(f"{account.id}  {account.name}" + (f"  ({', '.join(flags)})" if flags else ""))
    return 0
