"""How conversations leave and enter: the API view, JSON and Markdown export, JSON import.

The JSON export holds the whole tree (every branch, every summary checkpoint) and imports back
as a new conversation with new ids. Import also takes a plain ``{"title", "messages": [{"role",
"content"}]}`` list, as other chat UIs export, which becomes a single branch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatgate.chat.ids import new_id
from chatgate.chat.records import compact, full, has_lists, lists
from chatgate.chat.tree import Row, Tree
from chatgate.errors import InvalidRequestError
from chatgate.storage.base import utcnow
from chatgate.storage.models_chat import ROLES, STATUSES

FORMAT = "chatgate.conversation"
EXPORT_FIELDS = (
    "id",
    "parent_id",
    "role",
    "content",
    "reasoning",
    "status",
    "model",
    "usage",
    "context",
    "error",
    "created_at",
)
MAX_IMPORT_MESSAGES = 100_000


def _lite(files: list[Row]) -> list[Row]:
    return [{k: f[k] for k in ("id", "name", "mime", "kind", "size")} for f in files]


def conversation_view(
    conv: Row, rows: list[Row], files: dict[str, list[Row]] | None = None
) -> dict[str, Any]:
    """The conversation with its active branch; each message with its siblings' ids, its
    attached ``files`` (by message id) and the citations of its answer."""
    files = files or {}
    tree = Tree(rows)
    branch = tree.branch(conv["active_leaf_id"])
    messages = []
    for mid in tree.with_summaries(branch):
        row = tree.by_id[mid]
        siblings = [] if row["role"] == "summary" else tree.siblings(mid)
        # compact: a summary's record, or one from before 0003, still holds its id lists
        messages.append(
            {
                **row,
                "context": compact(row["context"]),
                "sibling_ids": siblings,
                "attachments": _lite(files.get(mid, [])),
                "citations": row.get("citations") or [],
            }
        )
    return {
        **conv,
        "active_leaf_id": branch[-1] if branch else None,
        "message_count": len(rows),
        "messages": messages,
    }


def export_json(
    conv: Row,
    rows: list[Row],
    files: dict[str, list[Row]] | None = None,
    file_data: list[Row] | None = None,
) -> dict[str, Any]:
    """The whole tree; each message's ``context`` in full (counts and id lists), so ``rows``
    come with their ``context_detail``; its attachments (``files`` by message id) and
    citations, and the files themselves (``file_data``: base64 bytes)."""
    files = files or {}
    meta = ("title", "model", "system_prompt", "params", "pinned", "created_at", "active_leaf_id")
    return {
        "format": FORMAT,
        "version": 1,
        "exported_at": utcnow(),
        "conversation": {k: conv[k] for k in meta},
        "messages": [
            {
                **{k: r[k] for k in EXPORT_FIELDS},
                "context": full(r["context"], r.get("context_detail")),
                "attachments": _lite(files.get(r["id"], [])),
                "citations": r.get("citations") or [],
            }
            for r in rows
        ],
        "files": file_data or [],
    }


def export_markdown(conv: Row, rows: list[Row]) -> str:
    """The active branch as Markdown."""
    tree = Tree(rows)
    out = [f"# {conv['title'] or 'Conversation'}", "", f"*Model: {conv['model']}*", ""]
    if conv.get("system_prompt"):
        out += ["**System prompt:**", "", conv["system_prompt"], ""]
    for mid in tree.with_summaries(tree.branch(conv["active_leaf_id"])):
        row = tree.by_id[mid]
        if row["role"] == "summary":
            quoted = "\n".join(f"> {line}" for line in row["content"].splitlines())
            out += ["> **Summary of the earlier turns:**", ">", quoted, ""]
            continue
        out += [f"## {row['role'].capitalize()}", ""]
        if row.get("reasoning"):
            out += ["<details><summary>Reasoning</summary>", "", row["reasoning"], "</details>", ""]
        out += [row["content"], ""]
    return "\n".join(out)


def _bad(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(f"Cannot import: {message}", param=param)


def parse_import(data: Any, default_model: str) -> tuple[Row, list[Row], str | None]:
    """(conversation values, message rows with new ids in tree order, active leaf's new id)."""
    if not isinstance(data, dict):
        raise _bad("expected a JSON object")
    meta = data.get("conversation") if data.get("format") == FORMAT else data
    if not isinstance(meta, dict):
        raise _bad("`conversation` must be an object", "conversation")
    messages = data.get("messages")
    if not isinstance(messages, list) or len(messages) > MAX_IMPORT_MESSAGES:
        raise _bad(f"`messages` must be an array of at most {MAX_IMPORT_MESSAGES}", "messages")
    ids: dict[str, str] = {}
    rows: list[Row] = []
    previous: str | None = None
    linear = not any(isinstance(m, dict) and "id" in m for m in messages)
    fresh = [new_id("m") for _ in messages]
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object", f"messages[{i}]")
        if not linear:
            ids.setdefault(str(m.get("id")), fresh[i])
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise _bad(f"messages[{i}] needs a known role and text content", f"messages[{i}]")
        new = fresh[i]
        parent = previous if linear else ids.get(str(m.get("parent_id")))
        if parent == new:
            parent = None
        status = m.get("status") if m.get("status") in STATUSES else "done"
        context, detail = _split(role, _remap(m.get("context"), ids))
        rows.append(
            {
                "id": new,
                "parent_id": parent,
                "role": role,
                "content": content,
                "reasoning": m.get("reasoning") if isinstance(m.get("reasoning"), str) else None,
                "status": "stopped" if status == "streaming" else status,
                "model": m.get("model") if isinstance(m.get("model"), str) else None,
                "usage": m.get("usage") if isinstance(m.get("usage"), dict) else None,
                "context": context,
                "context_detail": detail,
                "error": m.get("error") if isinstance(m.get("error"), str) else None,
                "created_at": _time(m.get("created_at")),
                "citations": _citations(m.get("citations")),
                "_attachments": _file_ids(m.get("attachments")),
            }
        )
        previous = new
    title = meta.get("title")
    conv: Row = {
        "title": title[:300] if isinstance(title, str) else "",
        "model": meta.get("model") if isinstance(meta.get("model"), str) else default_model,
        "system_prompt": meta.get("system_prompt")
        if isinstance(meta.get("system_prompt"), str)
        else None,
        "params": meta.get("params") if isinstance(meta.get("params"), dict) else {},
        "pinned": bool(meta.get("pinned", False)),
    }
    leaf = previous if linear else ids.get(str(meta.get("active_leaf_id")), previous)
    return conv, rows, leaf


def _file_ids(value: Any) -> list[str]:
    """An export's attachments (File-lite objects or bare ids): the ids."""
    if not isinstance(value, list):
        return []
    ids = [v.get("id") if isinstance(v, dict) else v for v in value]
    return [i for i in ids if isinstance(i, str)][:10]


def _citations(value: Any) -> list[Row] | None:
    if not isinstance(value, list):
        return None
    keys = ("file_id", "name", "page", "n", "text")
    kept = [{k: c.get(k) for k in keys} for c in value if isinstance(c, dict)]
    return kept or None


def _remap(context: Any, ids: dict[str, str]) -> dict[str, Any] | None:
    """A message's context record with the ids it names translated (unknown ones left out)."""
    if not isinstance(context, dict):
        return None
    out = dict(context)
    for key in ("sent", "dropped", "summarised"):
        value = context.get(key)
        if isinstance(value, list):
            out[key] = [ids[str(v)] for v in value if str(v) in ids]
    for key in ("summary_id", "first_sent_id"):
        if key in context:
            old = context[key]
            out[key] = ids.get(str(old)) if old is not None else None
    return out


def _split(role: str, context: Row | None) -> tuple[Row | None, Row | None]:
    """(``context``, ``context_detail``) to store for an imported record, old exports (lists
    only) and new ones (counts and lists) alike. A summary keeps its lists in ``context``."""
    if context is None or role == "summary" or not has_lists(context):
        return context, None
    return compact(context), lists(context)


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return utcnow()
        if parsed.tzinfo is not None:
            return parsed
    return utcnow()
