"""Router: public model names → deployments (provider + upstream model), with fallbacks.

A model has a bare public name (first provider to claim it wins) and a ``provider/model`` name,
which always works, so two providers listing the same model can both be reached. Each
deployment says where it came from (``source``): ``configured`` (the ``models`` section or a
provider's ``models`` list; ``configured, not listed`` when the provider's own list was read
and lacks it: renamed or retired upstream), ``listed`` (the provider's own model list),
``fallback`` (a provider's ``fallback_models``, served because listing failed) or
``alias of X`` (``aliases``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from chatgate.config import ModelConfig
from chatgate.errors import GatewayError, ModelNotFoundError
from chatgate.providers.base import ModelKinds, Provider
from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10.0
CONFIGURED, LISTED, FALLBACK = "configured", "listed", "fallback"


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    provider_name: str
    provider: Provider
    upstream_model: str
    settings: ModelConfig | None = None
    fallbacks: tuple[str, ...] = field(default=())
    source: str = CONFIGURED  # see the module docstring
    kind: Literal["chat", "embeddings"] = "chat"

    @property
    def qualified_name(self) -> str:
        return f"{self.provider_name}/{self.upstream_model}"


def known_context_window(dep: Deployment, providers: Mapping[str, ProviderConfig]) -> int | None:
    """The deployment's context window when it is known: configured for the model, or fixed by
    its provider (the ``n_ctx`` a ``llama_cpp`` provider runs with); None rather than a guess."""
    if dep.settings is not None and dep.settings.context_window:
        return dep.settings.context_window
    provider = providers.get(dep.provider_name)
    return provider.context_window() if provider is not None else None


class Router:
    def __init__(self) -> None:
        self._by_name: dict[str, Deployment] = {}
        self._public: dict[str, Deployment] = {}  # one entry per listed model, in order
        # per provider: (upstream model, source) as last found, for the next refresh
        self.found: dict[str, list[tuple[str, str]]] = {}

    def replace(self, other: Router) -> None:
        """Route as ``other`` does from now on (a refreshed model list); requests already on
        their way keep the deployments they resolved."""
        self._by_name, self._public, self.found = other._by_name, other._public, other.found

    def add(self, dep: Deployment) -> None:
        # `provider/model` is always that provider's plain model: no alias's settings on it
        qualified = dep.qualified_name
        if qualified not in self._by_name:
            plain = Deployment(
                qualified,
                dep.provider_name,
                dep.provider,
                dep.upstream_model,
                source=dep.source,
                kind=dep.kind,
            )
            self._by_name[qualified] = plain
        if dep.name not in self._by_name:
            self._by_name[dep.name] = dep
            self._public[dep.name] = dep
        elif qualified not in self._public and dep.name != qualified:
            self._public[qualified] = self._by_name[qualified]

    def alias(self, old: str, new: str) -> bool:
        """Route ``old`` to ``new``'s deployment (replacing what ``old`` was); False when
        ``new`` is not routable."""
        target = self._by_name.get(new)
        if target is None:
            return False
        dep = replace(target, name=old, source=f"alias of {new}")
        self._by_name[old] = dep
        self._public[old] = dep
        return True

    def resolve(self, name: str) -> Deployment:
        dep = self._by_name.get(name)
        if dep is None:
            raise ModelNotFoundError(name)
        return dep

    def get(self, name: str) -> Deployment | None:
        return self._by_name.get(name)

    def candidates(self, name: str) -> list[Deployment]:
        """The deployment for ``name`` then its fallbacks, each once, unknown ones skipped."""
        first = self.resolve(name)
        chain = [first]
        for fb in first.fallbacks:
            dep = self._by_name.get(fb)
            if dep is not None and dep not in chain:
                chain.append(dep)
        return chain

    def public_models(self) -> list[tuple[str, Deployment]]:
        return list(self._public.items())


async def build_router(
    providers: Mapping[str, Provider],
    provider_configs: Mapping[str, ProviderConfig],
    models: Mapping[str, ModelConfig],
    aliases: Mapping[str, str] | None = None,
    previous: Router | None = None,
) -> Router:
    """Configured models first, then models the providers list (static or discovered), then
    the aliases over them. ``previous``: the router this one refreshes (a provider whose list
    cannot be read now keeps the models it listed then)."""
    router = Router()
    names = list(provider_configs)
    before = previous.found if previous is not None else {}
    lists = await asyncio.gather(
        *(_provider_models(n, providers[n], provider_configs[n], before.get(n)) for n in names)
    )
    router.found = dict(zip(names, lists, strict=True))
    for public, mcfg in models.items():
        upstream = mcfg.model or public
        router.add(
            Deployment(
                name=public,
                provider_name=mcfg.provider,
                provider=providers[mcfg.provider],
                upstream_model=upstream,
                settings=mcfg,
                fallbacks=tuple(mcfg.fallbacks),
                source=_configured_source(public, mcfg.provider, upstream, router.found),
                kind=_kind(providers[mcfg.provider], upstream),
            )
        )
    for pname, upstream_models in zip(names, lists, strict=True):
        provider = providers[pname]
        for model, source in upstream_models:
            router.add(
                Deployment(
                    name=model,
                    provider_name=pname,
                    provider=provider,
                    upstream_model=model,
                    source=source,
                    kind=_kind(provider, model),
                )
            )
    for old, new in (aliases or {}).items():
        if not router.alias(old, new):
            log.warning("alias %s: model %s is not routable; %s is not served", old, new, old)
    return router


def _kind(provider: Provider, model: str) -> Literal["chat", "embeddings"]:
    return provider.model_kind(model) if isinstance(provider, ModelKinds) else "chat"


def _configured_source(
    public: str, provider: str, upstream: str, found: Mapping[str, list[tuple[str, str]]]
) -> str:
    """``configured``, or ``configured, not listed`` (with a warning) when the provider's own
    list was read and no longer holds the model: it was renamed or retired upstream."""
    names = found.get(provider, [])
    if any(src == LISTED for _, src in names) and all(m != upstream for m, _ in names):
        log.warning(
            "models.%s: provider %s does not list %s (renamed or retired?)",
            public,
            provider,
            upstream,
        )
        return CONFIGURED + ", not listed"
    return CONFIGURED


async def _provider_models(
    name: str,
    provider: Provider,
    cfg: ProviderConfig,
    before: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(upstream model, source) for every model ``provider`` serves: its configured names,
    then the names it lists, or when listing fails the names it listed ``before``, else its
    fallback names."""
    found = [(m, CONFIGURED) for m in cfg.models]
    if not cfg.discover_models:
        return found
    try:
        listed = await asyncio.wait_for(provider.list_models(), DISCOVERY_TIMEOUT)
        source = LISTED
    except (GatewayError, TimeoutError) as exc:
        reason = str(exc) if not isinstance(exc, TimeoutError) else "timed out"
        listed, source = [m for m, src in before or () if src == LISTED], LISTED
        if listed:
            then = f"; keeping the {len(listed)} it listed before"
        else:
            listed, source = list(cfg.fallback_models), FALLBACK
            then = f"; serving its fallback models: {', '.join(listed)}" if listed else ""
        log.warning("provider %s: cannot list models (%s)%s", name, reason, then)
    seen = set(cfg.models)
    for model in listed:
        if model not in seen:
            seen.add(model)
            found.append((model, source))
    return found
