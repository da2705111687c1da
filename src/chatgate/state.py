"""AppState: everything a running gateway holds, built once by ``build_state`` and passed in.

Built in dependency order — database (migrated), providers, router, cache tiers, pools and queues,
rate limiter, auth, usage — and closed in reverse by ``close_state``, which also writes the last
usage batch and waits for cache writes, so a graceful stop loses nothing.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from chatgate.chat.accounts import Accounts, SingleUserMode, is_loopback
from chatgate.chat.passwords import Hashing
from chatgate.chat.service import ChatService
from chatgate.chat.throttle import LoginThrottle
from chatgate.config import Config
from chatgate.drain import Drain
from chatgate.errors import ConfigError, ServiceUnavailableError
from chatgate.gateway.auth import Authenticator
from chatgate.gateway.cache import DiskStore, MemoryStore, Store, TieredCache
from chatgate.gateway.caching import ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.keypool import KeyPool
from chatgate.gateway.path import RequestPath
from chatgate.gateway.pipeline import Pipeline
from chatgate.gateway.pricing import Pricing
from chatgate.gateway.queue import UpstreamQueue
from chatgate.gateway.ratelimit import Backend, Limit, LocalBackend, RateLimiter
from chatgate.gateway.refresh import ModelRefresher
from chatgate.gateway.router import Router, build_router
from chatgate.gateway.usage import UsageRecorder
from chatgate.observability.metrics import Metrics
from chatgate.providers.base import Provider
from chatgate.providers.registry import ProviderRegistry, default_registry
from chatgate.storage import (
    Database,
    KeyRepository,
    ResponseRepository,
    UsageRepository,
    upgrade,
)

log = logging.getLogger("chatgate")


@dataclass
class AppState:
    config: Config
    providers: dict[str, Provider]
    router: Router
    path: RequestPath
    pipeline: Pipeline
    db: Database
    auth: Authenticator
    limiter: RateLimiter
    usage: UsageRecorder
    pools: dict[str, KeyPool]
    queues: dict[str, UpstreamQueue]
    tiers: TieredCache | None
    _stack: AsyncExitStack
    chat: ChatService | None = None  # the chat application (/api/)
    responses: ResponseRepository | None = None  # stored Responses API responses


@dataclass
class Runtime:
    """What the doors reach through ``app.state.runtime``: the state while serving, and the
    metrics, which outlive it (they count from the first request to the last)."""

    metrics: Metrics
    state: AppState | None = None
    stopping: bool = False
    drain: Drain = field(default_factory=Drain)  # the graceful stop's deadline, for streams

    def require(self) -> AppState:
        """The state, or 503 while starting up or shutting down."""
        if self.state is None or self.stopping:
            raise ServiceUnavailableError("chatgate is starting up or shutting down", retry_after=1)
        return self.state


def single_user_mode(config: Config) -> SingleUserMode:
    """``auto`` is off when keys are required: every door then needs an identity, and the web
    chat's is a signed-in user, never the implicit one."""
    mode = config.auth.single_user
    return "off" if mode == "auto" and config.auth.require_keys else mode


async def single_user_notice(config: Config, accounts: Accounts) -> tuple[int, str]:
    """The start-up line saying whether requests can act as the implicit admin, and why: a
    warning when they can, info when they cannot."""
    auth, host = config.auth, config.server.host
    if auth.single_user == "on":
        return logging.WARNING, (
            "single-user mode: ON for every request (auth.single_user: on): anyone who reaches "
            "this server acts as the admin `local` without signing in"
        )
    if auth.single_user == "off":
        return logging.INFO, "single-user mode: off (auth.single_user: off); users sign in"
    if auth.require_keys:
        return logging.INFO, "single-user mode: off (auth.require_keys is on); users sign in"
    if not is_loopback(host):
        return logging.INFO, f"single-user mode: off (bound to {host}, not loopback); users sign in"
    if await accounts.passwords_exist():
        return logging.INFO, "single-user mode: off (a user with a password exists); users sign in"
    via = (
        "or through a trusted proxy (server.trusted_proxies) for a loopback client"
        if config.server.trusted_proxies
        else "not through a proxy: a request with forwarding headers is not direct"
    )
    return logging.WARNING, (
        f"single-user mode: on for direct requests from this machine (auth.single_user: auto, "
        f"bound to {host}, no user has a password yet): a loopback peer, {via}, acts as the "
        "admin `local` without signing in. `chatgate users create NAME --admin` ends it."
    )


def build_pools(config: Config) -> dict[str, KeyPool]:
    return {name: KeyPool(name, cfg.pool_keys()) for name, cfg in config.providers.items()}


def build_queues(config: Config) -> dict[str, UpstreamQueue]:
    """A queue per provider with ``max_concurrency``, unless it queues itself (llama_cpp)."""
    return {
        name: UpstreamQueue(name, cfg.max_concurrency, cfg.max_queue, cfg.queue_timeout)
        for name, cfg in config.providers.items()
        if cfg.max_concurrency is not None and not cfg.queues_itself
    }


async def build_tiers(config: Config) -> TieredCache | None:
    """L1 memory, L2 disk, shared Redis — each when configured — or None with the cache off."""
    cache = config.cache
    if not cache.enabled:
        return None
    stores: list[Store] = []
    if cache.memory_bytes:
        stores.append(MemoryStore(cache.memory_bytes))
    if cache.disk_bytes:
        disk = DiskStore(cache.dir, cache.disk_bytes)
        try:
            await disk.start()
        except OSError as exc:
            raise ConfigError(
                "cache.dir", f"cannot use {cache.dir}: {exc.strerror or exc}"
            ) from None
        stores.append(disk)
    if config.redis.url:
        from chatgate.gateway.cache.redis import RedisStore

        stores.append(RedisStore(config.redis.url))
    return TieredCache(stores)


def build_limiter(config: Config) -> RateLimiter:
    backend: Backend
    if config.redis.url:
        from chatgate.gateway.ratelimit import RedisBackend

        backend = RedisBackend(config.redis.url, config.rate_limits.replicas)
    else:
        backend = LocalBackend()
    return RateLimiter(backend, Limit(rpm=config.rate_limits.rpm, tpm=config.rate_limits.tpm))


def build_pricing(config: Config, router: Router) -> Pricing:
    """Prices by public model name: its ``price:`` setting, else the price tables by that name,
    then by its deployment's upstream name (bare and ``provider/``-qualified)."""

    def upstream_names(model: str) -> list[str]:
        dep = router.get(model)
        if dep is None:
            return [model.rpartition("/")[2]] if "/" in model else []
        return [dep.upstream_model, dep.qualified_name]

    per_model = {name: m.price for name, m in config.models.items() if m.price is not None}
    return Pricing(config.pricing, per_model, upstream_names)


async def open_database(url: str) -> Database:
    """Connect and bring the schema up to date (safe with several processes starting at once)."""
    try:
        await upgrade(url)
    except (OSError, ValueError) as exc:
        raise ConfigError("database.url", f"cannot open the database: {exc}") from None
    db = Database(url)
    await db.connect()
    return db


async def build_state(
    config: Config, registry: ProviderRegistry | None = None, metrics: Metrics | None = None
) -> AppState:
    registry = registry or default_registry()
    metrics = metrics or Metrics()
    async with AsyncExitStack() as stack:
        db = await open_database(config.database.url)
        stack.push_async_callback(db.close)
        providers = {name: registry.build(name, cfg) for name, cfg in config.providers.items()}
        for provider in providers.values():
            await provider.start()
            stack.push_async_callback(provider.close)
        router = await build_router(providers, config.providers, config.models, config.aliases)
        refresher = ModelRefresher(
            router,
            lambda before: build_router(
                providers, config.providers, config.models, config.aliases, before
            ),
            config.models_refresh if any_discovery(config) else 0,
        )
        refresher.start()
        stack.push_async_callback(refresher.close)
        tiers = await build_tiers(config)
        if tiers is not None:
            stack.push_async_callback(tiers.close)
        cache = (
            ResponseCache(tiers, config.cache.ttl, config.cache.max_ttl)
            if tiers is not None
            else None
        )
        if cache is not None:
            stack.push_async_callback(cache.close)
        pools, queues = build_pools(config), build_queues(config)
        pipeline = Pipeline(
            router,
            UpstreamCaller(
                pools,
                queues,
                on_error=metrics.upstream_error,
                retry_unsafe=[n for n, cfg in config.providers.items() if cfg.retry_unsafe],
            ),
            reasoning=config.reasoning,
            cache=cache,
        )
        limiter = build_limiter(config)
        stack.push_async_callback(limiter.close)
        auth_config = config.auth
        accounts = Accounts(
            db,
            single_user_mode(config),
            is_loopback(config.server.host),
            auth_config.session_days,
            Hashing(auth_config.password_workers, auth_config.password_queue),
            LoginThrottle(
                auth_config.login_attempts,
                auth_config.login_attempts_per_address,
                max_delay=auth_config.login_max_delay,
            ),
        )
        stack.callback(accounts.hashing.close)
        auth = Authenticator(
            KeyRepository(db),
            config.auth.require_keys,
            config.auth.key_cache_ttl,
            accounts.get,
            currency=config.pricing.currency,
        )
        usage = UsageRecorder(UsageRepository(db), on_written=auth.written)
        usage.start()
        stack.push_async_callback(usage.close)  # closed first: the last batch is written
        path = RequestPath(
            auth,
            limiter,
            pipeline,
            usage,
            metrics,
            config.rate_limits.default_max_tokens,
            config.cache.resolved_scope(config.auth.require_keys),
            config.rate_limits.max_n,
            build_pricing(config, router),
        )
        settings = config.responses
        responses = ResponseRepository(
            db, settings.retention_days * 86400, settings.sweep_interval, settings.flush_interval
        )
        responses.start()
        stack.push_async_callback(responses.close)
        chat = ChatService(config, db, accounts, path)
        await chat.start()
        stack.push_async_callback(chat.close)  # before usage: running answers are saved first
        return AppState(
            config,
            providers,
            router,
            path,
            pipeline,
            db,
            auth,
            limiter,
            usage,
            pools,
            queues,
            tiers,
            stack.pop_all(),
            chat=chat,
            responses=responses,
        )
    raise AssertionError("unreachable")


def any_discovery(config: Config) -> bool:
    """Whether some provider's models come from its own list (so refreshing it can help)."""
    return any(cfg.discover_models for cfg in config.providers.values())


async def close_state(state: AppState) -> None:
    await state._stack.aclose()
