"""Full-text search over message text, scoped to one user.

PostgreSQL: Russian and English tsvectors of the content, concatenated, under a GIN index (the
expression must match the migration's exactly for the planner to use it); the query is stemmed
with both configurations, so "словарь" finds "словари" and "dictionary" finds "dictionaries".
SQLite: an FTS5 table with the porter stemmer (English); Russian words are cut to a rough stem
and searched as prefixes, which finds most inflected forms.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from chatgate.storage import Database

PG_VECTOR = (
    "(to_tsvector('russian'::regconfig, m.content) || to_tsvector('english'::regconfig, m.content))"
)
_PG_QUERY = f"""
SELECT m.id, m.conversation_id, m.role, m.created_at, c.title,
       ts_headline('russian', m.content, q.query,
                   'StartSel=**, StopSel=**, MaxWords=24, MinWords=8, MaxFragments=1') AS snippet
FROM messages m
JOIN conversations c ON c.id = m.conversation_id,
     (SELECT websearch_to_tsquery('russian', :q) || websearch_to_tsquery('english', :q)
        AS query) q
WHERE c.user_id = :user_id AND m.role <> 'summary' AND {PG_VECTOR} @@ q.query
ORDER BY ts_rank({PG_VECTOR}, q.query) DESC, m.num DESC
LIMIT :limit
"""
_SQLITE_QUERY = """
SELECT m.id, m.conversation_id, m.role, m.created_at, c.title,
       snippet(messages_fts, 0, '**', '**', '…', 16) AS snippet
FROM messages_fts
JOIN messages m ON m.num = messages_fts.rowid
JOIN conversations c ON c.id = m.conversation_id
WHERE messages_fts MATCH :q AND c.user_id = :user_id AND m.role <> 'summary'
ORDER BY bm25(messages_fts), m.num DESC
LIMIT :limit
"""

_WORD = re.compile(r"\w+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
# Russian inflectional endings, longest first; what is left is searched as a prefix.
_RU_ENDINGS = sorted(
    [
        "иями",
        "ями",
        "ами",
        "ого",
        "его",
        "ому",
        "ему",
        "ыми",
        "ими",
        "ией",
        "ей",
        "ой",
        "ий",
        "ый",
        "ая",
        "яя",
        "ое",
        "ее",
        "ые",
        "ие",
        "ую",
        "юю",
        "ом",
        "ем",
        "ам",
        "ям",
        "ах",
        "ях",
        "ов",
        "ев",
        "ью",
        "ья",
        "ье",
        "ьи",
        "ия",
        "ию",
        "а",
        "я",
        "о",
        "е",
        "ы",
        "и",
        "у",
        "ю",
        "ь",
        "й",
    ],
    key=len,
    reverse=True,
)
_MIN_STEM = 3


def russian_prefix(word: str) -> str:
    for ending in _RU_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= _MIN_STEM:
            return word[: -len(ending)]
    return word


def fts5_query(q: str) -> str | None:
    """The user's words as an FTS5 query (all must match), or None when there are none.

    Each word is quoted, so FTS5 operators typed by the user are just words."""
    terms = []
    for word in _WORD.findall(q.lower())[:16]:
        if _CYRILLIC.search(word):
            terms.append(f'"{russian_prefix(word)}"*')
        else:
            terms.append(f'"{word}"')
    return " ".join(terms) or None


async def search(db: Database, user_id: str, q: str, limit: int = 50) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    if db.dialect == "postgresql":
        sql, params["q"] = _PG_QUERY, q
    else:
        match = fts5_query(q)
        if match is None:
            return []
        sql, params["q"] = _SQLITE_QUERY, match
    async with db.session() as s:
        result = await s.execute(text(sql), params)
        rows = [dict(r._mapping) for r in result]
    for row in rows:  # SQLite returns the timestamp as text
        created = row["created_at"]
        if isinstance(created, str):
            row["created_at"] = created.replace(" ", "T") + "+00:00"
    return rows
