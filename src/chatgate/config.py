"""Configuration: command-line/env ``Settings`` over an optional YAML file, validated at start.

Precedence, highest first: command-line option, ``CHATGATE_*`` env var, YAML file, defaults.
Providers also come from the environment by discovery (see :mod:`chatgate.discovery`).
Each ``providers.<name>`` is validated against the config model of its ``type``'s plug-in
(see :mod:`chatgate.providers.registry`); :class:`ProviderConfig` holds what all types share.
Every error is a :class:`~chatgate.errors.ConfigError` naming the field as a dotted path.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatgate.errors import ConfigError
from chatgate.files.config import FilesConfig
from chatgate.gateway.pricing import Price, PricingConfig
from chatgate.providers.settings import (
    PROVIDER_TYPES,
    ProviderConfig,
    ProviderTypes,
    Section,
)

ReasoningMode = Literal["strip", "separate", "keep"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./chatgate.db"
LEGACY_SYSTEM_PROMPT = "Ты заботливый ассистент и хочешь помочь пользователю решить его проблему"


@functools.cache
def _installed_types() -> ProviderTypes:
    # Imported late: the registry imports providers.base, which imports this module.
    from chatgate.providers.registry import default_registry

    return default_registry()


def _provider_error(kind: str | PydanticCustomError, value: Any) -> ValidationError:
    line: InitErrorDetails = {"type": kind, "loc": ("type",), "input": value}
    return ValidationError.from_exception_data("ProviderConfig", [line])


def _typed_provider(value: Any, info: ValidationInfo) -> Any:
    """Validate one ``providers.<name>`` mapping against its type's own config model.

    Errors are raised as a ``ValidationError`` so pydantic keeps their field paths under
    ``providers.<name>`` (``providers.giga.scop: Extra inputs are not permitted``)."""
    if isinstance(value, ProviderConfig):
        return value  # built in code (discovery, tests): already its type's model
    if not isinstance(value, dict):
        return value  # the base model reports the wrong shape
    if "type" not in value:
        raise _provider_error("missing", value)
    context = info.context if isinstance(info.context, dict) else {}
    types: ProviderTypes = context.get(PROVIDER_TYPES) or _installed_types()
    type_name = value["type"]
    try:
        model = types.config_model(type_name) if isinstance(type_name, str) else None
    except ValueError as exc:
        raise _provider_error(PydanticCustomError("provider_type", str(exc)), type_name) from None
    if model is None:
        known = ", ".join(sorted(types.type_names())) or "none"
        message = f"unknown provider type `{type_name}`; known types: {known}"
        raise _provider_error(PydanticCustomError("provider_type", message), type_name)
    return model.model_validate(value, context=info.context)


class ModelConfig(Section):
    provider: str
    model: str | None = Field(None, description="Upstream model name; defaults to the public name.")
    context_window: int | None = Field(None, ge=1)
    system_prompt: str | None = None
    fallbacks: list[str] = Field(default_factory=list)
    reasoning: ReasoningMode | None = None
    reasoning_starts_inside: bool = Field(
        False,
        description="The model's answer begins inside <think> (the opening tag is in its prompt "
        "template, as with many DeepSeek-R1 distills).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Request fields sent upstream when the client did not set them, e.g. "
        "{thinking: {type: disabled}} or {reasoning_effort: high} for a DeepSeek model.",
    )
    price: Price | None = Field(None, description="This model's price (see `pricing`).")
    vision: bool | None = Field(
        None,
        description="The model reads images. Default: by name (gpt-4o*, gpt-4.1*, gpt-5*, o3*, "
        "o4*, claude-*, llava*, *vision*).",
    )


CacheScope = Literal["global", "key", "user"]


class CacheConfig(Section):
    enabled: bool = False
    dir: Path = Field(Path("./cache"), description="L2 on disk (survives restarts).")
    ttl: float = Field(86400.0, gt=0, description="Default entry lifetime, seconds.")
    max_ttl: float = Field(
        30 * 86400.0, gt=0, description="The longest lifetime X-Chatgate-Cache-TTL may ask for."
    )
    memory_bytes: int = Field(64 * 1024 * 1024, ge=0, description="L1 in-process bound.")
    disk_bytes: int = Field(10 * 1024**3, ge=0, description="L2 bound; 0 turns L2 off.")
    scope: CacheScope | None = Field(
        None,
        description="Who shares cached answers: `global` (everyone), `key` (each client key; a "
        "web-chat user has their own) or `user` (each signed-in user; an API key has its own). "
        "Default: `key` when keys are required, else `global`.",
    )

    @model_validator(mode="after")
    def _ttl_within_max(self) -> CacheConfig:
        if self.ttl > self.max_ttl:
            raise ValueError(f"ttl ({self.ttl:g}) is longer than max_ttl ({self.max_ttl:g})")
        return self

    def resolved_scope(self, require_keys: bool) -> CacheScope:
        return self.scope or ("key" if require_keys else "global")


class AuthConfig(Section):
    require_keys: bool = Field(False, description="Every /v1 call needs a chatgate client key.")
    admin_key: SecretStr | None = Field(
        None,
        description="Bearer key for /admin/ (an admin's session works too); when set, "
        "single-user mode no longer opens /admin/ without it.",
    )
    key_cache_ttl: float = Field(
        10.0,
        ge=0,
        description="Seconds a looked-up client key is trusted before re-reading it "
        "(a revocation reaches every replica within this).",
    )
    single_user: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The chat API without login, as one implicit user: `auto` when no user "
        "with a password exists, keys are not required and the server is bound to loopback; `on` "
        "always; `off` never.",
    )
    session_days: float = Field(30.0, gt=0, description="Login sessions last this long.")
    session_check_seconds: float = Field(
        10.0,
        gt=0,
        description="How often open streams (SSE, WebSocket) check that their session still "
        "lives, for sessions ended elsewhere (another replica, the CLI); ends made by this "
        "replica close them at once.",
    )
    login_attempts: int = Field(
        5, ge=1, description="Failed sign-ins per account before growing delays (429)."
    )
    login_attempts_per_address: int = Field(
        20, ge=1, description="Failed sign-ins per client address before growing delays."
    )
    login_max_delay: float = Field(
        900.0, gt=0, description="The longest delay a throttled account or address waits, s."
    )
    password_workers: int = Field(
        1, ge=1, description="Password hashes at once (argon2: 64 MiB and ~50 ms of CPU each)."
    )
    password_queue: int = Field(
        32, ge=0, description="Sign-ins waiting for a hash; more are refused (503)."
    )


class RateLimitsConfig(Section):
    rpm: int | None = Field(None, ge=1, description="Global requests per minute.")
    tpm: int | None = Field(None, ge=1, description="Global tokens per minute.")
    replicas: int = Field(
        1, ge=1, description="Replica count: with Redis down, each replica enforces limit/replicas."
    )
    default_max_tokens: int = Field(
        512, ge=1, description="Completion tokens reserved when a request sets no max_tokens."
    )
    max_n: int = Field(
        8, ge=1, description="The most choices (`n`) one request may ask for (400 above)."
    )


class ChatConfig(Section):
    """The chat application (``/api/``): generations, context building, titles."""

    default_model: str | None = Field(None, description="Model of new conversations.")
    summarize: bool = Field(True, description="Summarise turns dropped from the context.")
    model_titles: bool = Field(True, description="Title conversations with a short model call.")
    reply_tokens: int = Field(1024, ge=16, description="Reply budget when max_tokens is unset.")
    default_context_window: int = Field(8192, ge=256, description="Window of unknown models.")
    save_interval: float = Field(1.0, gt=0, description="Seconds between partial-answer saves.")
    job_retention: float = Field(
        300.0, ge=0, description="Seconds a finished generation's event log stays in memory."
    )
    max_generations_per_user: int = Field(
        8, ge=1, description="Answers one user may have running at once (429 past it)."
    )


class DatabaseConfig(Section):
    url: str = DEFAULT_DATABASE_URL


class RedisConfig(Section):
    url: str | None = None


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    drain_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM: how long running requests may finish."
    )
    allowed_hosts: list[str] | None = Field(
        None,
        description="Host names this server answers for (others get 421): `name`, "
        "`.example.com` (the domain and its subdomains) or `*` (any). Default: bound to "
        "loopback, the loopback names and addresses plus `host`; else any.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins (`https://chat.example.com`) trusted besides the "
        "server's own, e.g. a web UI served from another name.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (`10.0.0.0/8`) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Host headers are believed.",
    )

    metrics_token: SecretStr | None = Field(
        None, description="When set, GET /metrics needs `Authorization: Bearer <token>`."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"`{item}` is not an IP address or network") from None
        return value


class LegacyConfig(Section):
    """The seed endpoints ``/chatgpt/`` and ``/gigachat/``."""

    system_prompt: str = LEGACY_SYSTEM_PROMPT


class AnthropicConfig(Section):
    """The Anthropic Messages door (``/v1/messages``)."""

    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Model names clients insist on (glob patterns, first match wins) mapped to "
        "chatgate models, e.g. {'claude-*': 'deepseek-v4-flash'}; a name chatgate knows wins over "
        "any pattern, and key allow-lists apply to the model it maps to.",
    )


class ResponsesConfig(Section):
    """The Responses API's stored responses (``store: true``, ``previous_response_id``)."""

    retention_days: float = Field(
        30.0, gt=0, le=36500, description="Stored responses are deleted this long after."
    )
    sweep_interval: float = Field(
        3600.0, gt=0, description="Seconds between deletions of expired stored responses."
    )
    flush_interval: float = Field(
        0.1, ge=0, le=10, description="Seconds stored responses gather before one write."
    )


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[
        str, Annotated[SerializeAsAny[ProviderConfig], BeforeValidator(_typed_provider)]
    ] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Old model names mapped to the names that serve them now (e.g. "
        "{deepseek-chat: deepseek-v4-flash}): the old name routes to the new one's deployment "
        "and settings, whether the new one is configured or listed by a provider.",
    )
    models_refresh: float = Field(
        3600.0,
        ge=0,
        description="Seconds between readings of the providers' model lists (those with "
        "discover_models), so renamed and new models are served without a restart; 0: only "
        "at start-up.",
    )
    cache: CacheConfig = Field(default_factory=CacheConfig)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    reasoning: ReasoningMode = "separate"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    legacy: LegacyConfig = Field(default_factory=LegacyConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    anthropic: AnthropicConfig = Field(default_factory=AnthropicConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    files: FilesConfig = Field(default_factory=FilesConfig)
    discover_env: bool = Field(True, description="Add providers found in the environment.")
    local_model: bool = Field(
        True,
        description="Serve the bundled local models: chat as `local`, embeddings as `local-embed`.",
    )

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        for name, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(f"models.{name}.provider: unknown provider `{model.provider}`")
        for old, new in self.aliases.items():
            if old in self.models:
                raise ValueError(f"aliases.{old}: also a model under `models`; keep one of them")
            if old == new:
                raise ValueError(f"aliases.{old}: an alias of itself")
        return self


class Settings(BaseSettings):
    """Options from the command line and ``CHATGATE_*``; ``None`` means "not given"."""

    model_config = SettingsConfigDict(env_prefix="CHATGATE_", extra="ignore")

    config: Path | None = None
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    enable_cache: bool | None = None
    cache_dir: Path | None = None
    reasoning: ReasoningMode | None = None
    database_url: str | None = None
    redis_url: str | None = None
    require_keys: bool | None = None
    admin_key: SecretStr | None = None
    metrics_token: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] | None = None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, env: dict[str, str], path: str) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of the YAML tree."""
    if isinstance(node, dict):
        return {k: _expand_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            value = env.get(m.group(1))
            if value is None:
                if m.group(2) is not None:
                    return m.group(2)
                raise ConfigError(path, f"environment variable {m.group(1)} is not set")
            return value

        return _ENV_REF.sub(sub, node)
    return node


def _error_field(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts)


def validation_error_to_config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    err = exc.errors()[0]
    field = _error_field(tuple(err["loc"]))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if msg.startswith(("models.", "aliases.")) and ": " in msg:  # names its own field
        field, msg = msg.split(": ", 1)
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    return ConfigError(field, msg)


def read_yaml(path: Path, env: dict[str, str]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("config", f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"{path} must hold a mapping at the top level")
    expanded: dict[str, Any] = _expand_env(data, env, "")
    return expanded


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "settings"
        raise ConfigError(name, str(err["msg"])) from None


def load_config(
    settings: Settings, env: dict[str, str] | None = None, types: ProviderTypes | None = None
) -> Config:
    """Build the validated :class:`Config` from the YAML file and the settings over it.

    ``types``: the provider registry to check ``providers:`` against (default: the plug-ins
    installed, see :func:`chatgate.providers.registry.default_registry`)."""
    env = dict(os.environ) if env is None else env
    data = read_yaml(settings.config, env) if settings.config else {}
    try:
        context = {PROVIDER_TYPES: types} if types is not None else None
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error_to_config_error(exc) from None
    return apply_settings(config, settings)


def apply_settings(config: Config, s: Settings) -> Config:
    server = config.server.model_copy(
        update={
            k: v
            for k, v in {
                "host": s.host,
                "port": s.port,
                "workers": s.workers,
                "log_level": s.log_level,
                "metrics_token": s.metrics_token,
            }.items()
            if v is not None
        }
    )
    cache = config.cache.model_copy(
        update={
            k: v
            for k, v in {"enabled": s.enable_cache, "dir": s.cache_dir}.items()
            if v is not None
        }
    )
    auth = config.auth.model_copy(
        update={
            k: v
            for k, v in {"require_keys": s.require_keys, "admin_key": s.admin_key}.items()
            if v is not None
        }
    )
    update: dict[str, Any] = {"server": server, "cache": cache, "auth": auth}
    if s.reasoning is not None:
        update["reasoning"] = s.reasoning
    if s.database_url is not None:
        update["database"] = DatabaseConfig(url=s.database_url)
    if s.redis_url is not None:
        update["redis"] = RedisConfig(url=s.redis_url)
    return config.model_copy(update=update)
