"""The context builder: within the window, system prompt kept, dropped turns summarised into an
editable checkpoint, and every generation's record of what was sent, dropped or summarised."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from chatgate.chat.accounts import Accounts
from chatgate.chat.context import SUMMARY_PREFIX, ContextBuilder
from chatgate.chat.store import ConversationStore
from chatgate.chat.tokens import TokenCounter
from chatgate.chat.tree import Tree
from chatgate.storage import Database
from tests.chat.conftest import (
    PASSWORD,
    ChatServer,
    alice,
    chat_server,
    pg_server,
    wait_status,
)
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


async def test_reasoning_goes_back_only_with_a_tool_call_turn() -> None:
    """DeepSeek's thinking mode needs a tool-call turn's reasoning back; other turns' not."""
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    data = [
        {"id": "u1", "parent_id": None, "role": "user", "content": "hi"},
        {"id": "a1", "parent_id": "u1", "role": "assistant", "content": "hello",
         "reasoning": "greet back"},
        {"id": "u2", "parent_id": "a1", "role": "user", "content": "weather?"},
        {"id": "a2", "parent_id": "u2", "role": "assistant", "content": "",
         "reasoning": "look it up", "tool_calls": [call]},
        {"id": "t1", "parent_id": "a2", "role": "tool", "content": "-3",
         "tool_call_id": "call_1"},
    ]  # fmt: skip
    tree = Tree(data)
    builder = ContextBuilder(TokenCounter(), summarize=False, reply_tokens=64)
    built = await builder.build(
        tree, tree.branch(None), model="m", window=WINDOW, system_prompt=None, params={},
        summarizer=None, new_summary_id="s1",
    )  # fmt: skip
    assert built.sent == ["u1", "a1", "u2", "a2", "t1"]
    assert built.messages[1] == {"role": "assistant", "content": "hello"}
    assert built.messages[3] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [call],
        "reasoning_content": "look it up",
    }
    assert built.messages[4] == {"role": "tool", "content": "-3", "tool_call_id": "call_1"}


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

    # The open carries the counts; the context endpoint, the ids.
    counts = answer["context"]
    r = alice.get(f"/api/conversations/{cid}/messages/{answer['id']}/context")
    assert r.status_code == 200, r.text
    context = r.json()
    assert (
        len(context["sent"]) == len(sent) - 2 and context["sent"][-1] == started["user_message_id"]
    )
    assert len(context["sent"]) + len(context["summarised"]) + len(context["dropped"]) == n + 1
    assert context["summarised"]
    assert {k: counts[f"{k}_count"] for k in ("sent", "dropped", "summarised")} == {
        k: len(context[k]) for k in ("sent", "dropped", "summarised")
    }
    assert counts["first_sent_id"] == context["sent"][0]
    assert {
        k: v for k, v in context.items() if k not in ("sent", "dropped", "summarised")
    } == counts

    view = alice.get(f"/api/conversations/{cid}").json()
    summary = next(m for m in view["messages"] if m["role"] == "summary")
    assert summary["id"] == context["summary_id"] and summary["sibling_ids"] == []
    position = [m["id"] for m in view["messages"]].index(summary["id"])
    assert view["messages"][position - 1]["id"] == context["summarised"][-1]
    # The checkpoint keeps the ids it covers (the builder reads them), shown counted too.
    assert summary["context"]["summarised_count"] == len(context["summarised"])
    covered = alice.get(f"/api/conversations/{cid}/messages/{summary['id']}/context").json()
    assert covered["summarised"] == context["summarised"]

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


# -- the records: counts with every open, the ids on demand --------------------------------------
def _export(n: int, lists_only: bool) -> dict[str, Any]:
    """A chatgate export of one branch whose answers each list every earlier message as sent
    (``lists_only``: as exports made before the counts were stored)."""
    messages: list[dict[str, Any]] = []
    for i in range(n):
        m: dict[str, Any] = {
            "id": f"x{i}",
            "parent_id": f"x{i - 1}" if i else None,
            "role": ("user", "assistant")[i % 2],
            "content": f"turn {i}",
        }
        if i % 2:
            sent = [f"x{j}" for j in range(1, i)]
            m["context"] = {"sent": sent, "dropped": ["x0"], "summarised": [], "summary_id": None,
                            "window": 131072, "budget": 127000, "reply_tokens": 4096,
                            "prompt_tokens_estimate": 10 * i}  # fmt: skip
            if not lists_only:
                m["context"] |= {"sent_count": len(sent), "dropped_count": 1,
                                 "summarised_count": 0, "first_sent_id": "x1"}  # fmt: skip
        messages.append(m)
    conversation = {"title": "Records", "model": "tiny", "active_leaf_id": f"x{n - 1}"}
    return {"format": "chatgate.conversation", "conversation": conversation, "messages": messages}


@pytest.mark.parametrize("lists_only", [True, False], ids=["old-export", "new-export"])
def test_the_open_carries_counts_and_the_endpoint_the_ids(
    chat_server: ChatServer, alice: httpx.Client, lists_only: bool
) -> None:
    n = 200
    r = alice.post("/api/conversations/import", json=_export(n, lists_only))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    view = alice.get(f"/api/conversations/{cid}").json()
    ids = [m["id"] for m in view["messages"]]
    assert len(ids) == n
    for i, m in enumerate(view["messages"]):
        if m["role"] != "assistant":
            assert m["context"] is None
            continue
        # Small: no id lists, whatever the conversation's length.
        assert m["context"] == {
            "sent_count": i - 1, "dropped_count": 1, "summarised_count": 0,
            "first_sent_id": ids[1] if i > 1 else None, "summary_id": None, "window": 131072,
            "budget": 127000, "reply_tokens": 4096, "prompt_tokens_estimate": 10 * i,
        }  # fmt: skip
        if i in (1, n - 1):
            full = alice.get(f"/api/conversations/{cid}/messages/{m['id']}/context").json()
            assert full == {**m["context"], "sent": ids[1:i], "dropped": [ids[0]], "summarised": []}
    # A message without a record, and one of another conversation: 404.
    assert alice.get(f"/api/conversations/{cid}/messages/{ids[0]}/context").status_code == 404
    other = alice.post("/api/conversations", json={"model": "tiny"}).json()["id"]
    r = alice.get(f"/api/conversations/{other}/messages/{ids[1]}/context")
    assert r.status_code == 404

    # The export carries each record in full; its import reads the same (with new ids).
    exported = alice.get(f"/api/conversations/{cid}/export").json()
    last = exported["messages"][-1]["context"]
    assert last["sent"] == ids[1:-1] and last["sent_count"] == n - 2
    again = alice.post("/api/conversations/import", json=exported).json()
    new_ids = [m["id"] for m in again["messages"]]
    assert set(new_ids).isdisjoint(ids)
    full = alice.get(f"/api/conversations/{again['id']}/messages/{new_ids[-1]}/context").json()
    assert full["sent"] == new_ids[1:-1] and full["dropped"] == [new_ids[0]]
    assert again["messages"][-1]["context"]["first_sent_id"] == new_ids[1]


def test_another_users_context_is_404(chat_server: ChatServer, alice: httpx.Client) -> None:
    cid = alice.post("/api/conversations/import", json=_export(4, False)).json()["id"]
    mid = alice.get(f"/api/conversations/{cid}").json()["messages"][-1]["id"]
    assert alice.get(f"/api/conversations/{cid}/messages/{mid}/context").status_code == 200
    bob = asyncio.run(chat_server.user())
    with chat_server.signed_in(bob) as client:
        r = client.get(f"/api/conversations/{cid}/messages/{mid}/context")
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"


async def test_rows_stored_before_the_split_still_open(chat_server: ChatServer) -> None:
    """A row whose ``context`` still holds the lists (written before migration 0003)."""
    name = f"old-rows-{chat_server.backend}"
    async with Database(chat_server.db_url) as db:
        store = ConversationStore(db)
        user = await Accounts(db, "off", True).create_user(name, PASSWORD)
        conv = await store.create(user.id, {"model": "tiny"})
        old = {"sent": ["a", "b"], "dropped": ["z"], "summarised": [], "summary_id": None,
               "window": 1000, "budget": 750, "reply_tokens": 250,
               "prompt_tokens_estimate": 9}  # fmt: skip
        rows = [
            {"id": "z", "role": "user", "content": "0"},
            {"id": "a", "parent_id": "z", "role": "assistant", "content": "1"},
            {"id": "b", "parent_id": "a", "role": "user", "content": "2"},
            {"id": "c", "parent_id": "b", "role": "assistant", "content": "3", "context": old},
        ]
        await store.add_messages(conv["id"], rows, "c")
        await store.close()
    with chat_server.signed_in(name) as client:
        view = client.get(f"/api/conversations/{conv['id']}").json()
        assert view["messages"][-1]["context"] == {
            "sent_count": 2, "dropped_count": 1, "summarised_count": 0, "first_sent_id": "a",
            "summary_id": None, "window": 1000, "budget": 750, "reply_tokens": 250,
            "prompt_tokens_estimate": 9,
        }  # fmt: skip
        full = client.get(f"/api/conversations/{conv['id']}/messages/c/context").json()
        assert full == {**view["messages"][-1]["context"], **old}
        exported = client.get(f"/api/conversations/{conv['id']}/export").json()
        assert exported["messages"][-1]["context"] == full
