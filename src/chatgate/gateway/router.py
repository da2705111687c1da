"""Router: public model names → deployments (provider + upstream model), with fallbacks.

A model has a bare public name (first provider to claim it wins) and a ``provider/model`` name,
which always works, so two providers listing the same model can both be reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from chatgate.config import ModelConfig
from chatgate.errors import GatewayError, ModelNotFoundError
from chatgate.providers.base import Provider
from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    provider_name: str
    provider: Provider
    upstream_model: str
    settings: ModelConfig | None = None
    fallbacks: tuple[str, ...] = field(default=())

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

    def add(self, dep: Deployment) -> None:
        # `provider/model` is always that provider's plain model: no alias's settings on it
        qualified = dep.qualified_name
        if qualified not in self._by_name:
            plain = Deployment(qualified, dep.provider_name, dep.provider, dep.upstream_model)
            self._by_name[qualified] = plain
        if dep.name not in self._by_name:
            self._by_name[dep.name] = dep
            self._public[dep.name] = dep
        elif qualified not in self._public and dep.name != qualified:
            self._public[qualified] = self._by_name[qualified]

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
) -> Router:
    """Configured models first, then models the providers list (static or discovered)."""
    router = Router()
    for public, mcfg in models.items():
        router.add(
            Deployment(
                name=public,
                provider_name=mcfg.provider,
                provider=providers[mcfg.provider],
                upstream_model=mcfg.model or public,
                settings=mcfg,
                fallbacks=tuple(mcfg.fallbacks),
            )
        )

    async def listed(name: str, cfg: ProviderConfig) -> list[str]:
        names = list(cfg.models)
        if cfg.discover_models:
            try:
                found = await asyncio.wait_for(providers[name].list_models(), DISCOVERY_TIMEOUT)
            except (GatewayError, TimeoutError) as exc:
                log.warning("provider %s: cannot list models: %s", name, exc)
                found = []
            names += [m for m in found if m not in names]
        return names

    names = list(provider_configs)
    lists = await asyncio.gather(*(listed(n, provider_configs[n]) for n in names))
    for pname, upstream_models in zip(names, lists, strict=True):
        for model in upstream_models:
            router.add(
                Deployment(
                    name=model,
                    provider_name=pname,
                    provider=providers[pname],
                    upstream_model=model,
                )
            )
    return router
