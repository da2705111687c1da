"""The chat's side of files: which files a new message carries (the owner's, at most ten,
images only for a model that reads them) and the grounding a generation's prompt gets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from chatgate.chat.context import reply_budget
from chatgate.chat.job import Spec
from chatgate.chat.tokens import TokenCounter
from chatgate.errors import InvalidRequestError
from chatgate.files.grounding import Grounding, ground
from chatgate.files.service import FileService
from chatgate.files.store import Row
from chatgate.files.vision import image_types, sees_images
from chatgate.gateway.router import Router
from chatgate.providers.settings import ProviderConfig

MAX_ATTACHMENTS = 10

GroundFn = Callable[[Spec], Awaitable[Grounding | None]]


def _sees(router: Router, providers: Mapping[str, ProviderConfig], model: str) -> bool:
    dep = router.get(model)
    return dep is not None and sees_images(dep, providers)


async def for_message(
    files: FileService,
    user_id: str,
    ids: Sequence[str] | None,
    inherit_from: str | None,
    models: Sequence[str],
    router: Router,
    providers: Mapping[str, ProviderConfig],
) -> list[str]:
    """The file ids a new user message carries: ``ids`` (None, on an edit: the edited
    message's); 404 for a file that is not the user's, 400 ``model_cannot_see_images`` when
    one of the ``models`` answering (side by side: several) cannot see an image among them."""
    if ids is None:
        if inherit_from is None:
            return []
        found = await files.store.attachments([inherit_from])
        ids = [r["id"] for r in found.get(inherit_from, [])]
    if len(ids) > MAX_ATTACHMENTS:
        raise InvalidRequestError(
            f"A message carries at most {MAX_ATTACHMENTS} files.", param="attachments"
        )
    ids = list(dict.fromkeys(ids))
    rows = await files.store.owned(user_id, ids)
    blind = [m for m in models if not _sees(router, providers, m)]
    if blind and any(r["kind"] == "image" for r in rows):
        model = blind[0]
        raise InvalidRequestError(
            f"The model `{model}` cannot see images: choose a model that can, or send the "
            "message without them.",
            param="attachments",
            code="model_cannot_see_images",
        )
    for model in models:
        dep = router.get(model)
        taken = image_types(dep, providers) if dep is not None else None
        odd = [r for r in rows if r["kind"] == "image" and taken and r["mime"] not in taken]
        if odd:
            raise InvalidRequestError(
                f"The model `{model}` does not take {odd[0]['mime']} images ({odd[0]['name']}): "
                "send it as PNG or JPEG.",
                param="attachments",
                code="unsupported_image_type",
            )
    return ids


def grounder(
    files: FileService,
    tokens: TokenCounter,
    router: Router,
    providers: Mapping[str, ProviderConfig],
    reply_tokens: int,
) -> GroundFn:
    async def for_spec(spec: Spec) -> Grounding | None:
        rows: list[Row] = [spec.tree.by_id[m] for m in spec.branch if m in spec.tree.by_id]
        budget = max(spec.window - reply_budget(spec.window, spec.params, reply_tokens), 1)
        return await ground(
            files,
            rows,
            sees_images=_sees(router, providers, spec.model),
            budget=budget,
            count=lambda text: tokens.count(spec.model, text),
        )

    return for_spec
