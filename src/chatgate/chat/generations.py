"""Generation jobs: answers produced by tasks the application owns, not by requests.

A job builds the context, streams the answer along the request path (the ``web_chat`` door's
exchange, admitted by the request that started the job: the same policy, cache, reasoning,
usage and metrics as ``/v1``), appends each batch of chunks to its event log, and ends
by saving the answer with its status (``done`` / ``stopped`` / ``error``) and usage. Clients
follow the log; closing a tab or losing the network stops nothing. Partial answers are written
by one saver for all jobs every ``chat.save_interval`` seconds, as one statement, never per
token. Stop cancels the job's task, which closes the upstream call and keeps the partial text.
A finished job's log stays in memory for ``chat.job_retention`` seconds (and as long as its
answer waits for a database outage to end, see :mod:`chatgate.chat.saver`); after that its
followers are served from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chatgate.chat.context import Built, ContextBuilder
from chatgate.chat.ids import new_id
from chatgate.chat.job import Job, Spec
from chatgate.chat.saver import Saver
from chatgate.chat.shared import SharedLogs
from chatgate.chat.store import ConversationStore
from chatgate.chat.tokens import TokenCounter
from chatgate.config import ChatConfig
from chatgate.errors import GatewayError, ServiceUnavailableError
from chatgate.gateway.auth import Identity
from chatgate.gateway.path import CLIENT_GONE, RequestPath
from chatgate.gateway.usage import usage_tokens
from chatgate.protocol.openai import ChunkBatch, validate_chat_request

if TYPE_CHECKING:
    from chatgate.files.grounding import Grounding

log = logging.getLogger(__name__)

SHUTDOWN_ERROR = "interrupted: the server shut down during the answer"


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
        self.saver = Saver(store, self.jobs, config.save_interval)
        self._closing = False
        # The conversation's files for the prompt (set by the chat service: chatgate.files).
        self.grounder: Callable[[Spec], Awaitable[Grounding | None]] | None = None

    def start_saver(self) -> None:
        self.saver.start()

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
        values = {
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
        }
        await self.saver.final(job, values)  # kept and retried through a database outage
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
        if self.saver.keeps(job):  # its job is the only copy of the answer: keep it until written
            asyncio.get_running_loop().call_later(self.saver.RETRY_MAX, self._evict, job)
        elif self.jobs.get(job.id) is job:
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

    async def end_all(self, wait: float) -> None:
        """End every running job now (each saved as an error, shutting down, with its text) and
        wait up to ``wait`` seconds for them to be done; no new job starts any more."""
        self._closing = True
        running = [j for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for job in running:
            assert job.task is not None
            job.task.cancel()
        waiters = [asyncio.ensure_future(j.ended.wait()) for j in running]
        try:
            if waiters:
                await asyncio.wait(waiters, timeout=wait)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def close(self, grace: float = 5.0) -> None:
        """Let running jobs finish for ``grace`` seconds, then cancel them; all are saved."""
        self._closing = True
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.saver.close(grace)


def clean_title(text: str) -> str:
    title = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return title.strip("\"'«»“”#*. ")[:120]


def _identity(spec: Spec) -> Identity:
    identity = spec.exchange.identity
    assert identity is not None
    return identity
