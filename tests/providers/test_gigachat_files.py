"""Images to GigaChat: uploaded to its storage first (multipart ``POST /files``), named in the user
message's ``attachments``, once per credentials and content; against the strict fake over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest

from chatgate.errors import InvalidRequestError, UpstreamError
from chatgate.providers.gigachat_files import parse_image
from chatgate.providers.gigachat_wire import image_urls, to_gigachat
from tests.fakes.upstream import FakeUpstream
from tests.files import make
from tests.providers.test_gigachat import fake, gigachat, server

__all__ = ["fake", "server"]

FILES = "/api/v1/files"
CHAT = "/api/v1/chat/completions"
PNG = make.png(4, 4)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def looking(*urls: str, text: str = "What is this?") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return {"messages": [{"role": "user", "content": parts}]}


def uploads(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["path"] == FILES]


def chats(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["path"] == CHAT]


async def test_an_image_is_uploaded_then_attached(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        result = await provider.chat(looking(PNG_URL), "GigaChat-Pro")
    assert result["choices"][0]["finish_reason"] == "stop"
    [up] = uploads(fake)
    assert up["body"]["purpose"] == "general" and up["body"]["mime"] == "image/png"
    assert up["body"]["sha256"] == hashlib.sha256(PNG).hexdigest()  # the bytes, decoded
    assert up["headers"]["authorization"].startswith("Bearer fake-giga-")
    [body] = chats(fake)
    [msg] = body["messages"]
    assert msg["content"] == "What is this?" and len(msg["attachments"]) == 1
    assert msg["attachments"][0] in fake.server.gigachat_files


async def test_the_same_image_goes_up_once(fake: FakeUpstream) -> None:
    """A conversation resends its history at every turn: the image is uploaded the first time."""
    async with gigachat(fake) as provider:
        first = looking(PNG_URL)
        await provider.chat(first, "GigaChat-Pro")
        later = {"messages": [*first["messages"], {"role": "assistant", "content": "A dot."},
                              {"role": "user", "content": "And its colour?"}]}  # fmt: skip
        await provider.chat(later, "GigaChat-Pro")
        await asyncio.gather(*(provider.chat(later, "GigaChat-Pro") for _ in range(3)))
        assert [c.get("attachments") for c in chats(fake)[-1]["messages"]] == [
            chats(fake)[0]["messages"][0]["attachments"],
            None,
            None,
        ]
    assert len(uploads(fake)) == 1


async def test_concurrent_first_requests_share_one_upload(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        await asyncio.gather(*(provider.chat(looking(PNG_URL), "GigaChat-Pro") for _ in range(4)))
    assert len(uploads(fake)) == 1


async def test_several_images_one_per_message_text_last(fake: FakeUpstream) -> None:
    other = make.png(5, 5)
    other_url = "data:image/png;base64," + base64.b64encode(other).decode()
    async with gigachat(fake) as provider:
        await provider.chat(looking(PNG_URL, other_url, text="Compare them"), "GigaChat-Pro")
    messages = chats(fake)[0]["messages"]  # the strict fake refuses two in one message
    assert [m["content"] for m in messages] == ["", "Compare them"]
    assert all(len(m["attachments"]) == 1 and m["role"] == "user" for m in messages)
    assert len(uploads(fake)) == 2


async def test_streamed_answer_with_an_image(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        pieces = [
            c["choices"][0]["delta"].get("content") or ""
            async for batch in provider.stream(looking(PNG_URL), "GigaChat-Pro")
            for c in batch
        ]
    text = "".join(pieces)
    assert text == "tok0 tok1 tok2 tok3 "
    assert chats(fake)[0]["messages"][0]["attachments"]


async def test_upload_after_a_revoked_token_is_retried_with_a_new_one(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        await provider.access_token()
        fake.revoke_gigachat_tokens()
        await provider.chat(looking(PNG_URL), "GigaChat-Pro")
    assert [r["body"] is not None for r in uploads(fake)] == [False, True]  # 401, then sent


@pytest.mark.parametrize("stream", [False, True])
async def test_a_file_gone_from_gigachat_is_uploaded_again(
    fake: FakeUpstream, stream: bool
) -> None:
    async with gigachat(fake) as provider:
        await provider.chat(looking(PNG_URL), "GigaChat-Pro")
        fake.server.gigachat_files.clear()  # deleted from GigaChat's storage behind our back
        if stream:
            async for _ in provider.stream(looking(PNG_URL), "GigaChat-Pro"):
                pass
        else:
            await provider.chat(looking(PNG_URL), "GigaChat-Pro")
    assert len(uploads(fake)) == 2  # refused once (422 unknown file), uploaded, asked again
    assert len(chats(fake)) == 3
    assert chats(fake)[-1]["messages"][0]["attachments"] == list(fake.server.gigachat_files)


async def test_a_refusal_of_a_fresh_upload_is_not_retried(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        with pytest.raises(UpstreamError) as caught:
            body = looking(PNG_URL)
            body["messages"].append({"role": "narrator", "content": "x"})  # refused: 422
            await provider.chat(body, "GigaChat-Pro")
    assert caught.value.upstream_status == 422
    assert len(uploads(fake)) == 1 and len(chats(fake)) == 1


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://example.com/cat.png", "data: URL"),
        ("data:image/gif;base64," + base64.b64encode(b"GIF89a....").decode(), "not image/gif"),
        ("data:image/png;base64,@@@not-base64@@@", "base64"),
        ("data:image/png," + "x" * 10, "base64 data: URL"),
        ("data:image/png;base64," + "A" * (21 * 1024 * 1024), "15 MB"),
    ],
)
async def test_images_gigachat_cannot_take_are_a_clear_400(
    fake: FakeUpstream, url: str, says: str
) -> None:
    async with gigachat(fake) as provider:
        with pytest.raises(InvalidRequestError) as caught:
            await provider.chat(looking(url), "GigaChat-Pro")
    assert caught.value.status == 400 and says in caught.value.message
    assert not fake.requests  # refused before anything went upstream


def test_wire_lists_each_image_once_and_keeps_text_only_messages() -> None:
    body = looking(PNG_URL, PNG_URL)
    body["messages"].insert(0, {"role": "system", "content": "Be brief."})
    assert image_urls(body) == [PNG_URL]
    out = to_gigachat(body, "GigaChat-Pro", stream=False, files={PNG_URL: "f-1"})
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "", "attachments": ["f-1"]},
        {"role": "user", "content": "What is this?", "attachments": ["f-1"]},
    ]


def test_jpg_alias_is_sent_as_jpeg() -> None:
    image = parse_image("data:image/jpg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0").decode())
    assert image.mime == "image/jpeg" and image.data == b"\xff\xd8\xff\xe0"
