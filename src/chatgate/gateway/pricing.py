"""Money: what an answer cost, from a price table and the upstream's own usage fields.

A :class:`Price` is per million tokens — input (cache miss), cached input (cache hit), output —
in one currency, with optional time windows (DeepSeek's peak hours) that replace the rates
while they are open. The shipped table (``prices.yaml``, dated) covers the known DeepSeek,
OpenAI and GigaChat models; ``pricing.prices`` in the YAML config and ``models.<name>.price``
override it. Names match exactly or by glob (``gpt-4o-mini*``); the longest matching glob wins.

Amounts are integer *nano-units* of the currency (1e-9): exact to add up, so a budget runs out
exactly, and an answer of a few cached tokens is not rounded to nothing.

Cached input never counts twice: OpenAI's ``prompt_tokens`` include
``prompt_tokens_details.cached_tokens``, DeepSeek's are ``prompt_cache_hit_tokens`` +
``prompt_cache_miss_tokens``, and GigaChat's ``precached_prompt_tokens`` are *not* part of its
``prompt_tokens`` (they are subtracted from what it bills).
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from chatgate.providers.settings import Section

NANOS = 1_000_000_000  # nano-units in one unit of a currency
Clock = Callable[[], datetime]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MEMO_LIMIT = 4096
PerToken = tuple[float, float, float]  # input, cached input, output: nano-units per token
_Open = tuple[frozenset[int] | None, tuple[tuple[int, int], ...], PerToken]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Rates(Section):
    """Prices per million tokens."""

    input: float = Field(ge=0, description="Input (prompt) tokens, cache miss.")
    output: float = Field(ge=0, description="Output (completion, reasoning included) tokens.")
    cached_input: float | None = Field(
        None, ge=0, description="Input tokens the upstream served from its cache; default: input."
    )

    def per_token(self) -> PerToken:
        """(input, cached input, output) in nano-units per token."""
        cached = self.input if self.cached_input is None else self.cached_input
        return self.input * 1000, cached * 1000, self.output * 1000


def _minutes(text: str) -> int:
    hours, _, minutes = text.strip().partition(":")
    h, m = int(hours), int(minutes or 0)
    if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440):
        raise ValueError(f"`{text}` is not a time of day (HH:MM)")
    return h * 60 + m


class Window(Rates):
    """Rates that apply while a UTC clock window is open: ``hours`` ("01:00-04:00", or a list
    of them; a window may wrap past midnight; start inclusive, end exclusive; equal start and
    end is the whole day) on ``days`` (default every day; the day of the moment priced)."""

    hours: list[str]
    days: list[Day] | None = None

    @field_validator("hours", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("hours")
    @classmethod
    def _check_spans(cls, value: list[str]) -> list[str]:
        for span in value:
            start, sep, end = span.partition("-")
            if not sep:
                raise ValueError(f"`{span}` is not a window (HH:MM-HH:MM)")
            _minutes(start), _minutes(end)
        return value

    def compiled(self) -> _Open:
        """(weekdays or None for every day, spans in minutes of the day, rates per token)."""
        spans = []
        for span in self.hours:
            start, _, end = span.partition("-")
            spans.append((_minutes(start), _minutes(end)))
        days = None if self.days is None else frozenset(map(_DAYS.index, self.days))
        return days, tuple(spans), self.per_token()


def _open(window: _Open, weekday: int, minute: int) -> bool:
    """Whether a compiled window is open at ``minute`` of a ``weekday`` (0: Monday)."""
    days, spans, _ = window
    if days is not None and weekday not in days:
        return False
    for start, end in spans:
        if start == end:
            return True
        if start < end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:  # wraps past midnight
            return True
    return False


class Price(Rates):
    """One model's price: base rates in ``currency``, and windows that replace them."""

    currency: str = Field("USD", min_length=1, max_length=8)
    windows: list[Window] = Field(default_factory=list)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class PricingConfig(Section):
    """``pricing:`` — the price table's overrides and the budgets' currency."""

    currency: str = Field(
        "USD",
        min_length=1,
        max_length=8,
        description="Currency of the keys' and users' `budget_cost`.",
    )
    exchange_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Value of one unit of another currency in `currency` (e.g. RUB: 0.0125), so "
        "spend in it counts against budgets; spend in a currency without a rate does not.",
    )
    defaults: bool = Field(True, description="Use the shipped prices (gateway/prices.yaml).")
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="Model name or glob → price; searched before the shipped table.",
    )

    @model_validator(mode="after")
    def _upper(self) -> PricingConfig:
        self.currency = self.currency.upper()
        self.exchange_rates = {k.upper(): v for k, v in self.exchange_rates.items()}
        for rate in self.exchange_rates.values():
            if not rate > 0:
                raise ValueError("exchange rates must be above 0")
        return self


@functools.cache
def shipped_prices() -> dict[str, Price]:
    """The table shipped in ``prices.yaml`` (read once)."""
    text = resources.files("chatgate.gateway").joinpath("prices.yaml").read_text("utf-8")
    data = yaml.safe_load(text) or {}
    return {name: Price.model_validate(price) for name, price in data["prices"].items()}


class PriceTable:
    """Name → price: exact names first, then the longest matching glob."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self.exact = {name: p for name, p in prices.items() if not _is_glob(name)}
        globs = [(name, p) for name, p in prices.items() if _is_glob(name)]
        self.globs = sorted(globs, key=lambda item: -len(item[0]))

    def find(self, name: str) -> Price | None:
        price = self.exact.get(name)
        if price is not None:
            return price
        for pattern, price in self.globs:
            if fnmatch.fnmatchcase(name, pattern):
                return price
        return None


def _is_glob(name: str) -> bool:
    return any(c in name for c in "*?[")


@dataclass(frozen=True, slots=True)
class Cost:
    """An answer's price: ``nanos`` of ``currency``, and its worth in the budgets' currency
    (``budget_nanos``; 0 when there is no exchange rate)."""

    nanos: int
    currency: str
    budget_nanos: int


def billable(usage: Any) -> tuple[int, int, int]:
    """(input at the cache-miss price, cached input, output) tokens from an upstream's usage,
    whichever provider's shape it has; (0, 0, 0) without usage."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    prompt = _int(usage.get("prompt_tokens"))
    output = _int(usage.get("completion_tokens"))
    hit, miss = usage.get("prompt_cache_hit_tokens"), usage.get("prompt_cache_miss_tokens")
    if isinstance(hit, int) or isinstance(miss, int):  # DeepSeek: hit + miss = prompt
        cached = _int(hit)
        uncached = _int(miss) if isinstance(miss, int) else max(prompt - cached, 0)
        return uncached, cached, output
    precached = usage.get("precached_prompt_tokens")
    if isinstance(precached, int):  # GigaChat: not part of prompt_tokens
        return prompt, _int(precached), output
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):  # OpenAI: cached tokens are part of prompt_tokens
        cached = min(_int(details.get("cached_tokens")), prompt)
        return prompt - cached, cached, output
    return prompt, 0, output


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def rates_at(price: Price, when: datetime) -> Rates:
    """The rates in force at ``when`` (UTC): the first open window's, else the base ones."""
    when = when.astimezone(UTC)
    minute, weekday = when.hour * 60 + when.minute, when.weekday()
    for window in price.windows:
        if _open(window.compiled(), weekday, minute):
            return window
    return price


@dataclass(frozen=True, slots=True)
class _Tariff:
    """A price compiled for the hot path (no pydantic attribute access per request)."""

    price: Price
    currency: str
    base: PerToken
    windows: tuple[_Open, ...]

    @classmethod
    def of(cls, price: Price) -> _Tariff:
        windows = tuple(w.compiled() for w in price.windows)
        return cls(price, price.currency, price.per_token(), windows)

    def at(self, when: datetime) -> PerToken:
        when = when.astimezone(UTC)
        minute, weekday = when.hour * 60 + when.minute, when.weekday()
        for window in self.windows:
            if _open(window, weekday, minute):
                return window[2]
        return self.base


class Pricing:
    """Prices answers: the stage behind ``Exchange.finish`` (cost) and ``Exchange.open``
    (the ``x-chatgate-cost`` header of a whole answer).

    ``lookup(name)`` is memoised per public model name, so a model without a price costs one
    dict look-up per request. The clock is injected (tests price peak and off-peak hours)."""

    def __init__(
        self,
        config: PricingConfig | None = None,
        per_model: Mapping[str, Price] | None = None,
        resolve: Callable[[str], Iterable[str]] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        config = config or PricingConfig()
        self.currency = config.currency
        self.exchange = {**config.exchange_rates, config.currency: 1.0}
        self.per_model = dict(per_model or {})
        self.tables = [PriceTable(config.prices)]
        if config.defaults:
            self.tables.append(PriceTable(shipped_prices()))
        self.resolve = resolve
        self.clock = clock
        self._memo: dict[str, _Tariff | None] = {}

    def lookup(self, model: str) -> Price | None:
        """The price of public model ``model``: its own ``price:`` setting, else the tables by
        its public name, then by the names its deployment has upstream (``resolve``)."""
        tariff = self._tariff(model)
        return tariff.price if tariff is not None else None

    def _tariff(self, model: str) -> _Tariff | None:
        memo = self._memo
        if model in memo:
            return memo[model]
        price = self.per_model.get(model)
        if price is None:
            names = [model, *(self.resolve(model) if self.resolve is not None else ())]
            price = self._find(names)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        tariff = memo[model] = _Tariff.of(price) if price is not None else None
        return tariff

    def _find(self, names: list[str]) -> Price | None:
        for table in self.tables:
            for name in names:
                price = table.find(name)
                if price is not None:
                    return price
        return None

    def cost(self, model: str, usage: Any) -> Cost | None:
        """What ``usage`` of ``model`` costs now; None when the model has no price."""
        tariff = self._tariff(model)
        if tariff is None:
            return None
        uncached, cached, output = billable(usage)
        p_in, p_cached, p_out = tariff.at(self.clock()) if tariff.windows else tariff.base
        nanos = round(uncached * p_in + cached * p_cached + output * p_out)
        rate = self.exchange.get(tariff.currency)
        budget = nanos if rate == 1.0 else round(nanos * rate) if rate is not None else 0
        return Cost(nanos, tariff.currency, budget)


def to_nanos(amount: float | Decimal | str) -> int:
    """A currency amount (``1.25``) in nano-units."""
    return int((Decimal(str(amount)) * NANOS).to_integral_value())


def from_nanos(nanos: int) -> float:
    return nanos / NANOS


def format_amount(nanos: int) -> str:
    """Nano-units as a plain decimal string (``0.00042``, ``0``), for headers and lists."""
    text = format(Decimal(nanos).scaleb(-9), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
