"""The context builder: which messages of a branch go to the model, within its window.

Budget = the model's context window minus the reply budget (the conversation's ``max_tokens``,
else ``chat.reply_tokens`` capped at a quarter of the window). The system prompt and the newest
message always go; older turns are added newest first while they fit. Turns that do not fit are
dropped — or, with ``chat.summarize``, summarised by the model itself into a summary checkpoint:
a visible, editable message (role ``summary``) hanging off the last turn it covers. Later
generations start from the newest checkpoint on their branch, so each turn is summarised once.

The result records which message ids were sent, dropped and summarised; the assistant message
stores its counts (``context``, read with every open) and the lists apart (``context_detail``,
served by the context endpoint: see ``records``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatgate.chat.records import Record, compact, lists
from chatgate.chat.tokens import PER_MESSAGE, TokenCounter, message_text
from chatgate.chat.tree import Row, Tree

if TYPE_CHECKING:
    from chatgate.files.grounding import Grounding

log = logging.getLogger(__name__)

SUMMARY_PREFIX = "Summary of the earlier part of this conversation:\n"
SUMMARY_INSTRUCTION = (
    "Summarise the conversation below for your own later reference: keep names, facts, "
    "numbers, decisions, open questions and the user's preferences; be brief and write in "
    "the conversation's language. Answer with the summary only."
)
_SUMMARY_SHARE = 4  # a summary may take up to a quarter of the budget
_SUMMARY_MAX = 1024

Summarizer = Callable[[list[dict[str, Any]], int], Awaitable[str]]
"""Calls the model: (messages, max_tokens) -> the summary text."""


@dataclass
class Built:
    messages: list[dict[str, Any]]
    sent: list[str]
    dropped: list[str] = field(default_factory=list)
    summarised: list[str] = field(default_factory=list)
    summary_id: str | None = None
    new_summary: Row | None = None  # a checkpoint made now, for the caller to store
    window: int = 0
    budget: int = 0
    reply_tokens: int = 0
    estimate: int = 0  # calibrated prompt tokens
    raw_estimate: float = 0.0  # uncalibrated, for calibrating against the reported usage
    tokenizer: str = ""  # the tokenizer that counted raw_estimate
    summary_error: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)  # the documents' passages

    def record(self) -> Record:
        """What the assistant message stores as ``context`` (and the open shows): counts."""
        return compact(self.full_record()) or {}

    def detail(self) -> Record:
        """What it stores as ``context_detail``: the ids sent, dropped and summarised."""
        return lists(self.full_record())

    def full_record(self) -> Record:
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "summarised": self.summarised,
            "summary_id": self.summary_id,
            "window": self.window,
            "budget": self.budget,
            "reply_tokens": self.reply_tokens,
            "prompt_tokens_estimate": self.estimate,
            **({"summary_error": self.summary_error} if self.summary_error else {}),
        }


def reply_budget(window: int, params: dict[str, Any], default: int) -> int:
    asked = params.get("max_completion_tokens") or params.get("max_tokens")
    if isinstance(asked, int) and asked > 0:
        return min(asked, window - 1)
    return min(default, window // 4)


def _wire(row: Row) -> dict[str, Any]:
    """A row as the model gets it. An answer's reasoning stays behind, except an answer that
    made tool calls: DeepSeek's thinking mode refuses the next request without its
    ``reasoning_content`` (the gateway's ``clean_history`` keeps it too)."""
    message = {"role": row["role"], "content": row["content"]}
    if calls := row.get("tool_calls"):
        message["tool_calls"] = calls
        if row.get("reasoning"):
            message["reasoning_content"] = row["reasoning"]
    if row["role"] == "tool":
        message["tool_call_id"] = row.get("tool_call_id")
    return message


def _sendable(row: Row) -> bool:
    """Empty answers (failed before any text) are not worth sending; a tool-call turn is."""
    if row["role"] == "tool":
        return True
    return row["role"] in ("user", "assistant", "system") and bool(
        row["content"] or row.get("tool_calls")
    )


class ContextBuilder:
    def __init__(self, tokens: TokenCounter, summarize: bool, reply_tokens: int) -> None:
        self.tokens = tokens
        self.summarize = summarize
        self.reply_tokens = reply_tokens

    async def build(
        self,
        tree: Tree,
        branch: list[str],
        *,
        model: str,
        window: int,
        system_prompt: str | None,
        params: dict[str, Any],
        summarizer: Summarizer | None,
        new_summary_id: str,
        grounding: Grounding | None = None,
    ) -> Built:
        """The prompt for answering the last message of ``branch`` (root first); with
        ``grounding``, its images and document passages too (``files.grounding``)."""
        count = self.tokens.message
        reply = reply_budget(window, params, self.reply_tokens)
        budget = max(window - reply, 1)
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        fixed = sum(count(model, m) for m in system)
        if grounding is not None:
            fixed += grounding.cost(lambda m: count(model, m))

        checkpoint = tree.latest_summary(branch)
        before: list[str] = []
        summary: Row | None = None
        if checkpoint is not None:
            summary = tree.by_id[checkpoint[0]]
            before, branch = branch[: checkpoint[1] + 1], branch[checkpoint[1] + 1 :]
        rows = [tree.by_id[m] for m in branch if _sendable(tree.by_id[m])]
        await self.tokens.warm(model, _newest_texts(rows, budget))
        summary_msg = _summary_message(summary)
        summary_cost = count(model, summary_msg) if summary_msg else 0

        kept = _fit(rows, budget - fixed - summary_cost, lambda r: count(model, _wire(r)))
        dropped_rows = rows[: len(rows) - len(kept)]
        built = Built(messages=[], sent=[], window=window, budget=budget, reply_tokens=reply)
        if summary is not None:
            built.summary_id = summary["id"]
            covered = set((summary.get("context") or {}).get("summarised") or before)
            built.summarised = [m for m in before if m in covered]
            built.dropped = [m for m in before if m not in covered]

        if dropped_rows and self.summarize and summarizer is not None:
            reserve = min(_SUMMARY_MAX, budget // _SUMMARY_SHARE)
            room = budget - fixed - reserve - PER_MESSAGE * 2
            kept = _fit(rows, room, lambda r: count(model, _wire(r)))
            dropped_rows = rows[: len(rows) - len(kept)]
            made = await self._summarise(
                summary, dropped_rows, model, window, reserve, summarizer, built
            )
            if made is not None:
                text, covered_rows = made
                included = {r["id"] for r in covered_rows}
                built.summarised += [r["id"] for r in dropped_rows if r["id"] in included]
                built.dropped += [r["id"] for r in dropped_rows if r["id"] not in included]
                built.summary_id = new_summary_id
                built.new_summary = {
                    "id": new_summary_id,
                    "parent_id": dropped_rows[-1]["id"],
                    "role": "summary",
                    "content": text,
                    "model": model,
                    "context": {"summarised": built.summarised, "dropped": built.dropped},
                }
                summary_msg = _summary_message(built.new_summary)
                dropped_rows = []
        built.dropped += [r["id"] for r in dropped_rows]

        built.messages = [*system, *([summary_msg] if summary_msg else []), *map(_wire, kept)]
        built.sent = [r["id"] for r in kept]
        if grounding is not None:
            head = built.messages[: len(built.messages) - len(kept)]
            built.messages = grounding.apply(head, built.messages[len(head) :], built.sent)
            built.citations = grounding.citations
        built.estimate = sum(count(model, m) for m in built.messages)
        built.tokenizer = self.tokens.tokenizer(model).name
        built.raw_estimate = self.tokens.raw_prompt(model, built.messages)
        if grounding is not None:  # images are not text: their estimated cost, counted apart
            built.estimate += grounding.image_tokens
            built.raw_estimate += grounding.image_tokens
        return built

    async def _summarise(
        self,
        previous: Row | None,
        dropped: list[Row],
        model: str,
        window: int,
        reserve: int,
        summarizer: Summarizer,
        built: Built,
    ) -> tuple[str, list[Row]] | None:
        """The new summary text and the dropped rows it covers (the newest that fit its input)."""
        count = self.tokens.message
        room = window - reserve - 2 * PER_MESSAGE - self.tokens.count(model, SUMMARY_INSTRUCTION)
        prev_text = f"Earlier summary:\n{previous['content']}\n\n" if previous else ""
        room -= self.tokens.count(model, prev_text)
        covered = _fit(dropped, room, lambda r: count(model, _wire(r)))
        if not covered:
            return None
        transcript = prev_text + "\n\n".join(f"{r['role']}: {r['content']}" for r in covered)
        prompt = [
            {"role": "system", "content": SUMMARY_INSTRUCTION},
            {"role": "user", "content": transcript},
        ]
        try:
            text = (await summarizer(prompt, reserve)).strip()
        except Exception as exc:  # a failed summary must not fail the answer: drop instead
            log.warning("summary failed, dropping %d turns instead: %s", len(dropped), exc)
            built.summary_error = str(exc)[:300]
            return None
        if not text:
            return None
        # Keep the promise of the reserve even when the model ignored max_tokens.
        while len(text) > 16 and self.tokens.count(model, text) > reserve:
            text = text[: len(text) * 9 // 10]
        return text, covered


def _summary_message(summary: Row | None) -> dict[str, Any] | None:
    if summary is None or not summary.get("content"):
        return None
    return {"role": "system", "content": SUMMARY_PREFIX + summary["content"]}


def _newest_texts(rows: list[Row], budget: int) -> list[str]:
    """The texts the builder may count: newest first, until they surely overflow the budget
    (few tokens hold more than 8 characters; rows not warmed are simply counted when asked)."""
    texts: list[str] = []
    seen = 0
    for row in reversed(rows):
        text = message_text(row)
        texts.append(text)
        seen += len(text)
        if seen > budget * 8:
            break
    return texts


def _fit(rows: list[Row], room: int, cost: Callable[[Row], int]) -> list[Row]:
    """The newest rows whose cost fits in ``room``; the newest one always."""
    kept: list[Row] = []
    used = 0
    for row in reversed(rows):
        c = cost(row)
        if kept and used + c > room:
            break
        kept.append(row)
        used += c
    kept.reverse()
    return kept
