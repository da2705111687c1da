"""Provider configuration every type shares, below both ``config`` and the provider plug-ins.

``chatgate.config`` validates ``providers:`` against the model each type's plug-in names (see
:mod:`chatgate.providers.registry`); this module is the common ground both import, so neither
imports the other at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Section(BaseModel):
    """A config section: unknown fields are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class Timeouts(Section):
    connect: float = Field(10.0, gt=0, description="Seconds to open a connection upstream.")
    read: float = Field(600.0, gt=0, description="Seconds to wait for the next byte upstream.")


class ProviderConfig(Section):
    """What every provider type shares. Each type subclasses it next to its provider with its
    own fields (see :mod:`chatgate.providers`); ``Config.providers`` is validated against the
    subclass that the type's plug-in names, so a misspelt field is still an error."""

    # Provider-specific knowledge the gateway asks for, answered by each type for itself.
    queues_itself: ClassVar[bool] = False
    """The provider bounds its own concurrency and queue, so the gateway puts none in front."""
    embeddings_only: ClassVar[bool] = False
    """The provider's models make embeddings and cannot chat (listed with
    ``capabilities: ["embeddings"]`` so chat UIs leave them out)."""

    type: str = Field(
        description="A registered provider type (entry point group "
        "`chatgate.providers`): openai, gigachat, llama_cpp, or a plug-in's."
    )
    base_url: str | None = None
    api_keys: list[SecretStr] = Field(default_factory=list)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Extra headers sent upstream. Their values are secrets like api_keys: "
        "never logged, and removed from upstream error messages.",
    )
    max_connections: int = Field(256, ge=1, description="Upstream keep-alive pool size.")
    max_concurrency: int | None = Field(None, ge=1)
    max_queue: int = Field(256, ge=0)
    queue_timeout: float = Field(60.0, gt=0)
    models: list[str] = Field(default_factory=list, description="Models served, by upstream name.")
    discover_models: bool = Field(False, description="List the upstream's models at start-up.")
    retry_unsafe: bool = Field(
        False,
        description="Also retry failures after the request reached the upstream (a read "
        "timeout or a broken connection before the first byte, a 5xx without Retry-After): "
        "the upstream may have started — and billed — the work. Off: only failures where it "
        "cannot have (no connection, 429, 503 with Retry-After, a refused key) are retried.",
    )
    fallback_models: list[str] = Field(
        default_factory=list,
        description="Served, by upstream name, only when discover_models is on and listing "
        "fails (the upstream is down at start-up, or has no model list).",
    )

    def header_values(self) -> dict[str, str]:
        return {name: value.get_secret_value() for name, value in self.headers.items()}

    def header_secrets(self) -> list[str]:
        """What to remove from upstream error messages: each header value, and its last word
        (the token of ``Bearer <token>``), when long enough to be a secret."""
        found: list[str] = []
        for value in self.header_values().values():
            value = value.strip()
            if len(value) >= 6:
                found.append(value)
            word = value.rsplit(" ", 1)[-1]
            if word != value and len(word) >= 8:
                found.append(word)
        # Longest first, so a value is removed whole before a part of it would be.
        return sorted(set(found), key=len, reverse=True)

    def pool_keys(self) -> list[str]:
        """The upstream keys the key pool rotates, the preferred one first."""
        return [k.get_secret_value() for k in self.api_keys]

    def context_window(self) -> int | None:
        """The window every model of this provider runs with, when the provider fixes it."""
        return None

    def vocabulary_file(self) -> Path | None:
        """A GGUF file whose vocabulary counts this provider's tokens exactly, if there is one."""
        return None


class ProviderTypes(Protocol):
    """What validating ``providers:`` needs from a registry (see ``providers.registry``)."""

    def config_model(self, type_name: str) -> type[ProviderConfig] | None:
        """The type's config model; None if unknown; ValueError if its plug-in cannot load."""

    def type_names(self) -> list[str]: ...


PROVIDER_TYPES = "provider_types"
"""Validation context key: ``Config.model_validate(data, context={PROVIDER_TYPES: registry})``
checks providers against that registry instead of the installed plug-ins."""
