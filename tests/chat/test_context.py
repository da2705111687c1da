"""The context builder: within the window, system prompt kept, dropped turns summarised into an
editable checkpoint, and every generation's record of what was sent, dropped or summarised."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chatgate.chat.context import SUMMARY_PREFIX, ContextBuilder
from chatgate.chat.tokens import TokenCounter
from chatgate.chat.tree import Tree
from tests.chat.conftest import ChatServer, alice, chat_server, pg_server, wait_status
from tests.fakes.upstream import FakeUpstream

__all__ = ["alice", "chat_server", "pg_server"]

WINDOW = 1000
GATEWAY_CONFIG = {
    "models": {"tiny": {"provider": "fake", "model": "fake-model", "context_window": WINDOW}}
}
SYSTEM = "You are the keeper of a very long conversation."


def rows(n: int, size: int = 100) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"m{i}",
                "parent_id": f"m{i - 1}" if i else None,
                "role": ("user", "assistant")[i % 2],
                "content": f"{i:04d} " + "x" * size,
                "context": None,
            }
        )
    return out


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    counter = TokenCounter()
    return sum(counter.message("m", m) for m in messages)


async def test_trims_to_the_newest_turns_within_budget() -> None:
    tree = Tree(rows(300))
    builder = ContextBuilder(TokenCounter(), summarize=False, reply_tokens=1024)
    branch = tree.branch(None)
    built = await builder.build(
        tree, branch, model="m", window=WINDOW, system_prompt=SYSTEM, params={},
        summarizer=None, new_summary_id="s1",
    )  # fmt: skip
    assert built.budget == WINDOW - WINDOW // 4
    assert built.messages[0] == {"role": "system", "content": SYSTEM}
    assert built.sent == branch[-len(built.sent) :] and built.sent[-1] == "m299"
    assert built.dropped == branch[: -len(built.sent)] and built.summarised == []
    assert built.estimate <= built.budget and prompt_tokens(built.messages) <= built.budget
    assert len(built.sent) > 5


async def test_max_tokens_sets_the_reply_budget() -> None:
    tree = Tree(rows(300))
    builder = ContextBuilder(TokenCounter(), summarize=False, reply_tokens=1024)
    built = await builder.build(
        tree, tree.branch(None), model="m", window=WINDOW, system_prompt=None,
        params={"max_tokens": 600}, summarizer=None, new_summary_id="s1",
    )  # fmt: skip
    assert built.reply_tokens == 600 and built.budget == 400 and built.estimate <= 400


async def test_the_newest_message_goes_even_when_too_long() -> None:
    tree = Tree(rows(3, size=20_000))
    builder = ContextBuilder(TokenCounter(), summarize=False, reply_tokens=1024)
    built = await builder.build(
        tree, tree.branch(None), model="m", window=WINDOW, system_prompt=None, params={},
        summarizer=None, new_summary_id="s1",
    )  # fmt: skip
    assert built.sent == ["m2"] and built.dropped == ["m0", "m1"]


async def test_summarises_dropped_turns_once() -> None:
    calls: list[list[dict[str, Any]]] = []

    async def summarizer(messages: list[dict[str, Any]], max_tokens: int) -> str:
        calls.append(messages)
        return f"summary #{len(calls)}"

    data = rows(300)
    tree = Tree(data)
    builder = ContextBuilder(TokenCounter(), summarize=True, reply_tokens=1024)
    branch = tree.branch(None)
    built = await builder.build(
        tree, branch, model="m", window=WINDOW, system_prompt=SYSTEM, params={},
        summarizer=summarizer, new_summary_id="s1",
    )  # fmt: skip
    assert len(calls) == 1 and built.summary_id == "s1"
    assert built.new_summary is not None and built.new_summary["role"] == "summary"
    assert built.new_summary["parent_id"] == branch[-len(built.sent) - 1]
    assert built.messages[1] == {"role": "system", "content": SUMMARY_PREFIX + "summary #1"}
    # every message is accounted for exactly once, in order
    assert built.dropped + built.summarised + built.sent == branch or (
        sorted(built.dropped + built.summarised) == sorted(branch[: -len(built.sent)])
    )
    assert built.summarised and built.summarised[-1] == built.new_summary["parent_id"]
    assert prompt_tokens(built.messages) <= built.budget

    # Next turn: the checkpoint is used, nothing is summarised again.
    data += [built.new_summary, {"id": "m300", "parent_id": "m299", "role": "assistant",
             "content": "ok", "context": None}]  # fmt: skip
    tree = Tree(data)
    again = await builder.build(
        tree, tree.branch(None), model="m", window=WINDOW, system_prompt=SYSTEM, params={},
        summarizer=summarizer, new_summary_id="s2",
    )  # fmt: skip
    assert len(calls) == 1 and again.summary_id == "s1" and again.new_summary is None
    assert again.summarised == built.summarised and again.dropped == built.dropped


async def test_a_failed_summary_drops_instead() -> None:
    async def broken(messages: list[dict[str, Any]], max_tokens: int) -> str:
        raise RuntimeError("model down")

    tree = Tree(rows(300))
    builder = ContextBuilder(TokenCounter(), summarize=True, reply_tokens=1024)
    built = await builder.build(
        tree, tree.branch(None), model="m", window=WINDOW, system_prompt=None, params={},
        summarizer=broken, new_summary_id="s1",
    )  # fmt: skip
    assert built.summary_id is None and built.summarised == [] and built.dropped
    assert built.summary_error == "model down"


def test_calibration_follows_the_reported_usage() -> None:
    counter = TokenCounter()
    assert counter.count("m", "x" * 400) == 100
    for _ in range(20):
        counter.calibrate("m", 100.0, 50)
    assert 49 <= counter.count("m", "x" * 400) <= 52
    assert counter.count("other", "x" * 400) == 100  # per model


# -- through the API, on both databases ----------------------------------------------------------
@pytest.mark.parametrize("n", [400])
def test_long_conversation_is_summarised_within_the_window(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream, n: int
) -> None:
    fake.configure(chunks=2)
    messages = [
        {"role": ("user", "assistant")[i % 2], "content": f"turn {i} " + "lorem ipsum " * 8}
        for i in range(n)
    ]
    body = {"title": "Long", "model": "tiny", "system_prompt": SYSTEM, "messages": messages}
    conv = alice.post("/api/conversations/import", json=body).json()
    cid = conv["id"]
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "and now?"})
    started = r.json()
    answer = wait_status(alice, cid, started["message_id"])
    assert answer["status"] == "done", answer

    calls = [q["body"] for q in fake.requests]
    summary_call, answer_call = calls[-2], calls[-1]
    assert (
        summary_call.get("stream") is not True
        and "Summarise" in summary_call["messages"][0]["content"]
    )
    sent = answer_call["messages"]
    assert sent[0] == {"role": "system", "content": SYSTEM}  # the system prompt is kept
    assert sent[1]["role"] == "system" and sent[1]["content"].startswith(SUMMARY_PREFIX)
    assert sent[-1] == {"role": "user", "content": "and now?"}
    budget = answer["context"]["budget"]
    assert sum(len(m["content"]) // 4 + 4 for m in sent) <= budget  # the fake's own count

    context = answer["context"]
    assert (
        len(context["sent"]) == len(sent) - 2 and context["sent"][-1] == started["user_message_id"]
    )
    assert len(context["sent"]) + len(context["summarised"]) + len(context["dropped"]) == n + 1
    assert context["summarised"]

    view = alice.get(f"/api/conversations/{cid}").json()
    summary = next(m for m in view["messages"] if m["role"] == "summary")
    assert summary["id"] == context["summary_id"] and summary["sibling_ids"] == []
    position = [m["id"] for m in view["messages"]].index(summary["id"])
    assert view["messages"][position - 1]["id"] == context["summarised"][-1]

    # The checkpoint is editable, and the next answer starts from the edited text.
    r = alice.patch(
        f"/api/conversations/{cid}/messages/{summary['id']}", json={"content": "EDITED"}
    )
    assert r.status_code == 200 and r.json()["content"] == "EDITED"
    started = alice.post(f"/api/conversations/{cid}/messages", json={"content": "more"}).json()
    wait_status(alice, cid, started["message_id"])
    assert fake.requests[-1]["body"]["messages"][1]["content"] == SUMMARY_PREFIX + "EDITED"
    # Only summaries are edited in place.
    r = alice.patch(
        f"/api/conversations/{cid}/messages/{started['user_message_id']}", json={"content": "x"}
    )
    assert r.status_code == 400
