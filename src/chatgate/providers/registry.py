"""Provider types by name: built-in ones register exactly as a plug-in would."""

from __future__ import annotations

from collections.abc import Callable

from chatgate.config import ProviderConfig
from chatgate.errors import ConfigError
from chatgate.providers.base import Provider

ProviderFactory = Callable[[str, ProviderConfig], Provider]


class ProviderRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, ProviderFactory] = {}

    def register(self, type_name: str, factory: ProviderFactory) -> None:
        self._factories[type_name] = factory

    def build(self, name: str, cfg: ProviderConfig) -> Provider:
        factory = self._factories.get(cfg.type)
        if factory is None:
            raise ConfigError(f"providers.{name}.type", f"no provider type `{cfg.type}`")
        return factory(name, cfg)


def default_registry() -> ProviderRegistry:
    # Imported here so that a process that never uses a type never imports its libraries.
    def openai(name: str, cfg: ProviderConfig) -> Provider:
        from chatgate.providers.openai import OpenAIProvider

        return OpenAIProvider(name, cfg)

    def gigachat(name: str, cfg: ProviderConfig) -> Provider:
        from chatgate.providers.gigachat import GigaChatProvider

        return GigaChatProvider(name, cfg)

    def llama_cpp(name: str, cfg: ProviderConfig) -> Provider:
        from chatgate.providers.llama_cpp import LlamaCppProvider

        return LlamaCppProvider(name, cfg)

    registry = ProviderRegistry()
    registry.register("openai", openai)
    registry.register("gigachat", gigachat)
    registry.register("llama_cpp", llama_cpp)
    return registry
