"""Files in conversation exports: the bytes of every attached file, base64 in the JSON export,
and back on import as new files of the importing user (checked and counted like uploads). An
import's files are checked against the user's quota all together first: one that does not fit
stores none (413 ``quota_exceeded``), and a file refused half-way takes the others back."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Any

from chatgate.errors import InvalidRequestError, PayloadTooLargeError
from chatgate.files.service import FileService
from chatgate.files.store import Row

_PIECE = 64 * 1024


async def export_files(files: FileService, attached: dict[str, list[Row]]) -> list[Row]:
    """Each attached file once, with its bytes."""
    seen: dict[str, Row] = {}
    for rows in attached.values():
        for row in rows:
            seen.setdefault(row["id"], row)
    out = []
    for row in seen.values():
        data = await files.blobs.read_all(row["id"], row["storage"])
        out.append({"id": row["id"], "name": row["name"], "mime": row["mime"],
                    "kind": row["kind"], "size": row["size"],
                    "data": base64.b64encode(data).decode()})  # fmt: skip
    return out


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _PIECE):
        yield data[start : start + _PIECE]


async def import_files(files: FileService, user_id: str, data: Any, rows: list[Row]) -> list[Row]:
    """Store the export's files as the user's new files; take each row's ``_attachments`` out
    (old ids) and return the ``message_files`` links with the new ids, and point the rows'
    citations at the new files."""
    given = data.get("files") if isinstance(data, dict) else None
    wanted = {f for row in rows for f in row.get("_attachments", [])}
    decoded: dict[str, tuple[dict[str, Any], bytes]] = {}
    for i, item in enumerate(given if isinstance(given, list) else []):
        if not isinstance(item, dict) or item.get("id") not in wanted:
            continue
        try:
            raw = base64.b64decode(str(item.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                f"Cannot import: files[{i}].data is not base64.", param=f"files[{i}]"
            ) from None
        decoded[str(item["id"])] = (item, raw)
    total = sum(len(raw) for _, raw in decoded.values())
    left = files.config.quota_bytes - await files.store.used(user_id)
    if total > left:
        raise PayloadTooLargeError(
            f"The export's files ({total} bytes) do not fit in your storage quota "
            f"({max(left, 0)} bytes left): delete some files first.",
            code="quota_exceeded",
        )
    new_ids: dict[str, str] = {}
    try:
        for old, (item, raw) in decoded.items():
            made = await files.upload(
                user_id, str(item.get("name") or "file"), str(item.get("mime") or ""), len(raw),
                _pieces(raw),
            )  # fmt: skip
            new_ids[old] = made["id"]
    except BaseException:
        await files.delete(user_id, list(new_ids.values()))
        raise
    links: list[Row] = []
    for row in rows:
        attached = [new_ids[f] for f in row.pop("_attachments", []) if f in new_ids]
        links += files.store.links(row["id"], attached)
        if row.get("citations"):
            row["citations"] = [
                {**c, "file_id": new_ids.get(c["file_id"], c["file_id"])} for c in row["citations"]
            ]
    return links
