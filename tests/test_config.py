"""Configuration: YAML + env + options, and errors that name the field (exit 2 from the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatgate.config import Settings, load_config, load_settings
from chatgate.errors import ConfigError

GOOD = """
providers:
  deepseek:
    type: openai
    base_url: https://api.deepseek.com
    api_keys: ["${DS_KEY}"]
    timeouts: {connect: 3, read: 120}
models:
  chat:
    provider: deepseek
    model: deepseek-chat
    fallbacks: [local]
reasoning: strip
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chatgate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_with_env_reference(tmp_path: Path) -> None:
    cfg = load_config(Settings(config=write(tmp_path, GOOD)), {"DS_KEY": "sk-secret"})
    provider = cfg.providers["deepseek"]
    assert provider.api_keys[0].get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(provider)  # SecretStr keeps it out of reprs and logs
    assert provider.timeouts.read == 120
    assert cfg.models["chat"].fallbacks == ["local"]
    assert cfg.reasoning == "strip"


def test_options_override_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 9000, host: 0.0.0.0}\n")
    cfg = load_config(load_settings({"config": path, "port": 9100}), {})
    assert (cfg.server.host, cfg.server.port) == ("0.0.0.0", 9100)


def test_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGATE_PORT", "8123")
    monkeypatch.setenv("CHATGATE_WORKERS", "3")
    cfg = load_config(load_settings(), {})
    assert (cfg.server.port, cfg.server.workers) == (8123, 3)
    cfg = load_config(load_settings({"port": 8200}), {})
    assert cfg.server.port == 8200  # the option wins over the env


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("providers:\n  x: {type: banana, base_url: http://a}\n", "providers.x.type"),
        ("providers:\n  x: {type: openai}\n", "providers.x"),
        (
            "providers:\n  x: {type: openai, base_url: http://a, timeouts: {read: -1}}\n",
            "providers.x.timeouts.read",
        ),
        ("models:\n  m: {provider: nowhere}\n", "models.m.provider"),
        ("aliases:\n  old: old\n", "aliases.old"),
        (
            "providers:\n  x: {type: openai, base_url: http://a}\n"
            "models:\n  old: {provider: x}\naliases:\n  old: new\n",
            "aliases.old",
        ),
        ("aliases:\n  old: [new]\n", "aliases.old"),
        ("models:\n  m: {provider: x, params: 3}\n", "models.m.params"),
        ("server: {port: 99999}\n", "server.port"),
        ("reasoning: sometimes\n", "reasoning"),
        ("surprise: 1\n", "surprise"),
        (
            "providers:\n  x: {type: openai, base_url: http://a, api_keys: ['${NOPE}']}\n",
            "providers.x.api_keys[0]",
        ),
        ("providers: [1, 2\n", "config"),
        ("- just\n- a list\n", "config"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Settings(config=write(tmp_path, text)), {})
    assert info.value.field == field


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Settings(config=tmp_path / "nope.yaml"), {})
    assert info.value.field == "config"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: not-a-port}\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "server.port" in lines[0]


def test_cli_bad_option_value_exit_2() -> None:
    result = run_cli("serve", "--port", "eighty")
    assert result.returncode == 2
    assert "--port" in result.stderr


@pytest.mark.parametrize("command", [[], ["serve"], ["models"]])
def test_cli_help(command: list[str]) -> None:
    result = run_cli(*command, "-h")
    assert result.returncode == 0
    assert "usage: chatgate" in result.stdout
