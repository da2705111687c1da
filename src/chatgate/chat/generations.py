"""Generation jobs: answers produced by tasks the application owns, not by requests.

A job builds the context, streams the answer along the request path (the ``web_chat`` door's
exchange, admitted by the request that started the job: the same policy, cache, reasoning,
usage and metrics as ``/v1``), appends each batch of chunks to its event log, and ends
by saving the answer with its status (``done`` / ``stopped`` / ``error``) and usage. Clients
follow the log; closing a tab or losing the network stops nothing. Partial answers are written
by one saver task for all jobs every ``chat.save_interval`` seconds, as one statement, never per
token. Stop cancels the job's task, which closes the upstream call and keeps the partial text.
A finished job's log stays in memory for ``chat.job_retention`` seconds; after that its
followers are served from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatgate.chat.context import Built, ContextBuilder
from chatgate.chat.ids import new_id
from chatgate.chat.joblog import JobLog, LogEvent
from chatgate.chat.shared import SharedLogs
from chatgate.chat.store import ConversationStore
from chatgate.chat.tokens import TokenCounter
from chatgate.chat.tree import Row, Tree
from chatgate.config import ChatConfig
from chatgate.errors import GatewayError, ServiceUnavailableError
from chatgate.gateway.auth import Identity
from chatgate.gateway.path import CLIENT_GONE, Exchange, RequestPath
from chatgate.gateway.usage import usage_tokens
from chatgate.protocol.openai import ChunkBatch, validate_chat_request

if TYPE_CHECKING:
    from chatgate.files.grounding import Grounding

log = logging.getLogger(__name__)

SHUTDOWN_ERROR = "interrupted: the server shut down during the answer"


@dataclass
class Spec:
    """Everything a job needs, prepared by the request that started it."""

    generation_id: str
    user_id: str
    conversation: Row
    tree: Tree
    branch: list[str]  # root → the message being answered
    message_id: str  # the assistant message, stored with status "streaming"
    model: str
    window: int
    exchange: Exchange  # admitted: the caller's identity and rate-limit reservation
    params: dict[str, Any] = field(default_factory=dict)
    regenerate: bool = False
    title_from: str | None = None  # the first user message, when the conversation has no title


class Job:
    __slots__ = (
        "content",
        "conversation_id",
        "dirty",
        "ended",
        "id",
        "log",
        "message_id",
        "reasoning",
        "stop_requested",
        "task",
        "user_id",
    )

    def __init__(self, spec: Spec, mirror: Callable[[str, LogEvent], None] | None) -> None:
        self.id = spec.generation_id
        self.user_id = spec.user_id
        self.conversation_id = spec.conversation["id"]
        self.message_id = spec.message_id
        self.log = JobLog(spec.generation_id, mirror)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.dirty = False
        self.stop_requested = False
        self.ended = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


def batch_deltas(batch: ChunkBatch) -> tuple[str, str]:
    """The content and reasoning text of a batch of chunks (first choice)."""
    content: list[str] = []
    reasoning: list[str] = []
    for chunk in batch:
        choices = chunk.get("choices")
        if not choices:
            continue
        delta = choices[0].get("delta") or {}
        c, r = delta.get("content"), delta.get("reasoning_content")
        if c:
            content.append(c)
        if r:
            reasoning.append(r)
    return "".join(content), "".join(reasoning)


class Generations:
    def __init__(
        self,
        store: ConversationStore,
        path: RequestPath,
        context: ContextBuilder,
        tokens: TokenCounter,
        config: ChatConfig,
        shared: SharedLogs | None = None,
    ) -> None:
        self.store = store
        self.shared = shared
        self.path = path
        self.context = context
        self.tokens = tokens
        self.config = config
        self.jobs: dict[str, Job] = {}
        self._saver: asyncio.Task[None] | None = None
        self._closing = False
        # The conversation's files for the prompt (set by the chat service: chatgate.files).
        self.grounder: Callable[[Spec], Awaitable[Grounding | None]] | None = None

    def start_saver(self) -> None:
        self._saver = asyncio.get_running_loop().create_task(self._save_loop())

    def get(self, generation_id: str) -> Job | None:
        return self.jobs.get(generation_id)

    def start(self, spec: Spec) -> Job:
        if self._closing:
            raise ServiceUnavailableError("chatgate is shutting down", retry_after=1)
        job = Job(spec, self.shared.append if self.shared is not None else None)
        job.log.append(
            {
                "type": "start",
                "conversation_id": job.conversation_id,
                "message_id": job.message_id,
                "parent_id": spec.branch[-1] if spec.branch else None,
                "model": spec.model,
            }
        )
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, spec), name=job.id)
        return job

    async def stop(self, job: Job, wait: float = 10.0) -> None:
        """Cancel the job (the upstream call with it) and wait until its answer is saved."""
        if job.task is not None and not job.ended.is_set() and not job.stop_requested:
            job.stop_requested = True
            job.task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await job.ended.wait()

    def on_stop(self, generation_id: str) -> None:
        """A stop asked for on another replica (through Redis)."""
        job = self.jobs.get(generation_id)
        if job is not None and not job.ended.is_set():
            asyncio.get_running_loop().create_task(self.stop(job))

    # -- the job ---------------------------------------------------------------------------------
    async def _run(self, job: Job, spec: Spec) -> None:
        status, error, built = "done", None, None
        exchange = spec.exchange
        try:
            built = await self._build(job, spec)
            body = {
                **spec.params,
                "model": spec.model,
                "messages": built.messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            req = validate_chat_request(body)
            req.cache_lookup = not spec.regenerate  # a regenerate wants a new answer
            try:
                await exchange.open(req)
                async for batch in exchange:
                    content, reasoning = batch_deltas(batch)
                    if content or reasoning:
                        self._delta(job, content, reasoning)
            finally:
                await exchange.aclose()  # closes the upstream call now, also when cancelled
        except asyncio.CancelledError:
            status = "stopped" if job.stop_requested else "error"
            if not job.stop_requested:
                error = {"message": SHUTDOWN_ERROR, "type": "internal_error", "code": None}
            exchange.fail(SHUTDOWN_ERROR if error else "stopped", CLIENT_GONE)
        except GatewayError as exc:
            status, error = "error", exc.to_body()["error"]
            exchange.fail(exc)
        except Exception as exc:
            log.exception("generation %s failed", job.id)
            status = "error"
            error = {"message": f"internal error: {type(exc).__name__}", "type": "internal_error"}
            exchange.fail(str(error["message"]), 500)
        answer = exchange.answer
        await self._finish(job, spec, status, error, answer.usage if answer else None, built)
        if spec.title_from is not None and status == "done" and self.config.model_titles:
            await self._title(spec)

    def _delta(self, job: Job, content: str, reasoning: str) -> None:
        payload: dict[str, Any] = {"type": "delta"}
        if content:
            job.content.append(content)
            payload["content"] = content
        if reasoning:
            job.reasoning.append(reasoning)
            payload["reasoning"] = reasoning
        job.dirty = True
        job.log.append(payload)

    async def _build(self, job: Job, spec: Spec) -> Built:
        conv = spec.conversation
        built = await self.context.build(
            spec.tree,
            spec.branch,
            model=spec.model,
            window=spec.window,
            system_prompt=conv.get("system_prompt") or self._model_system_prompt(spec.model),
            params=spec.params,
            summarizer=lambda msgs, n: self.complete(spec, msgs, n),
            new_summary_id=new_id("m"),
            grounding=await self.grounder(spec) if self.grounder is not None else None,
        )
        record = built.record()
        if built.new_summary is not None:
            await self.store.add_messages(job.conversation_id, [built.new_summary], None)
        # The record is stored with the answer at the end (one write less per generation).
        event: dict[str, Any] = {"type": "context", **record}
        if built.citations:
            event["citations"] = built.citations
        if built.new_summary is not None:
            summary = built.new_summary
            event["summary"] = {k: summary[k] for k in ("id", "parent_id", "content")}
        job.log.append(event)
        return built

    def _model_system_prompt(self, model: str) -> str | None:
        dep = self.path.pipeline.router.get(model)
        return dep.settings.system_prompt if dep is not None and dep.settings else None

    async def complete(self, spec: Spec, messages: list[dict[str, Any]], max_tokens: int) -> str:
        """A short non-streamed call for the job's user (summaries, titles): the answer's text.
        Its own trip along the path: the user's limits, budget and usage apply to it too."""
        req = validate_chat_request(
            {"model": spec.model, "messages": messages, "max_tokens": max_tokens}
        )
        exchange = self.path.begin("web_chat")
        exchange.trust(_identity(spec))
        try:
            await exchange.admit(req)
            answer = await exchange.open()
        except GatewayError as exc:
            exchange.fail(exc)
            raise
        finally:
            await exchange.finish()
        choices = (answer.completion or {}).get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else ""

    async def _finish(
        self,
        job: Job,
        spec: Spec,
        status: str,
        error: dict[str, Any] | None,
        usage: dict[str, Any] | None,
        built: Built | None,
    ) -> None:
        content, reasoning = "".join(job.content), "".join(job.reasoning) or None
        job.dirty = False
        try:
            await self.store.update_message(
                job.message_id,
                {
                    "content": content,
                    "reasoning": reasoning,
                    "status": status,
                    "usage": usage,
                    "error": error["message"] if error else None,
                    **(
                        {
                            "context": built.record(),
                            "context_detail": built.detail(),
                            "citations": built.citations or None,
                        }
                        if built is not None
                        else {}
                    ),
                },
            )
        except Exception:
            log.exception("generation %s: cannot save the answer", job.id)
        job.log.append(
            {
                "type": "done",
                "status": status,
                "usage": usage,
                "error": error,
                "message_id": job.message_id,
            }
        )
        job.log.finish()
        job.ended.set()
        await spec.exchange.finish()
        prompt = usage_tokens(usage)[0]  # a cached answer's count still measures this prompt
        if built is not None and prompt:
            self.tokens.calibrate(spec.model, built.raw_estimate, prompt, built.tokenizer)
        asyncio.get_running_loop().call_later(self.config.job_retention, self._evict, job)

    def _evict(self, job: Job) -> None:
        if self.jobs.get(job.id) is job:
            del self.jobs[job.id]

    async def _title(self, spec: Spec) -> None:
        text = (spec.title_from or "")[:2000]
        prompt = [
            {
                "role": "system",
                "content": "Write a title of at most six words for a conversation that starts "
                "with the user's message below, in its language. Answer with the title only.",
            },
            {"role": "user", "content": text},
        ]
        try:
            title = clean_title(await self.complete(spec, prompt, 24))
            if title:
                await self.store.set_title(spec.conversation["id"], title)
        except Exception as exc:  # the first words stay the title
            log.info("title for %s failed: %s", spec.conversation["id"], exc)

    # -- partial saves ---------------------------------------------------------------------------
    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.save_interval)
            await self.save_partials()

    async def save_partials(self) -> None:
        parts = []
        for job in list(self.jobs.values()):
            if job.dirty and not job.ended.is_set():
                job.dirty = False
                parts.append((job.message_id, "".join(job.content), "".join(job.reasoning) or None))
        if parts:
            try:
                await self.store.save_partials(parts)
            except Exception:
                log.exception("cannot save %d partial answers", len(parts))

    async def close(self, grace: float = 5.0) -> None:
        """Let running jobs finish for ``grace`` seconds, then cancel them; all are saved."""
        self._closing = True
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)


def clean_title(text: str) -> str:
    title = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return title.strip("\"'«»“”#*. ")[:120]


def _identity(spec: Spec) -> Identity:
    identity = spec.exchange.identity
    assert identity is not None
    return identity
