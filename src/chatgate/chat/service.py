"""ChatService: the chat application's state, built once at start-up and held by AppState.

It ties the parts together for the API: accounts, the conversation store, the context builder
and the generation jobs; and it holds the request-side logic of sending a message (where in
the tree the new messages go, the rate-limit reservation, starting the job) and of following
or stopping a generation, live from its job or, once the job is gone, from the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from chatgate.chat import attachments
from chatgate.chat.accounts import Account, Accounts
from chatgate.chat.context import ContextBuilder
from chatgate.chat.events import UserEvents, started_event
from chatgate.chat.generations import Generations
from chatgate.chat.ids import new_id
from chatgate.chat.job import Job, Spec
from chatgate.chat.joblog import LogEvent
from chatgate.chat.records import compact
from chatgate.chat.sessions import SessionWatch
from chatgate.chat.shared import BLOCK, LogGap, SharedLogs
from chatgate.chat.store import ConversationStore, Row
from chatgate.chat.tokens import TokenCounter, resolver
from chatgate.chat.tree import Tree
from chatgate.config import Config
from chatgate.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from chatgate.files.service import FileService
from chatgate.gateway.path import Exchange, RequestPath, estimate_tokens
from chatgate.gateway.router import known_context_window
from chatgate.protocol.openai import ChatRequest
from chatgate.redislink import FAILURES, RedisLink
from chatgate.storage import Database

log = logging.getLogger(__name__)

# Body fields the conversation's params may not set: the service decides them.
RESERVED_PARAMS = frozenset({"model", "messages", "stream", "stream_options", "n"})
TITLE_WORDS = 8
_STALE_POLLS = 60  # a database-served follow gives up after this many polls without progress


@dataclass(frozen=True, slots=True)
class Send:
    """What ``POST /api/conversations/{id}/messages`` asks for."""

    content: str | None = None
    parent_id: str | None = None
    parent_given: bool = False  # parent_id was sent (null: a new first message)
    edit_of: str | None = None
    regenerate_of: str | None = None
    model: str | None = None
    attachments: tuple[str, ...] | None = None  # file ids (None: an edit keeps the original's)
    models: tuple[str, ...] = ()  # side by side: one answer per model, siblings


@dataclass(frozen=True, slots=True)
class Remote:
    """A generation running on another replica, followed through Redis."""

    generation_id: str
    message_id: str


def first_words(text: str, n: int = TITLE_WORDS) -> str:
    words = text.split()
    title = " ".join(words[:n])
    return (title + "…" if len(words) > n else title)[:120]


def not_found(gid: str) -> NotFoundError:
    return NotFoundError(f"Generation {gid} not found.", code="generation_not_found")


class ChatService:
    def __init__(
        self,
        config: Config,
        db: Database,
        accounts: Accounts,
        path: RequestPath,
    ) -> None:
        self.config = config
        self.db = db
        self.path = path
        self.router = path.pipeline.router
        self.accounts = accounts
        self.store = ConversationStore(db)
        self.tokens = TokenCounter(resolver(self.router, config.providers))
        self.context = ContextBuilder(self.tokens, config.chat.summarize, config.chat.reply_tokens)
        # One Redis link for the chat's side channels, with their degraded mode.
        self.link = (
            RedisLink(
                config.redis.url,
                "chat events and generation logs",
                "kept on this replica (followers elsewhere read the database)",
                blocking_timeout=BLOCK + 1.0,
            )
            if config.redis.url
            else None
        )
        self.events = UserEvents(self.link)
        self.shared = (
            SharedLogs(self.link, config.chat.job_retention) if self.link is not None else None
        )
        self.generations = Generations(
            self.store, path, self.context, self.tokens, config.chat, self.shared
        )
        self.files = FileService(config.files, db, self.router, self.events.publish)
        self.generations.grounder = attachments.grounder(
            self.files, self.tokens, self.router, config.providers, config.chat.reply_tokens
        )
        self._starting: dict[str, int] = {}  # per user: sends between the check and the start
        self.sessions = SessionWatch(db, config.auth.session_check_seconds)

    async def start(self) -> None:
        self.generations.start_saver()
        self.sessions.start()
        self.events.start()
        await self.files.start()
        if self.shared is not None:
            self.shared.start(self.generations.on_stop)
        swept = await self.store.interrupted(older_than_seconds=self.generations.saver.ORPHAN_AFTER)
        if swept:
            log.warning("marked %d answers interrupted by an earlier stop as errors", swept)

    async def end_answers(self) -> None:
        """The drain deadline: end the running answers now, so that their followers get each
        one's end (``done``, an error: the server shut down) before the streams are cut."""
        await self.generations.end_all(wait=1.0)

    async def close(self) -> None:
        await self.sessions.close()
        await self.files.close()
        await self.events.close()
        await self.generations.close()
        await self.store.close()  # after the jobs: their last saves are queued writes
        if self.shared is not None:
            await self.shared.close()
        if self.link is not None:
            await self.link.close()

    # -- models ----------------------------------------------------------------------------------
    def default_model(self) -> str:
        if self.config.chat.default_model:
            return self.config.chat.default_model
        if self.router.get("local") is not None:
            return "local"
        models = self.router.public_models()
        if not models:
            raise ServiceUnavailableError("No model is configured.")
        return models[0][0]

    def window(self, model: str) -> int:
        dep = self.router.get(model)
        known = known_context_window(dep, self.config.providers) if dep is not None else None
        return known or self.config.chat.default_context_window

    # -- sending ---------------------------------------------------------------------------------
    def running(self, user_id: str) -> int:
        """The user's answers running on this replica, or about to start."""
        jobs = self.generations.jobs.values()
        live = sum(1 for job in jobs if job.user_id == user_id and not job.ended.is_set())
        return live + self._starting.get(user_id, 0)

    async def send(self, user: Account, cid: str, req: Send) -> dict[str, Any]:
        """Start a generation; 429 while the user already has ``chat.max_generations_per_user``
        running (per replica), so one user cannot take every upstream slot."""
        cap = self.config.chat.max_generations_per_user
        n = max(len(req.models), 1)
        if self.running(user.id) + n > cap:
            raise RateLimitError(
                f"You already have {cap} answers being written; wait for one to finish.",
                code="too_many_generations",
                retry_after=2,
            )
        self._starting[user.id] = self._starting.get(user.id, 0) + n
        try:
            return await self._send(user, cid, req)
        finally:
            left = self._starting[user.id] - n
            if left:
                self._starting[user.id] = left
            else:
                del self._starting[user.id]

    async def _send(self, user: Account, cid: str, req: Send) -> dict[str, Any]:
        conv, rows = await self.store.with_messages(user.id, cid)
        tree = Tree(rows)
        models = _models(req) or [req.model or conv["model"]]
        for model in models:
            self.router.resolve(model)
        new_rows: list[Row] = []
        links: list[Row] = []
        user_mid: str | None = None
        if req.regenerate_of is not None:
            target = _message(tree, req.regenerate_of, "regenerate_of")
            if target["role"] != "assistant":
                raise InvalidRequestError(
                    "Only an answer can be regenerated.", param="regenerate_of"
                )
            parent = target["parent_id"]
        else:
            if not req.content or not req.content.strip():
                raise InvalidRequestError("`content` is required.", param="content")
            if req.edit_of is not None:
                target = _message(tree, req.edit_of, "edit_of")
                if target["role"] != "user":
                    raise InvalidRequestError("Only a user message can be edited.", param="edit_of")
                parent = target["parent_id"]
            elif req.parent_given:
                parent = req.parent_id
            else:
                parent = tree.leaf(conv["active_leaf_id"])
            if parent is not None:
                _check_parent(_message(tree, parent, "parent_id"))
            user_mid = new_id("m")
            new_rows.append(
                {"id": user_mid, "parent_id": parent, "role": "user", "content": req.content}
            )
            files = await attachments.for_message(
                self.files, user.id, req.attachments, req.edit_of, models, self.router,
                self.config.providers,
            )  # fmt: skip
            links = self.files.store.links(user_mid, files)
        branch = tree.path_to(parent) if parent is not None else []
        if user_mid is not None:
            branch.append(user_mid)
        if not branch:
            raise InvalidRequestError("There is no message to answer.", param="parent_id")
        # One answer per model (side by side: siblings under the one user message), each its
        # own generation, admitted under the user's policy like any other request.
        answers = [(new_id("g"), new_id("m"), model) for model in models]
        for gid, mid, model in answers:
            new_rows.append(
                {
                    "id": mid,
                    "parent_id": branch[-1],
                    "role": "assistant",
                    "status": "streaming",
                    "model": model,
                    "generation_id": gid,
                }
            )
        params = {k: v for k, v in (conv["params"] or {}).items() if k not in RESERVED_PARAMS}
        exchanges: list[Exchange] = []
        try:
            for _, _, model in answers:
                exchange = self.path.begin("web_chat")
                exchanges.append(exchange)
                await exchange.as_user(user.id, user.name)
                # Admitted on an outline of the request: the real context is built by the job.
                outline = ChatRequest(
                    body={**params, "model": model, "messages": _outline(tree, branch, req)},
                    model=model,
                    stream=True,
                )
                estimate = estimate_tokens(outline, self.config.chat.reply_tokens)
                await exchange.admit(outline, min(self.window(model), estimate))
            title_from = title = None
            if not conv["title"] and req.content and user_mid is not None:
                conv["title"] = title = first_words(req.content)
                title_from = req.content
            await self.store.add_messages(
                cid, new_rows, active_leaf=answers[0][1], title=title, links=links
            )
        except BaseException as exc:
            for exchange in exchanges:
                exchange.fail(exc if isinstance(exc, GatewayError) else "not started", 500)
                await exchange.finish()
            raise
        for i, ((gid, mid, model), exchange) in enumerate(zip(answers, exchanges, strict=True)):
            spec = Spec(
                generation_id=gid,
                user_id=user.id,
                conversation=conv,
                tree=Tree([*rows, *new_rows]),  # each job its own
                branch=branch,
                message_id=mid,
                model=model,
                window=self.window(model),
                exchange=exchange,
                params=params,
                regenerate=req.regenerate_of is not None,
                title_from=title_from if i == 0 else None,
            )
            try:
                self.generations.start(spec)
            except GatewayError as exc:
                for left in exchanges[i:]:
                    left.fail(exc)
                    await left.finish()
                raise
        gid, mid, _ = answers[0]
        started = {
            "generation_id": gid,
            "conversation_id": cid,
            "user_message_id": user_mid,
            "message_id": mid,
            "parent_id": branch[-1],
            "events_url": f"/api/generations/{gid}/events",
            "generations": [{"id": g, "model": m, "message_id": a} for g, a, m in answers],
        }
        for g, a, _ in answers:  # the user's other tabs
            await self.events.publish(
                user.id, started_event({**started, "generation_id": g, "message_id": a})
            )
        return started

    async def stop_all(self, user_id: str) -> int:
        """Stop every answer the user has running here (when they are disabled)."""
        jobs = [j for j in self.generations.jobs.values() if j.user_id == user_id]
        running = [j for j in jobs if not j.ended.is_set()]
        for job in running:
            await self.generations.stop(job)
        return len(running)

    # -- following -------------------------------------------------------------------------------
    async def find(self, user: Account, gid: str) -> Job | Remote | Row:
        """The live job; a job of another replica (its log shared in Redis); or the stored
        answer of a generation whose log has gone."""
        job = self.generations.get(gid)
        if job is not None:
            if job.user_id != user.id:
                raise not_found(gid)
            return job
        found = await self.store.by_generation(user.id, gid)
        if found is None:
            raise not_found(gid)
        if self.shared is not None and await self.shared.exists(gid):
            return Remote(gid, found[1]["id"])
        return found[1]

    async def stored(self, user: Account, gid: str) -> Row:
        found = await self.store.by_generation(user.id, gid)
        if found is None:
            raise not_found(gid)
        return found[1]

    async def follow(
        self, source: Job | Remote | Row, after: int, keepalive: float = 15.0
    ) -> AsyncIterator[list[LogEvent]]:
        if isinstance(source, Job):
            async for batch in source.log.follow(after, keepalive):
                yield batch
            return
        if isinstance(source, Remote):
            assert self.shared is not None
            try:
                async for batch in self.shared.follow(source.generation_id, after, keepalive):
                    yield batch
                return
            except (LogGap, *FAILURES):  # Redis went away, or its copy has a hole
                source = await self.store.message(source.message_id)
        async for batch in self._follow_stored(source):
            yield batch

    async def _follow_stored(self, row: Row) -> AsyncIterator[list[LogEvent]]:
        """A generation that is no longer in this process's memory: its stored text as a
        ``snapshot`` (replace, don't append), polled while another process is still writing it."""
        gid, last, stale = row["generation_id"], None, 0
        while True:
            state = (row["content"], row["reasoning"], row["status"])
            if state != last:
                stale, last = 0, state
                yield [_stored_event(gid, "snapshot", {"message": _public(row)})]
            if row["status"] != "streaming":
                done = {"status": row["status"], "usage": row["usage"], "message_id": row["id"]}
                if row["error"]:
                    done["error"] = {"message": row["error"]}
                yield [_stored_event(gid, "done", done)]
                return
            stale += 1
            if stale > _STALE_POLLS:
                return
            await asyncio.sleep(self.config.chat.save_interval)
            row = await self.store.message(row["id"])

    async def _settled(self, user: Account, gid: str) -> Row:
        """The stored answer once its replica has saved it (or as it is after 10 s)."""

        async def check() -> Row | None:
            row = await self.stored(user, gid)
            return row if row["status"] != "streaming" else None

        return await _poll(check, 10.0) or await self.stored(user, gid)

    async def stop(self, user: Account, gid: str) -> dict[str, Any]:
        source = await self.find(user, gid)
        if isinstance(source, Job):
            await self.generations.stop(source)
            row = await self.store.message(source.message_id)
        elif isinstance(source, Remote) and (
            self.shared is not None and await self.shared.request_stop(gid)
        ):
            row = await self._settled(user, gid)
        elif isinstance(source, Remote) or source["status"] == "streaming":
            # No job writes it here, and no stop can reach one elsewhere (Redis is away, or
            # no replica shares its log: its process is gone). Close it now with its text.
            mid = source.message_id if isinstance(source, Remote) else source["id"]
            await self.store.close_unfinished(mid, "stopped")
            row = await self.store.message(mid)
        else:
            row = source
        return {
            "generation_id": gid,
            "message_id": row["id"],
            "status": row["status"],
            "content": row["content"],
        }


async def _poll(check: Callable[[], Awaitable[Row | None]], seconds: float) -> Row | None:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found is not None or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


def _models(req: Send) -> list[str]:
    """Side by side: 2 or 3 different models, instead of ``model``."""
    if not req.models:
        return []
    if req.model is not None:
        raise InvalidRequestError("Send either `model` or `models`, not both.", param="models")
    if not 2 <= len(req.models) <= 3 or len(set(req.models)) != len(req.models):
        raise InvalidRequestError(
            "`models` takes two or three different models to answer side by side.",
            param="models",
        )
    return list(req.models)


def _outline(tree: Tree, branch: list[str], req: Send) -> list[dict[str, Any]]:
    """The branch's messages as the request will carry them (for the admission estimate)."""
    messages = [
        {"role": "user" if row["role"] == "user" else "assistant", "content": row["content"]}
        for row in (tree.by_id[m] for m in branch if m in tree.by_id)
    ]
    if req.content and (not branch or branch[-1] not in tree.by_id):
        messages.append({"role": "user", "content": req.content})
    return messages


def _message(tree: Tree, mid: str, param: str) -> Row:
    row = tree.by_id.get(mid)
    if row is None:
        raise NotFoundError(f"Message {mid} is not in this conversation.", param=param)
    return row


def _check_parent(row: Row) -> None:
    if row["role"] == "summary":
        raise InvalidRequestError("A summary cannot be answered.", param="parent_id")
    if row["status"] == "streaming":
        raise InvalidRequestError("That answer is still being written.", param="parent_id")


def _public(row: Row) -> Row:
    return {k: compact(v) if k == "context" else v for k, v in row.items() if k != "updated_at"}


def _stored_event(gid: str, kind: str, payload: dict[str, Any]) -> LogEvent:
    """An event served from the database: no ``seq``, so no SSE ``id:`` either."""
    data = orjson.dumps({"type": kind, "generation_id": gid, **payload})
    return LogEvent(0, data, sse=b"data: %s\n\n" % data)
