"""Files in the chat API, on SQLite and PostgreSQL: upload, list, read, delete, quota, limits
counted while reading (memory bounded), another user's files, images reaching the model as
``image_url`` parts, a PDF's page-3 fact reaching the prompt and coming back as a citation,
export and import with the files, and deleting a conversation with its files."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from robustness.rawhttp import request

from tests.chat.conftest import (
    ChatServer,
    alice,
    chat_server,
    new_conversation,
    pg_server,
    send,
    wait_status,
)
from tests.fakes.upstream import FakeUpstream
from tests.files import make
from tests.memory import PeakRss

__all__ = ["alice", "chat_server", "pg_server"]

LIMIT = 256 * 1024
IMAGE_LIMIT = 64 * 1024
QUOTA = 600 * 1024
FILES_DIR = Path(tempfile.mkdtemp(prefix="chatgate-files-"))
GATEWAY_CONFIG: dict[str, Any] = {
    "files": {
        "max_bytes": LIMIT,
        "max_image_bytes": IMAGE_LIMIT,
        "quota_bytes": QUOTA,
        "dir": str(FILES_DIR),
        "context_tokens": 400,  # small: the 6-page PDF below does not fit whole
        "top_k": 3,
    },
    "models": {
        "gpt-4o-mini": {"provider": "fake", "model": "fake-model"},
        "GigaChat-2-Max": {"provider": "giga", "model": "GigaChat"},  # Lite behind the name
        "GigaChat-2-Pro": {"provider": "giga", "model": "GigaChat-2-Pro"},
    },
}
PDF_PAGES = [
    "Annual report of the Example Pump Company.\nThis page lists the board members.",
    "Sales grew in every region, led by the northern warehouses.",
    "Safety notice: the emergency valve code is ZEBRA-4417.\nIt opens the spillway.",
    "Weather was mild during the year; no storms reached the plant.",
    "The canteen introduced a new menu with soups and salads.",
    "Outlook: the company plans to hire twelve engineers next spring.",
]
# Enough text that the document does not go in whole (context_tokens: 400).
PDF_PAGES = [
    p + "\nThe staff wrote many ordinary lines of minutes on this page." * 6 for p in PDF_PAGES
]


def upload(
    client: httpx.Client, name: str, data: bytes, mime: str, status: int = 201
) -> dict[str, Any]:
    r = client.post("/api/files", params={"name": name}, content=data,
                    headers={"Content-Type": mime})  # fmt: skip
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_ready(client: httpx.Client, fid: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = client.get(f"/api/files/{fid}").json()
        if found["status"] != "indexing":
            return found
        assert time.monotonic() < deadline, f"{fid} still indexing"
        time.sleep(0.05)


def last_request(fake: FakeUpstream) -> dict[str, Any]:
    chats = [r for r in fake.requests if r["path"].endswith("/chat/completions")]
    body: dict[str, Any] = chats[-1]["body"]
    return body


@pytest.fixture
def bob(chat_server: ChatServer) -> Iterator[httpx.Client]:
    with chat_server.signed_in(asyncio.run(chat_server.user())) as client:
        yield client


# -- files -----------------------------------------------------------------------------------------
def test_upload_list_read_delete(alice: httpx.Client) -> None:
    image = make.png()
    made = upload(alice, "red dot.png", image, "image/png")
    assert made["id"].startswith("file_") and len(made["id"]) >= 29
    assert made | {"id": "x", "created_at": "t"} == {
        "id": "x", "name": "red dot.png", "mime": "image/png", "size": len(image),
        "kind": "image", "status": "ready", "pages": None, "error": None, "created_at": "t",
    }  # fmt: skip
    r = alice.get(f"/api/files/{made['id']}/content")
    assert r.status_code == 200 and r.content == image
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("inline")

    text = upload(alice, "заметки.md", "# Заметки\nКупить хлеб.".encode(), "text/markdown")
    r = alice.get(f"/api/files/{text['id']}/content")
    assert r.headers["content-disposition"].startswith("attachment")
    assert "filename*=UTF-8''%D0%B7" in r.headers["content-disposition"]
    assert wait_ready(alice, text["id"])["status"] == "ready"

    listing = alice.get("/api/files").json()
    assert [f["id"] for f in listing["files"]] == [text["id"], made["id"]]
    assert listing["used"] == len(image) + text["size"] and listing["quota"] == QUOTA

    assert alice.delete(f"/api/files/{made['id']}").status_code == 204
    assert alice.get(f"/api/files/{made['id']}").json()["error"]["code"] == "file_not_found"
    assert alice.get(f"/api/files/{made['id']}/content").status_code == 404
    assert alice.get("/api/files").json()["used"] == text["size"]


def test_another_users_file_is_404_everywhere(alice: httpx.Client, bob: httpx.Client) -> None:
    mine = upload(alice, "a.txt", b"secret plans", "text/plain")
    wait_ready(alice, mine["id"])
    fid = mine["id"]
    for r in (
        bob.get(f"/api/files/{fid}"),
        bob.get(f"/api/files/{fid}/content"),
        bob.get(f"/api/files/{fid}/passages/0"),
        bob.delete(f"/api/files/{fid}"),
    ):
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] in ("file_not_found", "passage_not_found")
    assert fid not in [f["id"] for f in bob.get("/api/files").json()["files"]]
    conv = new_conversation(bob)
    r = bob.post(f"/api/conversations/{conv['id']}/messages",
                 json={"content": "read it", "attachments": [fid]})  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "file_not_found"
    assert alice.get(f"/api/files/{fid}/content").content == b"secret plans"  # still there


def test_types_and_limits(alice: httpx.Client) -> None:
    r = alice.post("/api/files", params={"name": "x.svg"}, content=b"<svg/>",
                   headers={"Content-Type": "image/svg+xml"})  # fmt: skip
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_file_type"
    r = alice.post("/api/files", params={"name": "x.png"}, content=b"<html>not a png</html>",
                   headers={"Content-Type": "image/png"})  # fmt: skip
    assert r.status_code == 415
    big_image = make.png() + b"\0" * IMAGE_LIMIT
    r = alice.post("/api/files", params={"name": "big.png"}, content=big_image,
                   headers={"Content-Type": "image/png"})  # fmt: skip
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert alice.get("/api/files").json()["files"] == []


def test_quota(alice: httpx.Client) -> None:
    first = upload(alice, "a.txt", b"a" * (LIMIT - 10), "text/plain")
    upload(alice, "b.txt", b"b" * (LIMIT - 10), "text/plain")
    r = alice.post("/api/files", params={"name": "c.txt"}, content=b"c" * (LIMIT - 10),
                   headers={"Content-Type": "text/plain"})  # fmt: skip
    assert r.status_code == 413 and r.json()["error"]["code"] == "quota_exceeded"
    assert alice.delete(f"/api/files/{first['id']}").status_code == 204
    upload(alice, "c.txt", b"c" * (LIMIT - 10), "text/plain")


def test_an_oversized_upload_is_refused_while_it_streams(
    chat_server: ChatServer, alice: httpx.Client
) -> None:
    """10x the limit, chunked (nothing declared): 413 ``file_too_large`` once the limit is
    passed; the server (this process) does not grow by anything near the body's size."""
    total = 10 * LIMIT * 8  # 20 MiB, 80x the limit: well past what socket buffers hold
    piece = b"%PDF-1.4\n" + b"x" * (64 * 1024 - 9)
    headers = {"content-type": "application/pdf", "x-requested-with": "t",
               "cookie": f"chatgate_session={alice.cookies['chatgate_session']}"}  # fmt: skip
    with PeakRss(every=0.005) as memory:
        chunks = (piece for _ in range(total // len(piece)))
        path = "/api/files?name=big.pdf"
        reply = asyncio.run(request(chat_server.url, "POST", path, headers=headers, chunks=chunks))
    assert reply.status == 413 and reply.code == "file_too_large", reply
    assert reply.sent < total // 2, "the server read on past the limit"
    print(f"upload of {total >> 20} MiB refused after {reply.sent >> 10} KiB; peak RSS growth "
          f"{memory.grew >> 10} KiB")  # fmt: skip
    assert memory.grew < 8 * 1024 * 1024, f"grew by {memory.grew >> 20} MiB"
    assert alice.get("/api/files").json()["files"] == []
    assert not list((FILES_DIR / "incoming").glob("*.part"))  # the spool is cleaned
    # A declared length over the limit is refused before a byte is read.
    r = alice.post("/api/files", params={"name": "a.pdf"}, content=b"%PDF-" + b"x" * LIMIT,
                   headers={"Content-Type": "application/pdf"})  # fmt: skip
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"


def test_an_upload_from_another_site_is_refused(chat_server: ChatServer) -> None:
    with httpx.Client(base_url=chat_server.url) as bare:
        r = bare.post(
            "/api/files",
            params={"name": "a.txt"},
            content=b"x",
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        assert r.status_code == 403
        r = bare.post(
            "/api/files",
            params={"name": "a.txt"},
            content=b"x",
            headers={"Content-Type": "text/plain"},
        )  # no X-Requested-With: a form
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"


# -- messages ------------------------------------------------------------------------------------
def test_images_reach_a_vision_model_as_image_url_parts(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    image = make.png()
    made = upload(alice, "dot.png", image, "image/png")
    conv = new_conversation(alice, model="fake-model")
    r = alice.post(f"/api/conversations/{conv['id']}/messages",
                   json={"content": "What is this?", "attachments": [made["id"]]})  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_cannot_see_images"
    assert "fake-model" in r.json()["error"]["message"]

    started = send(alice, conv["id"], "What is this?", attachments=[made["id"]],
                   model="gpt-4o-mini")  # fmt: skip
    assert wait_status(alice, conv["id"], started["message_id"])["status"] == "done"
    content = last_request(fake)["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    url = content[1]["image_url"]["url"]
    assert content[1]["type"] == "image_url"
    assert url == "data:image/png;base64," + base64.b64encode(image).decode()
    view = alice.get(f"/api/conversations/{conv['id']}").json()
    user = next(m for m in view["messages"] if m["id"] == started["user_message_id"])
    assert user["attachments"] == [{"id": made["id"], "name": "dot.png", "mime": "image/png",
                                    "kind": "image", "size": len(image)}]  # fmt: skip
    # A later turn with a model that cannot see: the image is named, not silently dropped.
    started = send(alice, conv["id"], "And now?", model="fake-model")
    wait_status(alice, conv["id"], started["message_id"])
    first = last_request(fake)["messages"][0]["content"]
    assert isinstance(first, str) and "not shown to this model: dot.png" in first


def test_models_list_vision(chat_server: ChatServer, alice: httpx.Client) -> None:
    cards = {m["id"]: m for m in alice.get("/v1/models").json()["data"]}
    assert cards["gpt-4o-mini"]["capabilities"] == {"vision": True}
    assert cards["fake-model"]["capabilities"] == {"vision": False}
    assert cards["GigaChat-2-Max"]["capabilities"] == {"vision": False}  # calls Lite: blind
    assert cards["GigaChat-2-Pro"]["capabilities"] == {"vision": True}  # see files.vision


def test_a_pdf_fact_on_page_three_reaches_the_prompt_and_is_cited(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    made = upload(alice, "report.pdf", make.pdf(PDF_PAGES), "application/pdf")
    assert made["status"] == "indexing" and made["kind"] == "document"
    ready = wait_ready(alice, made["id"])
    assert ready["status"] == "ready" and ready["pages"] == 6
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "What is the emergency valve code?",
                   attachments=[made["id"]])  # fmt: skip
    answer = wait_status(alice, conv["id"], started["message_id"])
    prompt = last_request(fake)["messages"]
    block = next(m["content"] for m in prompt if "ZEBRA-4417" in str(m["content"]))
    assert "report.pdf, page 3" in block
    assert "canteen" not in block  # retrieval, not the whole document
    cited = answer["citations"]
    assert cited[0]["file_id"] == made["id"] and cited[0]["page"] == 3
    assert "ZEBRA-4417" in cited[0]["text"] and cited[0]["name"] == "report.pdf"
    r = alice.get(f"/api/files/{made['id']}/passages/{cited[0]['n']}")
    assert r.json() == {"file_id": made["id"], "name": "report.pdf", "page": 3,
                        "n": cited[0]["n"], "text": cited[0]["text"]}  # fmt: skip


def test_a_small_document_goes_in_whole(alice: httpx.Client, fake: FakeUpstream) -> None:
    made = upload(alice, "note.txt", b"The spare key is under the blue pot.", "text/plain")
    wait_ready(alice, made["id"])
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "Hello", attachments=[made["id"]])
    answer = wait_status(alice, conv["id"], started["message_id"])
    assert any("blue pot" in str(m["content"]) for m in last_request(fake)["messages"])
    assert [c["n"] for c in answer["citations"]] == [0]


def test_docx_is_indexed(alice: httpx.Client) -> None:
    data = make.docx(["Первый пункт.", "Второй пункт: оплата в течение 30 дней."])
    made = upload(
        alice,
        "dogovor.docx",
        data,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    ready = wait_ready(alice, made["id"])
    assert ready["status"] == "ready" and ready["pages"] is None
    r = alice.get(f"/api/files/{made['id']}/passages/0")
    assert "оплата в течение 30 дней" in r.json()["text"]


def test_a_broken_document_says_why(alice: httpx.Client) -> None:
    made = upload(alice, "broken.pdf", b"%PDF-1.4\n garbage garbage", "application/pdf")
    found = wait_ready(alice, made["id"])
    assert found["status"] == "error" and "PDF" in found["error"]


def test_export_import_and_delete_carry_the_files(alice: httpx.Client, fake: FakeUpstream) -> None:
    image = make.png(3, 3)
    img = upload(alice, "dot.png", image, "image/png")
    doc = upload(alice, "report.pdf", make.pdf(PDF_PAGES), "application/pdf")
    wait_ready(alice, doc["id"])
    conv = new_conversation(alice, model="gpt-4o-mini")
    started = send(alice, conv["id"], "What is the emergency valve code?",
                   attachments=[img["id"], doc["id"]])  # fmt: skip
    wait_status(alice, conv["id"], started["message_id"])

    exported = alice.get(f"/api/conversations/{conv['id']}/export").json()
    assert {f["id"] for f in exported["files"]} == {img["id"], doc["id"]}
    shipped = next(f for f in exported["files"] if f["id"] == img["id"])
    assert base64.b64decode(shipped["data"]) == image
    answer = next(m for m in exported["messages"] if m["role"] == "assistant")
    assert answer["citations"] and answer["citations"][0]["file_id"] == doc["id"]

    r = alice.post("/api/conversations/import", json=exported)
    assert r.status_code == 201, r.text
    imported = r.json()
    user = next(m for m in imported["messages"] if m["role"] == "user")
    new_ids = [a["id"] for a in user["attachments"]]
    assert len(new_ids) == 2 and not set(new_ids) & {img["id"], doc["id"]}
    assert alice.get(f"/api/files/{new_ids[0]}/content").content == image
    cited = next(m for m in imported["messages"] if m["role"] == "assistant")["citations"]
    assert cited[0]["file_id"] == new_ids[1]
    wait_ready(alice, new_ids[1])

    # Deleting a conversation deletes the files attached only to it.
    assert alice.delete(f"/api/conversations/{conv['id']}").status_code == 204
    assert alice.get(f"/api/files/{img['id']}").status_code == 404
    assert alice.get(f"/api/files/{doc['id']}").status_code == 404
    assert alice.get(f"/api/files/{new_ids[0]}").status_code == 200  # the import's own


def test_an_edit_keeps_the_original_attachments(alice: httpx.Client, fake: FakeUpstream) -> None:
    made = upload(alice, "note.txt", b"The password hint is marmalade.", "text/plain")
    wait_ready(alice, made["id"])
    conv = new_conversation(alice)
    first = send(alice, conv["id"], "Hint?", attachments=[made["id"]])
    wait_status(alice, conv["id"], first["message_id"])
    edited = send(alice, conv["id"], "What is the hint?", edit_of=first["user_message_id"])
    answer = wait_status(alice, conv["id"], edited["message_id"])
    assert answer["citations"][0]["file_id"] == made["id"]
    assert any("marmalade" in str(m["content"]) for m in last_request(fake)["messages"])


def test_gigachat_lite_is_refused_images_clearly(alice: httpx.Client) -> None:
    made = upload(alice, "dot.png", make.png(), "image/png")
    conv = new_conversation(alice, model="fake-model")
    r = alice.post(
        f"/api/conversations/{conv['id']}/messages",
        json={"content": "Look", "attachments": [made["id"]], "model": "GigaChat-2-Max"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_cannot_see_images"


def test_an_image_reaches_gigachat_pro_through_its_storage(
    alice: httpx.Client, fake: FakeUpstream
) -> None:
    image = make.png(2, 5)
    made = upload(alice, "tall.png", image, "image/png")
    conv = new_conversation(alice, model="GigaChat-2-Pro")
    started = send(alice, conv["id"], "What is this?", attachments=[made["id"]])
    assert wait_status(alice, conv["id"], started["message_id"])["status"] == "done"
    started = send(alice, conv["id"], "And its size?")
    assert wait_status(alice, conv["id"], started["message_id"])["status"] == "done"
    ups = [r["body"] for r in fake.requests if r["path"] == "/api/v1/files"]
    assert len(ups) == 1 and ups[0]["bytes"] == len(image)  # once for both turns
    [stored] = fake.server.gigachat_files
    prompt = last_request(fake)["messages"]
    with_image = [m for m in prompt if m.get("attachments")]
    assert [m["attachments"] for m in with_image] == [[stored]]
    assert with_image[0]["role"] == "user" and "What is this?" in with_image[0]["content"]
    assert all(isinstance(m["content"], str) for m in prompt)  # GigaChat's dialect
    # GIF is not among GigaChat's types: refused on sending, with the way out.
    gif = upload(alice, "anim.gif", b"GIF89a" + b"\x00" * 32, "image/gif")
    r = alice.post(f"/api/conversations/{conv['id']}/messages",
                   json={"content": "And this?", "attachments": [gif["id"]]})  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_image_type"
    assert "anim.gif" in r.json()["error"]["message"]


def test_indexing_is_announced_to_the_users_tabs(
    chat_server: ChatServer, alice: httpx.Client
) -> None:
    events: list[dict[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=chat_server.url, cookies=alice.cookies, timeout=30) as tab,
            tab.stream("GET", "/api/events") as stream,
        ):
            opened.set()
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1].get("type") == "file":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10)
    time.sleep(0.2)  # the stream's listener is registered once its headers are out
    made = upload(alice, "n.txt", b"text to index", "text/plain")
    listener.join(20)
    assert events and events[-1]["type"] == "file"
    assert events[-1]["file"]["id"] == made["id"] and events[-1]["file"]["status"] == "ready"


def test_attachments_over_the_websocket(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    from websockets.sync.client import connect

    made = upload(alice, "dot.png", make.png(), "image/png")
    conv = new_conversation(alice, model="gpt-4o-mini")
    cookie = f"chatgate_session={alice.cookies['chatgate_session']}"
    url = chat_server.url.replace("http://", "ws://") + "/api/ws"
    with connect(url, additional_headers={"Cookie": cookie}) as ws:
        ws.send(json.dumps({"type": "send", "conversation_id": conv["id"], "content": "See?",
                            "attachments": [made["id"]]}))  # fmt: skip
        while True:
            event = json.loads(ws.recv(timeout=20))
            if event.get("type") in ("done", "error"):
                break
    assert event["type"] == "done", event
    content = last_request(fake)["messages"][-1]["content"]
    assert content[1]["type"] == "image_url"
