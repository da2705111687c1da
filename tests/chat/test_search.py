"""Full-text search on SQLite (FTS5) and PostgreSQL (Russian + English tsvectors)."""

from __future__ import annotations

import asyncio

import httpx

from chatgate.chat.search import fts5_query, russian_prefix
from tests.chat.conftest import ChatServer, alice, chat_server, pg_server

__all__ = ["alice", "chat_server", "pg_server"]


def imported(client: httpx.Client, title: str, *texts: str) -> str:
    messages = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]
    r = client.post("/api/conversations/import", json={"title": title, "messages": messages})
    assert r.status_code == 201, r.text
    cid: str = r.json()["id"]
    return cid


def hits(client: httpx.Client, q: str) -> list[dict[str, str]]:
    r = client.get("/api/search", params={"q": q})
    assert r.status_code == 200, r.text
    data: list[dict[str, str]] = r.json()["data"]
    return data


def test_search_finds_words_in_other_forms(chat_server: ChatServer, alice: httpx.Client) -> None:
    ru = imported(alice, "Языки", "Какие словари лучше для перевода?", "Оксфордский хорош.")
    en = imported(alice, "Books", "Which dictionaries do translators use?", "Many of them.")
    imported(alice, "Other", "Nothing relevant here", "Indeed.")

    found = hits(alice, "словарь")
    assert [h["conversation_id"] for h in found] == [ru]
    assert found[0]["title"] == "Языки" and "**" in found[0]["snippet"]
    assert [h["conversation_id"] for h in hits(alice, "dictionary")] == [en]
    assert [h["conversation_id"] for h in hits(alice, "TRANSLATORS use")] == [en]
    assert hits(alice, "словарь dictionary") == []  # every word must match
    assert hits(alice, 'AND OR "NEAR(') == []  # operators typed by the user are only words


def test_search_follows_edits_and_deletes(chat_server: ChatServer, alice: httpx.Client) -> None:
    cid = imported(alice, "Temp", "the quokka smiles", "yes")
    assert len(hits(alice, "quokka")) == 1
    assert alice.delete(f"/api/conversations/{cid}").status_code == 204
    assert hits(alice, "quokka") == []


def test_search_is_scoped_to_the_user(chat_server: ChatServer, alice: httpx.Client) -> None:
    imported(alice, "Private", "my axolotl named Bob", "cute")
    with chat_server.signed_in(asyncio.run(chat_server.user())) as bob:
        assert hits(bob, "axolotl") == []
    assert len(hits(alice, "axolotl")) == 1


def test_fts5_query_building() -> None:
    assert fts5_query("Hello, world!") == '"hello" "world"'
    assert fts5_query("словари") == '"словар"*'
    assert fts5_query("  ?? ") is None
    assert russian_prefix("словарь") == russian_prefix("словарями") == "словар"
    assert russian_prefix("кот") == "кот"  # too short to cut
