"""The message tree of one conversation: branches, siblings and summary checkpoints.

Messages link to their parent; an edit or a regenerate adds a sibling, so every version is kept.
The active branch runs from a root to the conversation's ``active_leaf_id`` and then, when that
message has children, on down through the newest child at each step — so pointing
``active_leaf_id`` at any sibling switches to that branch. Summary checkpoints (role
``summary``) hang off the last message they cover and are not part of the branching: they show
up on the branch right after that message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]

SUMMARY = "summary"


class Tree:
    __slots__ = ("by_id", "children", "roots", "summaries")

    def __init__(self, rows: Iterable[Row]) -> None:
        """``rows`` in creation order (each with ``id``, ``parent_id``, ``role``)."""
        self.by_id: dict[str, Row] = {}
        self.children: dict[str, list[str]] = {}
        self.roots: list[str] = []
        self.summaries: dict[str, list[str]] = {}
        for row in rows:
            mid, parent = row["id"], row["parent_id"]
            self.by_id[mid] = row
            if row["role"] == SUMMARY:
                if parent is not None:
                    self.summaries.setdefault(parent, []).append(mid)
            elif parent is None or parent == mid or parent not in self.by_id:
                self.roots.append(mid)
            else:
                self.children.setdefault(parent, []).append(mid)

    def siblings(self, mid: str) -> list[str]:
        parent = self.by_id[mid]["parent_id"]
        kids = self.children.get(parent) if parent is not None else None
        return kids if kids is not None and mid in kids else self.roots

    def path_to(self, mid: str) -> list[str]:
        """Ids from the root down to ``mid`` (summaries excluded)."""
        path: list[str] = []
        seen: set[str] = set()
        current: str | None = mid
        while current is not None and current in self.by_id and current not in seen:
            seen.add(current)
            row = self.by_id[current]
            if row["role"] != SUMMARY:
                path.append(current)
            current = row["parent_id"]
        path.reverse()
        return path

    def branch(self, leaf: str | None) -> list[str]:
        """The active branch's message ids, root first (summaries excluded)."""
        if leaf is not None and leaf in self.by_id:
            path = self.path_to(leaf)
        else:
            path = [self.roots[-1]] if self.roots else []
        while path:
            kids = self.children.get(path[-1])
            if not kids:
                break
            path.append(kids[-1])
        return path

    def leaf(self, active: str | None) -> str | None:
        branch = self.branch(active)
        return branch[-1] if branch else None

    def with_summaries(self, branch: list[str]) -> list[str]:
        """The branch with each summary checkpoint placed right after the message it follows."""
        out: list[str] = []
        for mid in branch:
            out.append(mid)
            out.extend(self.summaries.get(mid, ()))
        return out

    def latest_summary(self, branch: list[str]) -> tuple[str, int] | None:
        """The newest summary anchored on ``branch``, with the index of its anchor there."""
        for i in range(len(branch) - 1, -1, -1):
            found = self.summaries.get(branch[i])
            if found:
                return found[-1], i
        return None
