"""What a conversation's files add to a prompt: images as OpenAI content parts, and a context
block of numbered passages from its documents (the most relevant to the new question, or whole
documents when they fit), with the citations the answer records.

The context builder calls ``Grounding.cost`` (room to keep) and ``Grounding.apply`` (the
messages with it); this module decides what goes in. Documents take at most
``files.context_tokens`` and at most half of the model's budget, so the conversation keeps room.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chatgate.files.retrieval import Entry, Hit, search
from chatgate.files.service import FileService
from chatgate.files.store import Row

IMAGE_TOKENS = 1000  # an image's prompt cost, for the budget (OpenAI: 85–1,105 at "auto")
INDEX_WAIT = 60.0  # seconds a question waits for its documents still being indexed

BLOCK_HEAD = (
    "The user has attached documents to this conversation. Below are passages from them, "
    "numbered. Use them when they help answer, and cite the ones you use as [1], [2], etc.\n"
)

Count = Callable[[str], int]


@dataclass
class Grounding:
    block: dict[str, Any] | None = None  # the system message with the passages
    citations: list[Row] = field(default_factory=list)
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # message id → images
    notes: dict[str, str] = field(default_factory=dict)  # message id → text about its files
    image_tokens: int = 0

    def cost(self, count: Callable[[dict[str, Any]], int]) -> int:
        return (count(self.block) if self.block else 0) + self.image_tokens

    def apply(
        self, head: list[dict[str, Any]], turns: list[dict[str, Any]], ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """``head`` (system prompt, summary), the passages, then ``turns`` (one per id in
        ``ids``) with their images as content parts."""
        out = [*head, *([self.block] if self.block else [])]
        for message, mid in zip(turns, ids, strict=True):
            note, images = self.notes.get(mid), self.parts.get(mid)
            if note is None and images is None:
                out.append(message)
                continue
            text = message["content"] + (f"\n\n{note}" if note else "")
            if images:
                parts: list[dict[str, Any]] = [{"type": "text", "text": text}, *images]
                out.append({**message, "content": parts})
            else:
                out.append({**message, "content": text})
        return out


async def ground(
    files: FileService,
    branch: Sequence[Row],
    *,
    sees_images: bool,
    budget: int,
    count: Count,
) -> Grounding:
    """The grounding for answering the last user message of ``branch`` (rows, root first)."""
    ids = [r["id"] for r in branch if r["role"] == "user"]
    attached = await files.store.attachments(ids)
    found = Grounding()
    if not attached:
        return found
    documents: dict[str, Row] = {}
    for mid, rows in attached.items():
        images = [r for r in rows if r["kind"] == "image"]
        names = [r["name"] for r in rows if r["kind"] == "document"]
        notes = [f"[Attached document: {n}]" for n in names]
        if images and sees_images:
            found.parts[mid] = [await _image_part(files, r) for r in images]
            found.image_tokens += IMAGE_TOKENS * len(images)
        elif images:
            notes += [f"[Attached image, not shown to this model: {r['name']}]" for r in images]
        if notes:
            found.notes[mid] = "\n".join(notes)
        for r in rows:
            if r["kind"] == "document":
                documents.setdefault(r["id"], r)
    if documents:
        question = next((r["content"] for r in reversed(branch) if r["role"] == "user"), "")
        allowance = min(files.config.context_tokens, budget // 2)
        await _wait_indexed(files, documents)
        found.block, found.citations = await _passages(files, documents, question, allowance, count)
    return found


async def _image_part(files: FileService, row: Row) -> dict[str, Any]:
    data = await files.blobs.read_all(row["id"], row["storage"])
    url = f"data:{row['mime']};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url}}


async def _wait_indexed(files: FileService, documents: dict[str, Row]) -> None:
    """Documents sent while still being indexed (here or on another replica) are waited for."""
    waiting = [d for d in documents.values() if d["status"] == "indexing"]
    deadline = asyncio.get_running_loop().time() + INDEX_WAIT
    while waiting and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        fresh = await files.store.attachments_status([d["id"] for d in waiting])
        for d in waiting:
            d["status"] = fresh.get(d["id"], "error")
        waiting = [d for d in waiting if d["status"] == "indexing"]


async def _passages(
    files: FileService, documents: dict[str, Row], question: str, allowance: int, count: Count
) -> tuple[dict[str, Any] | None, list[Row]]:
    entries = await files.index.entries([d for d, r in documents.items() if r["status"] == "ready"])
    if not entries or allowance <= 0:
        return None, []
    hits = _whole(entries, allowance, count)
    if hits is None:
        vector = await files.embedder.query(question) if question else None
        hits = search(entries, vector, question, files.config.top_k, files.lexical_weight())
    lines, used = [BLOCK_HEAD], count(BLOCK_HEAD)
    citations: list[Row] = []
    for hit in hits:
        name = documents[hit.file_id]["name"]
        where = f"{name}, page {hit.page}" if hit.page is not None else name
        text = f"\n[{len(citations) + 1}] {where}\n{hit.text}\n"
        cost = count(text)
        if used + cost > allowance:
            continue  # a shorter passage further down may still fit
        used += cost
        lines.append(text)
        citations.append({"file_id": hit.file_id, "name": name, "page": hit.page, "n": hit.n,
                          "text": hit.text})  # fmt: skip
    if not citations:
        return None, []
    return {"role": "system", "content": "".join(lines)}, citations


def _whole(entries: list[Entry], allowance: int, count: Count) -> list[Hit] | None:
    """Every chunk in document order, when all of them fit (small documents go in whole)."""
    total = 0
    for entry in entries:
        for text in entry.texts:
            total += count(text) + 8
            if total > allowance:
                return None
    return [
        Hit(e.file_id, n, page, text, 0.0)
        for e in entries
        for n, page, text in zip(e.ns, e.pages, e.texts, strict=True)
    ]
