"""The price table and cost arithmetic: shapes of each provider's usage, windows on a fixed
clock, exact and glob names, overrides, the shipped table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from chatgate.config import Config
from chatgate.gateway.pricing import (
    NANOS,
    Price,
    Pricing,
    PricingConfig,
    billable,
    format_amount,
    rates_at,
    shipped_prices,
    to_nanos,
)

# A Thursday: 02:00 UTC is inside DeepSeek's peak hours, 12:00 UTC outside them.
PEAK = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
OFF_PEAK = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

DEEPSEEK_USAGE = {
    "prompt_tokens": 1_000_000,
    "completion_tokens": 1_000_000,
    "total_tokens": 2_000_000,
    "prompt_cache_hit_tokens": 600_000,
    "prompt_cache_miss_tokens": 400_000,
}


class FixedClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> datetime:
        return self.when


def test_deepseek_shape_prices_hits_and_misses_apart() -> None:
    assert billable(DEEPSEEK_USAGE) == (400_000, 600_000, 1_000_000)


def test_openai_cached_tokens_are_part_of_prompt_tokens_and_count_once() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 800},
    }
    assert billable(usage) == (200, 800, 50)
    # More cached than prompt (a broken upstream) never makes a negative count.
    bad = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}}
    assert billable(bad) == (0, 10, 0)


def test_gigachat_precached_tokens_are_not_part_of_prompt_tokens() -> None:
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
        "precached_prompt_tokens": 2,
    }
    assert billable(usage) == (7, 2, 3)


def test_plain_and_missing_usage() -> None:
    assert billable({"prompt_tokens": 5, "completion_tokens": 2}) == (5, 0, 2)
    assert billable({"prompt_tokens": 5, "total_tokens": 5}) == (5, 0, 0)  # embeddings
    assert billable(None) == (0, 0, 0)
    assert billable({"prompt_tokens": True, "completion_tokens": -3}) == (0, 0, 0)


def test_peak_and_off_peak_on_a_fixed_clock() -> None:
    clock = FixedClock(PEAK)
    pricing = Pricing(clock=clock)
    # deepseek-flash at peak: 0.3 miss, 0.006 hit, 1.2 output per million.
    peak = pricing.cost("deepseek-flash", DEEPSEEK_USAGE)
    assert peak is not None and peak.currency == "USD"
    assert peak.nanos == to_nanos("0.12") + to_nanos("0.0036") + to_nanos("1.2")
    clock.when = OFF_PEAK
    off = pricing.cost("deepseek-flash", DEEPSEEK_USAGE)
    assert off is not None and off.nanos * 2 == peak.nanos  # off-peak is half
    assert format_amount(off.nanos) == "0.6618"


def test_window_edges_wrap_and_days() -> None:
    price = Price.model_validate(
        {
            "input": 1,
            "output": 1,
            "windows": [
                {"hours": "16:30-00:30", "input": 0.5, "output": 0.5},
                {"hours": "00:00-00:00", "days": ["sat", "sun"], "input": 0.1, "output": 0.1},
            ],
        }
    )

    def at(h: int, m: int, day: int = 3) -> float:
        return rates_at(price, datetime(2026, 12, day, h, m, tzinfo=UTC)).input

    assert at(16, 29) == 1
    assert at(16, 30) == 0.5  # start inclusive
    assert at(23, 59) == 0.5
    assert at(0, 29) == 0.5  # wraps past midnight
    assert at(0, 30) == 1  # end exclusive
    assert at(12, 0, day=5) == 0.1  # Saturday: the whole-day window
    # A time in another zone is read as UTC.
    from datetime import timedelta, timezone

    moscow = datetime(2026, 12, 3, 19, 45, tzinfo=timezone(timedelta(hours=3)))
    assert rates_at(price, moscow).input == 0.5


def test_exact_names_then_longest_glob() -> None:
    pricing = Pricing(clock=FixedClock(OFF_PEAK))
    mini = pricing.lookup("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.input == 0.15
    big = pricing.lookup("gpt-4o-2024-08-06")
    assert big is not None and big.input == 2.5
    assert pricing.lookup("fake-model") is None
    assert pricing.lookup("GigaChat-2-Max") is not None
    assert pricing.lookup("GigaChat-2-Max").currency == "RUB"  # type: ignore[union-attr]


def test_overrides_come_first_and_the_shipped_table_can_be_off() -> None:
    config = PricingConfig.model_validate(
        {"prices": {"gpt-*": {"input": 1, "output": 2, "currency": "eur"}}}
    )
    pricing = Pricing(config)
    price = pricing.lookup("gpt-4o")
    assert price is not None and (price.input, price.currency) == (1, "EUR")
    assert Pricing(PricingConfig(defaults=False)).lookup("gpt-4o") is None
    # A model's own price wins over every table; its upstream name is tried after its own.
    own = Price(input=9, output=9)
    pricing = Pricing(per_model={"mine": own}, resolve=lambda m: ["deepseek-flash"])
    assert pricing.lookup("mine") is own
    assert pricing.lookup("alias") is shipped_prices()["deepseek-flash"]


def test_budget_currency_and_exchange_rates() -> None:
    config = PricingConfig.model_validate({"currency": "usd", "exchange_rates": {"rub": 0.0125}})
    pricing = Pricing(config)
    giga = pricing.cost("GigaChat-2", {"prompt_tokens": 1000, "completion_tokens": 0})
    assert giga is not None and giga.currency == "RUB"
    assert giga.nanos == to_nanos("0.2")  # 200 RUB a million
    assert giga.budget_nanos == to_nanos("0.0025")
    # Without a rate the spend is recorded but counts against no budget.
    plain = Pricing().cost("GigaChat-2", {"prompt_tokens": 1000})
    assert plain is not None and plain.nanos == to_nanos("0.2") and plain.budget_nanos == 0


def test_a_cached_input_price_of_zero_is_free_and_none_means_input() -> None:
    free = Pricing(
        PricingConfig.model_validate(
            {"prices": {"m": {"input": 1, "output": 1, "cached_input": 0}}}
        )
    )
    cost = free.cost("m", {"prompt_tokens": 10, "precached_prompt_tokens": 90})
    assert cost is not None and cost.nanos == 10 * 1000
    same = Pricing(PricingConfig.model_validate({"prices": {"m": {"input": 1, "output": 1}}}))
    cost = same.cost("m", {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 90}})
    assert cost is not None and cost.nanos == 100 * 1000


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="hours"):
        PricingConfig.model_validate(
            {
                "prices": {
                    "m": {
                        "input": 1,
                        "output": 1,
                        "windows": [{"hours": "25:00-01:00", "input": 1, "output": 1}],
                    }
                }
            }
        )
    with pytest.raises(ValidationError, match="input"):
        Price.model_validate({"input": -1, "output": 1})
    config = Config.model_validate(
        {
            "providers": {"p": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": {"x": {"provider": "p", "price": {"input": 1, "output": 2}}},
        }
    )
    assert config.models["x"].price is not None


def test_the_shipped_table_loads_and_is_dated() -> None:
    prices = shipped_prices()
    assert {"deepseek-flash", "gpt-4o*", "GigaChat-2-Max*"} <= prices.keys()
    assert prices["deepseek-flash"].windows  # peak hours
    assert to_nanos("1") == NANOS
    assert format_amount(0) == "0" and format_amount(1) == "0.000000001"
