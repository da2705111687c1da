"""Server-owned generations over SSE, on SQLite and PostgreSQL, against the fake upstream:
answers survive disconnects, resume exactly from Last-Event-ID, stop really stops, branches."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.chat.conftest import (
    ChatServer,
    alice,
    chat_server,
    new_conversation,
    pg_server,
    send,
    wait_status,
)
from tests.fakes.upstream import FakeUpstream

__all__ = ["alice", "chat_server", "pg_server"]

Event = tuple[int | None, dict[str, Any]]


def follow(
    client: httpx.Client,
    gid: str,
    until: Callable[[list[Event]], bool] = lambda _: False,
    last_event_id: int | None = None,
) -> list[Event]:
    """SSE events of a generation, read until the stream ends or ``until`` says stop (then the
    connection is dropped, as a closed tab drops it)."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[Event] = []
    event_id: int | None = None
    with client.stream("GET", f"/api/generations/{gid}/events", headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                events.append((event_id, json.loads(line[6:])))
                event_id = None
                if until(events):
                    break
    return events


def text_of(events: list[Event]) -> str:
    return "".join(e.get("content", "") for _, e in events if e["type"] == "delta")


def deltas(n: int) -> Callable[[list[Event]], bool]:
    return lambda events: sum(e["type"] == "delta" for _, e in events) >= n


def expected(chunks: int) -> str:
    return "".join(f"tok{i} " for i in range(chunks))


def wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_events_are_numbered_and_complete(alice: httpx.Client, fake: FakeUpstream) -> None:
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "hi")
    events = follow(alice, started["generation_id"])
    assert [i for i, _ in events] == list(range(1, len(events) + 1))
    kinds = [e["type"] for _, e in events]
    assert kinds[:2] == ["start", "context"] and kinds[-1] == "done"
    assert events[0][1]["message_id"] == started["message_id"]
    done = events[-1][1]
    assert done["status"] == "done" and done["usage"]["completion_tokens"] == 24
    assert text_of(events) == expected(24)


def test_client_gone_mid_stream_the_whole_answer_is_saved(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=40, chunk_delay_ms=15)
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "tell me a long story")
    events = follow(alice, started["generation_id"], until=deltas(2))  # then the tab closes
    assert events[-1][1]["type"] == "delta"
    message = wait_status(alice, conv["id"], started["message_id"])
    assert message["status"] == "done" and message["content"] == expected(40)
    assert message["usage"]["completion_tokens"] == 40
    assert fake.cancelled == 0  # the upstream call was not cut short


def test_partial_answer_is_saved_in_batches_while_streaming(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=30, chunk_delay_ms=50)
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "slowly")
    seen: list[str] = []

    def partial_saved() -> bool:
        messages = alice.get(f"/api/conversations/{conv['id']}").json()["messages"]
        answer = messages[-1]
        if answer["status"] == "streaming" and answer["content"]:
            seen.append(answer["content"])
        return len(seen) >= 2

    wait_for(partial_saved)
    assert expected(30).startswith(seen[0]) and len(seen[1]) >= len(seen[0])
    assert wait_status(alice, conv["id"], started["message_id"])["content"] == expected(30)


def test_reconnect_with_last_event_id_gets_exactly_the_missing_events(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=30, chunk_delay_ms=20)
    conv = new_conversation(alice)
    gid = send(alice, conv["id"], "count")["generation_id"]
    first = follow(alice, gid, until=deltas(3))
    last_id = first[-1][0]
    assert last_id is not None
    rest = follow(alice, gid, last_event_id=last_id)
    ids = [i for i, _ in first + rest]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no repeat
    assert text_of(first + rest) == expected(30)
    assert rest[-1][1]["type"] == "done"
    # ?after= does the same for clients that cannot set headers
    again = follow(alice, gid, last_event_id=None, until=lambda _: False)
    assert [e for _, e in again] == [e for _, e in first + rest]  # a second tab: everything


def test_two_tabs_follow_at_once(alice: httpx.Client, fake: FakeUpstream) -> None:
    fake.configure(chunks=20, chunk_delay_ms=20)
    conv = new_conversation(alice)
    gid = send(alice, conv["id"], "both tabs")["generation_id"]
    results: list[list[Event]] = []
    late = threading.Thread(target=lambda: (time.sleep(0.15), results.append(follow(alice, gid))))
    late.start()
    early = follow(alice, gid)
    late.join()
    assert early == results[0]
    assert text_of(early) == expected(20)


def test_stop_cancels_the_upstream_and_keeps_the_partial_text(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=200, chunk_delay_ms=20)
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "go on forever")
    gid = started["generation_id"]
    follow(alice, gid, until=deltas(3))
    r = alice.post(f"/api/generations/{gid}/stop")
    assert r.status_code == 200
    stopped = r.json()
    assert stopped["status"] == "stopped" and stopped["message_id"] == started["message_id"]
    assert expected(200).startswith(stopped["content"]) and stopped["content"]
    assert len(stopped["content"]) < len(expected(200))
    wait_for(lambda: fake.cancelled == 1)
    events = follow(alice, gid)
    assert events[-1][1]["status"] == "stopped"
    assert text_of(events) == stopped["content"]
    message = wait_status(alice, conv["id"], started["message_id"])
    assert message["status"] == "stopped" and message["content"] == stopped["content"]
    # stopping again changes nothing
    assert alice.post(f"/api/generations/{gid}/stop").json()["status"] == "stopped"


def test_stop_while_the_upstream_has_not_answered(alice: httpx.Client, fake: FakeUpstream) -> None:
    fake.configure(hang=True)
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "hello?")
    wait_for(lambda: fake.in_flight == 1)
    assert alice.post(f"/api/generations/{started['generation_id']}/stop").json()["status"] == (
        "stopped"
    )
    wait_for(lambda: fake.cancelled == 1)
    assert wait_status(alice, conv["id"], started["message_id"])["content"] == ""


def test_upstream_error_is_saved_and_sent(alice: httpx.Client, fake: FakeUpstream) -> None:
    fake.configure(status=400)
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "bad")
    events = follow(alice, started["generation_id"])
    done = events[-1][1]
    assert done["status"] == "error" and done["error"]["type"] == "invalid_request_error"
    message = wait_status(alice, conv["id"], started["message_id"])
    assert message["status"] == "error" and "fake error 400" in message["error"]


def test_reasoning_is_kept_apart(alice: httpx.Client, fake: FakeUpstream) -> None:
    fake.configure(reasoning="thinking hard", chunks=4)
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "why?")
    events = follow(alice, started["generation_id"])
    assert "".join(e.get("reasoning", "") for _, e in events) == "thinking hard"
    message = wait_status(alice, conv["id"], started["message_id"])
    assert message["reasoning"] == "thinking hard" and message["content"] == expected(4)


def test_edit_and_regenerate_make_branches(alice: httpx.Client, fake: FakeUpstream) -> None:
    fake.configure(chunks=2)
    cid = new_conversation(alice)["id"]

    def answered(started: dict[str, Any]) -> dict[str, Any]:
        wait_status(alice, cid, started["message_id"])
        conv: dict[str, Any] = alice.get(f"/api/conversations/{cid}").json()
        return conv

    one = send(alice, cid, "one")
    answered(one)
    two = send(alice, cid, "two")
    answered(two)
    regen = send(alice, cid, regenerate_of=two["message_id"])
    assert regen["user_message_id"] is None and regen["parent_id"] == two["user_message_id"]
    conv = answered(regen)
    assert [m["content"] for m in conv["messages"][:3]] == ["one", expected(2), "two"]
    last = conv["messages"][-1]
    assert last["id"] == regen["message_id"]
    assert last["sibling_ids"] == [two["message_id"], regen["message_id"]]
    assert fake.requests[-1]["body"]["messages"][-1] == {"role": "user", "content": "two"}

    edit = send(alice, cid, "two, edited", edit_of=two["user_message_id"])
    conv = answered(edit)
    assert [m["content"] for m in conv["messages"]][2] == "two, edited"
    assert conv["messages"][2]["sibling_ids"] == [two["user_message_id"], edit["user_message_id"]]
    assert conv["active_leaf_id"] == edit["message_id"] and conv["message_count"] == 7

    # Switch back: pointing at the old question shows its newest answer under it.
    r = alice.patch(f"/api/conversations/{cid}", json={"active_leaf_id": two["user_message_id"]})
    assert [m["id"] for m in r.json()["messages"]][2:] == [
        two["user_message_id"],
        regen["message_id"],
    ]
    # A reply now continues that branch.
    three = send(alice, cid, "three")
    assert three["parent_id"] != regen["message_id"]  # its own user message…
    conv = answered(three)
    assert conv["messages"][3]["id"] == regen["message_id"]  # …after the regenerated answer
    # Explicit parent_id: answer from the first exchange (a branch at the top).
    fork = send(alice, cid, "fork", parent_id=one["message_id"])
    conv = answered(fork)
    assert [m["content"] for m in conv["messages"]][2] == "fork"
    assert len(conv["messages"][2]["sibling_ids"]) == 3

    bad = alice.post(
        f"/api/conversations/{cid}/messages", json={"regenerate_of": one["user_message_id"]}
    )
    assert bad.status_code == 400
    bad = alice.post(
        f"/api/conversations/{cid}/messages", json={"content": "x", "parent_id": "m-nope"}
    )
    assert bad.status_code == 404


def test_finished_generation_is_served_from_the_database(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "remember me")
    gid = started["generation_id"]
    live = follow(alice, gid)
    state = chat_server.thread.app.runtime.state
    state.chat.generations.jobs.pop(gid)  # as if the log had expired, or another replica asks
    stored = follow(alice, gid, last_event_id=live[-1][0])
    assert [e["type"] for _, e in stored] == ["snapshot", "done"]
    assert all(i is None for i, _ in stored)  # no ids: a snapshot replaces, it does not append
    assert stored[0][1]["message"]["content"] == text_of(live)
    assert stored[1][1]["status"] == "done"
    state_r = alice.get(f"/api/generations/{gid}").json()
    assert state_r["message"]["status"] == "done"
