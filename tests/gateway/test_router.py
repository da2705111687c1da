"""Model names: bare names (first provider wins), `provider/model` always, aliases, fallbacks,
and where each model came from (configured, listed, fallback, alias)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chatgate.config import ModelConfig
from chatgate.errors import ModelNotFoundError, UpstreamError
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


class Unlisted:
    """A provider whose model list cannot be read."""

    name = "down"

    async def list_models(self) -> list[str]:
        raise UpstreamError("down: HTTP 503", upstream_status=503)


class Mixed(Listed):
    """A provider whose list mixes chat models and embedders (as GigaChat's does)."""

    def model_kind(self, model: str) -> str:
        return "embeddings" if model.startswith("embed") else "chat"


async def test_each_model_says_where_it_came_from() -> None:
    providers: dict[str, Provider] = {
        "a": Listed("a", ["listed-a", "both"]),  # type: ignore[dict-item]
        "down": Unlisted(),  # type: ignore[dict-item]
    }
    configs = {
        "a": ProviderConfig(type="openai", models=["both", "pinned"], discover_models=True),
        "down": ProviderConfig(
            type="openai", discover_models=True, fallback_models=["spare-1", "spare-2"]
        ),
    }
    router = await build_router(
        providers,
        configs,
        {"smart": ModelConfig(provider="a", model="listed-a")},
        {"old-name": "listed-a", "gone": "nowhere"},
    )
    sources = {name: dep.source for name, dep in router.public_models()}
    assert sources == {
        "smart": "configured",
        "both": "configured",  # configured and listed: configured names come first
        "pinned": "configured",
        "listed-a": "listed",
        "spare-1": "fallback",
        "spare-2": "fallback",
        "old-name": "alias of listed-a",
    }
    assert router.resolve("down/spare-1").source == "fallback"
    with pytest.raises(ModelNotFoundError):
        router.resolve("gone")  # an alias of nothing routable is not served


async def test_fallback_names_only_when_listing_fails() -> None:
    providers: dict[str, Provider] = {"a": Listed("a", ["new-1"])}  # type: ignore[dict-item]
    cfg_a = ProviderConfig(type="openai", discover_models=True, fallback_models=["old-1"])
    router = await build_router(providers, {"a": cfg_a}, {})
    assert [name for name, _ in router.public_models()] == ["new-1"]


async def test_failed_listing_is_one_clear_log_line(caplog: pytest.LogCaptureFixture) -> None:
    providers: dict[str, Provider] = {"down": Unlisted()}  # type: ignore[dict-item]
    cfg_down = ProviderConfig(type="openai", discover_models=True, fallback_models=["spare"])
    with caplog.at_level(logging.WARNING, logger="chatgate.gateway.router"):
        await build_router(providers, {"down": cfg_down}, {})
    [record] = caplog.records
    assert record.getMessage() == (
        "provider down: cannot list models (down: HTTP 503); serving its fallback models: spare"
    )


async def test_alias_replaces_the_old_name_and_carries_the_settings() -> None:
    providers: dict[str, Provider] = {
        "a": Listed("a", ["legacy", "current"]),  # type: ignore[dict-item]
    }
    models = {"thinker": ModelConfig(provider="a", model="current", params={"think": True})}
    router = await build_router(
        providers, {"a": cfg()}, models, {"legacy": "current", "legacy-thinker": "thinker"}
    )
    assert router.resolve("legacy").upstream_model == "current"
    assert router.resolve("legacy").source == "alias of current"
    assert router.resolve("a/legacy").upstream_model == "legacy"  # the prefix still reaches it
    aliased = router.resolve("legacy-thinker")
    assert aliased.settings is not None and aliased.settings.params == {"think": True}
    assert aliased.upstream_model == "current"


async def test_listed_embedders_are_embeddings_models() -> None:
    providers: dict[str, Provider] = {"m": Mixed("m", ["chat-1", "embed-1"])}  # type: ignore[dict-item]
    models = {"vectors": ModelConfig(provider="m", model="embed-1")}
    router = await build_router(providers, {"m": cfg()}, models)
    assert router.resolve("chat-1").kind == "chat"
    assert router.resolve("embed-1").kind == "embeddings"
    assert router.resolve("vectors").kind == "embeddings"
    assert router.resolve("m/embed-1").kind == "embeddings"


class Changing(Listed):
    """A provider whose list changes, or cannot be read (``models`` None)."""

    async def list_models(self) -> list[str]:
        if self.models is None:
            raise UpstreamError("c: HTTP 503", upstream_status=503)
        return self.models


async def test_refresh_follows_renames_and_survives_outages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from chatgate.gateway.refresh import ModelRefresher

    provider = Changing("c", None)  # type: ignore[arg-type]
    providers: dict[str, Provider] = {"c": provider}  # type: ignore[dict-item]
    configs = {"c": ProviderConfig(type="openai", discover_models=True, fallback_models=["v1"])}
    aliases = {"old": "v2"}

    async def build(before: object) -> object:
        return await build_router(providers, configs, {}, aliases, before)  # type: ignore[arg-type]

    router = await build_router(providers, configs, {}, aliases)
    refresher = ModelRefresher(router, build, 3600)  # type: ignore[arg-type]
    assert [(n, d.source) for n, d in router.public_models()] == [("v1", "fallback")]

    provider.models = ["v2", "v3"]  # the list can be read now: the fallback goes
    kept = router.resolve("v1")
    with caplog.at_level(logging.INFO, logger="chatgate.gateway.refresh"):
        await refresher.refresh()
    assert [(n, d.source) for n, d in router.public_models()] == [
        ("v2", "listed"),
        ("v3", "listed"),
        ("old", "alias of v2"),
    ]
    assert kept.upstream_model == "v1"  # a request that resolved before keeps its deployment
    assert "models now served: old, v2, v3" in caplog.text
    assert "models no longer served: v1" in caplog.text

    provider.models = None  # a passing outage of the list changes nothing
    await refresher.refresh()
    assert [n for n, _ in router.public_models()] == ["v2", "v3", "old"]
    assert "keeping the 2 it listed before" in caplog.text

    provider.models = ["v3", "v4"]  # v2 retired: its alias goes with it
    await refresher.refresh()
    assert [n for n, _ in router.public_models()] == ["v3", "v4"]
    with pytest.raises(ModelNotFoundError):
        router.resolve("old")


async def test_refresher_runs_every_interval_until_closed() -> None:
    from chatgate.gateway.refresh import ModelRefresher

    provider = Changing("c", ["a"])  # type: ignore[arg-type]
    providers: dict[str, Provider] = {"c": provider}  # type: ignore[dict-item]
    configs = {"c": cfg()}
    router = await build_router(providers, configs, {})

    async def build(before: object) -> object:
        return await build_router(providers, configs, {}, None, before)  # type: ignore[arg-type]

    refresher = ModelRefresher(router, build, 0.05)  # type: ignore[arg-type]
    refresher.start()
    try:
        provider.models = ["b"]
        for _ in range(100):
            if router.get("b") is not None:
                break
            await asyncio.sleep(0.02)
        assert router.get("b") is not None and router.get("a") is None
    finally:
        await refresher.close()
    provider.models = ["c"]
    await asyncio.sleep(0.15)
    assert router.get("c") is None  # closed: no more refreshes


async def test_a_configured_model_its_provider_no_longer_lists_is_flagged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = {
        "chat": ModelConfig(provider="a", model="retired"),
        "fine": ModelConfig(provider="a", model="only-a"),
        "elsewhere": ModelConfig(provider="plain", model="anything"),
    }
    providers: dict[str, Provider] = {
        "a": Listed("a", ["only-a"]),  # type: ignore[dict-item]
        "plain": Listed("plain", []),  # type: ignore[dict-item]
    }
    with caplog.at_level(logging.WARNING, logger="chatgate.gateway.router"):
        router = await build_router(providers, {"a": cfg(), "plain": cfg(False)}, models)
    assert router.resolve("chat").source == "configured, not listed"
    assert router.resolve("fine").source == "configured"
    assert router.resolve("elsewhere").source == "configured"  # nothing listed to compare
    assert caplog.messages == [
        "models.chat: provider a does not list retired (renamed or retired?)"
    ]
