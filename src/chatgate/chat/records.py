"""Context records: the compact one every open reads, the id lists kept apart.

An answer's record of its prompt names every message sent, dropped or summarised; with a large
window answer k names about k ids, so a conversation's records grow as n². The ``context``
column, read with every open, keeps counts and the two ids the UI places its marker with; the
lists live in ``context_detail``, read only by the context endpoint and the JSON export.
Summary checkpoints keep their ``summarised``/``dropped`` lists in ``context``: the context
builder reads them. Rows stored before the split hold their lists in ``context``; they are
compacted when read.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
LISTS = ("sent", "dropped", "summarised")


def _ids(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def has_lists(context: Record | None) -> bool:
    return context is not None and any(k in context for k in LISTS)


def compact(context: Record | None) -> Record | None:
    """The record without its id lists: their counts and the first id sent instead (counted
    from the lists when it has them, so an old row or an import reads like a new one)."""
    if context is None or not has_lists(context):
        return context
    out = {k: v for k, v in context.items() if k not in LISTS}
    for key in LISTS:
        out[f"{key}_count"] = len(_ids(context.get(key)))
    sent = _ids(context.get("sent"))
    out["first_sent_id"] = sent[0] if sent else None
    return out


def lists(context: Record | None) -> Record:
    """The id lists of a full record (empty ones for those it lacks)."""
    context = context or {}
    return {k: _ids(context.get(k)) for k in LISTS}


def full(context: Record | None, detail: Record | None) -> Record | None:
    """The whole record: the compact fields with the lists, from ``context_detail`` or, for
    summaries and rows stored before the split, from ``context`` itself."""
    if context is None and detail is None:
        return None
    out = compact(context) or {}
    out.update(lists(detail if detail is not None else context))
    return out
