"""Model names: bare names (first provider wins), `provider/model` always, aliases, fallbacks."""

from __future__ import annotations

import pytest

from chatgate.config import ModelConfig
from chatgate.errors import ModelNotFoundError
from chatgate.gateway.router import build_router
from chatgate.providers.base import Provider
from chatgate.providers.settings import ProviderConfig


class Listed:
    """A provider that lists fixed models (routing never calls it)."""

    def __init__(self, name: str, models: list[str]) -> None:
        self.name = name
        self.models = models

    async def list_models(self) -> list[str]:
        return self.models


def cfg(discover: bool = True) -> ProviderConfig:
    return ProviderConfig(type="openai", base_url="http://127.0.0.1:9/v1", discover_models=discover)


async def make_router(models: dict[str, ModelConfig] | None = None):  # type: ignore[no-untyped-def]
    providers: dict[str, Provider] = {
        "a": Listed("a", ["shared", "only-a"]),  # type: ignore[dict-item]
        "b": Listed("b", ["shared", "only-b"]),  # type: ignore[dict-item]
    }
    return await build_router(providers, {"a": cfg(), "b": cfg()}, models or {})


async def test_bare_name_first_provider_wins_prefix_always_works() -> None:
    router = await make_router()
    assert router.resolve("shared").provider_name == "a"
    assert router.resolve("b/shared").provider_name == "b"
    assert router.resolve("a/shared").provider_name == "a"
    assert router.resolve("only-b").upstream_model == "only-b"
    names = [name for name, _ in router.public_models()]
    assert names == ["shared", "only-a", "b/shared", "only-b"]


async def test_alias_with_settings_does_not_capture_the_prefixed_name() -> None:
    router = await make_router(
        {"smart": ModelConfig(provider="b", model="only-b", system_prompt="Be smart.")}
    )
    assert router.resolve("smart").settings is not None
    assert router.resolve("b/only-b").settings is None


async def test_fallback_chain_skips_unknown_and_duplicates() -> None:
    router = await make_router(
        {"main": ModelConfig(provider="a", model="only-a", fallbacks=["nope", "only-b", "main"])}
    )
    assert [d.name for d in router.candidates("main")] == ["main", "only-b"]


async def test_unknown_model() -> None:
    router = await make_router()
    with pytest.raises(ModelNotFoundError):
        router.resolve("c/shared")
