"""Side by side: one prompt to two or three models, one answer each as siblings under the one
user message, each its own server-owned generation (admitted, streamed, resumable, kept)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.chat.conftest import (
    alice,
    chat_server,
    new_conversation,
    pg_server,
    send,
    wait_status,
)
from tests.fakes.upstream import FakeUpstream

__all__ = ["alice", "chat_server", "pg_server"]


def test_two_models_answer_as_siblings_and_one_is_kept(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=3)
    cid = new_conversation(alice)["id"]
    before = len(fake.requests)
    started = send(alice, cid, "compare us", models=["fake-model", "pirate"])
    gens = started["generations"]
    assert [g["model"] for g in gens] == ["fake-model", "pirate"]
    assert len({g["id"] for g in gens}) == 2 and len({g["message_id"] for g in gens}) == 2
    assert started["generation_id"] == gens[0]["id"]
    assert started["message_id"] == gens[0]["message_id"]
    answers = [wait_status(alice, cid, g["message_id"]) for g in gens[:1]]
    # The second answer is a sibling, not on the active branch: read it through its generation.
    second = alice.get(f"/api/generations/{gens[1]['id']}").json()["message"]
    for _ in range(200):
        if second["status"] != "streaming":
            break
        second = alice.get(f"/api/generations/{gens[1]['id']}").json()["message"]
    answers.append(second)
    assert [a["status"] for a in answers] == ["done", "done"]
    assert [a["model"] for a in answers] == ["fake-model", "pirate"]
    assert answers[0]["parent_id"] == answers[1]["parent_id"] == started["user_message_id"]

    # Two upstream calls, each with the one user message (pirate adds its system prompt).
    calls = fake.requests[before:]
    assert len(calls) == 2
    for call in calls:
        assert call["body"]["messages"][-1] == {"role": "user", "content": "compare us"}
    assert any(
        m == {"role": "system", "content": "Talk like a pirate."}
        for call in calls
        for m in call["body"]["messages"]
    )

    conv: dict[str, Any] = alice.get(f"/api/conversations/{cid}").json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]  # one user message
    assert conv["active_leaf_id"] == gens[0]["message_id"]
    assert conv["messages"][1]["sibling_ids"] == [g["message_id"] for g in gens]

    # Keep the second: the existing branch switch; the first stays a sibling.
    r = alice.patch(f"/api/conversations/{cid}", json={"active_leaf_id": gens[1]["message_id"]})
    assert r.status_code == 200
    kept = r.json()["messages"][-1]
    assert kept["id"] == gens[1]["message_id"] and kept["model"] == "pirate"
    assert kept["sibling_ids"] == [g["message_id"] for g in gens]
    # The next turn continues the kept answer.
    nxt = send(alice, cid, "and then?")
    assert nxt["parent_id"] != gens[0]["message_id"]
    done = wait_status(alice, cid, nxt["message_id"])
    assert done["status"] == "done"
    conv = alice.get(f"/api/conversations/{cid}").json()
    assert conv["messages"][1]["id"] == gens[1]["message_id"]


def test_three_models_and_bad_requests(alice: httpx.Client, fake: FakeUpstream) -> None:
    fake.configure(chunks=1)
    cid = new_conversation(alice)["id"]
    started = send(alice, cid, "three", models=["fake-model", "pirate", "r1-distill"])
    assert len(started["generations"]) == 3
    wait_status(alice, cid, started["message_id"])

    def refused(body: dict[str, Any]) -> dict[str, Any]:
        r = alice.post(f"/api/conversations/{cid}/messages", json=body)
        assert r.status_code in (400, 404, 422), r.text
        error: dict[str, Any] = r.json()["error"]
        return error

    for models in (["fake-model"], ["fake-model", "fake-model"], ["a", "b", "c", "d"]):
        error = refused({"content": "x", "models": models})
        assert "models" in error["message"] or error.get("param") == "models", error
    error = refused({"content": "x", "models": ["fake-model", "pirate"], "model": "pirate"})
    assert "not both" in error["message"]
    error = refused({"content": "x", "models": ["fake-model", "no-such-model"]})
    assert "no-such-model" in error["message"]
    # Nothing was stored by the refused sends.
    conv = alice.get(f"/api/conversations/{cid}").json()
    assert conv["message_count"] == 4


def test_each_answer_is_counted_against_the_running_cap(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    """Three answers at once count as three of ``max_generations_per_user`` (8 here)."""
    fake.configure(hang=True)
    cid = new_conversation(alice)["id"]
    started = [  # each a new first message: the others are still being written
        send(alice, cid, f"q{i}", models=["fake-model", "pirate"], parent_id=None) for i in range(4)
    ]
    assert sum(len(s["generations"]) for s in started) == 8
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "one more"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_generations"
    for s in started:
        for g in s["generations"]:
            alice.post(f"/api/generations/{g['id']}/stop")
