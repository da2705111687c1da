"""``chatgate chat``: a terminal chat against a running chatgate, or the gateway in-process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

from chatgate.cli.chat_backends import Backend, connect
from chatgate.cli.common import Commands, store_options
from chatgate.errors import GatewayError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL = "local"
DIM, RESET = "\x1b[2m", "\x1b[0m"
HELP = "commands: /model NAME (switch model), /clear (forget the conversation), /exit"


def add_commands(sub: Commands) -> None:
    chat = sub.add_parser(
        "chat",
        help="chat in the terminal",
        description="Chat with a model in the terminal through the chatgate at --url; when "
        "nothing listens there, run the gateway in-process (zero-config: the local model). "
        "Ctrl-C stops an answer; Ctrl-C or Ctrl-D at the prompt leaves. Commands: "
        "/model NAME, /clear (forget the conversation), /exit. Reads stdin when piped too.",
    )
    store_options(chat)
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


class Printer:
    """Writes reasoning (dimmed on a terminal) above the answer, as the pieces arrive."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self.part: str | None = None  # "reasoning" | "answer" once something was written

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def reasoning(self, text: str) -> None:
        if self.part is None:
            self.part = "reasoning"
            if self.color:
                self.write(DIM)
        if self.part == "reasoning":
            self.write(text)

    def answer(self, text: str) -> None:
        if self.part == "reasoning":
            self.write((RESET if self.color else "") + "\n\n")
        self.part = "answer"
        self.write(text)

    def end(self, note: str = "") -> None:
        if self.part == "reasoning" and self.color:
            self.write(RESET)
        if self.part is not None or note:
            self.write(note + "\n")


async def answer(backend: Backend, body: dict[str, Any], printer: Printer) -> tuple[str, bool]:
    """Stream one answer; return its text (partial if stopped) and whether it completed."""
    parts: list[str] = []
    error: str | None = None
    stopped = False
    chunks = backend.stream(body)
    try:
        async for chunk in chunks:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict) or choice.get("index", 0) != 0:
                    continue
                if reasoning := delta.get("reasoning_content"):
                    printer.reasoning(reasoning)
                if content := delta.get("content"):
                    parts.append(content)
                    printer.answer(content)
    except asyncio.CancelledError:  # Ctrl-C: asyncio.Runner cancels this task
        stopped = True
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except GatewayError as exc:
        error = exc.message
    finally:
        await chunks.aclose()
    printer.end(" [stopped]" if stopped else "")
    if error is not None:
        print(f"error: {error}", file=sys.stderr, flush=True)
    return "".join(parts), not stopped and error is None


def cmd_chat(args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get("CHATGATE_URL") or DEFAULT_URL).rstrip("/")
    model = args.model or os.environ.get("CHATGATE_MODEL") or DEFAULT_MODEL
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict[str, Any]] = list(system)
    with asyncio.Runner() as runner:
        backend = runner.run(connect(url, args))
        try:
            while True:
                try:
                    line = input("> " if interactive else "")
                except (EOFError, KeyboardInterrupt):
                    if interactive:
                        print()
                    return 0
                text = line.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    command, _, rest = text.partition(" ")
                    if command in ("/exit", "/quit"):
                        return 0
                    if command == "/clear":
                        history = list(system)
                        print("(conversation cleared)")
                    elif command == "/model" and rest.strip():
                        model = rest.strip()
                        print(f"(model: {model})")
                    else:
                        print(f"(model: {model}) {HELP}")
                    continue
                history.append({"role": "user", "content": text})
                body = {"model": model, "messages": history, "stream": True}
                content, complete = runner.run(answer(backend, body, Printer(color)))
                if content or complete:
                    history.append({"role": "assistant", "content": content})
                else:
                    history.pop()  # nothing came back: forget the question too
        finally:
            runner.run(backend.close())
