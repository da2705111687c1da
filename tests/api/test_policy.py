"""Every door gets the same policy: a missing key, a model outside the allow-list, an exhausted
budget and a rate limit are refused by each door in its own error shape, and usage lands on the
key or user that made the request.

Doors: ``/v1/chat/completions`` (whole and streamed), ``/v1/responses`` (whole and streamed),
``/v1/completions`` (whole and streamed), ``/v1/embeddings``, Anthropic's ``/v1/messages`` (whole
and streamed), Ollama's ``/api/chat`` (whole and streamed) and ``/api/generate``, the seed
endpoints ``/chatgpt/`` and ``/gigachat/``, the web chat over REST and over its WebSocket. Keys
are required; the web chat's identity is a signed-in user (single-user mode is off when keys are
required).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

ADMIN = "admin-key-for-policy-tests"
PASSWORD = "correct horse battery"
ALLOWED, FORBIDDEN = "fake-model", "pirate"


@dataclass
class Server:
    url: str
    db_url: str
    admin: httpx.Client

    def key(self, **policy: Any) -> tuple[str, str]:
        """A new client key with ``policy``: (its id, its secret)."""
        r = self.admin.post("/admin/keys", json={"name": "policy", **policy})
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["key"]

    def user(self, **policy: Any) -> tuple[str, httpx.Client]:
        """A new user with ``policy``, signed in: (its id, a client with its session)."""
        name = f"u-{secrets.token_hex(4)}"

        async def create() -> str:
            async with Database(self.db_url) as db:
                account = await Accounts(db, "off", True).create_user(name, PASSWORD)
                return account.id

        user_id = asyncio.run(create())
        if policy:
            r = self.admin.patch(f"/admin/users/{user_id}", json=policy)
            assert r.status_code == 200, r.text
        client = httpx.Client(base_url=self.url, headers={"X-Requested-With": "tests"}, timeout=30)
        r = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return user_id, client


@pytest.fixture(scope="module")
def server(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    fake_server.reset()  # the upstream answers normally, whatever a module before us set
    db_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('policy') / 'db'}"
    config = gateway_config(
        fake_server.base_url,
        database={"url": db_url},
        auth={"require_keys": True, "admin_key": ADMIN, "key_cache_ttl": 0},
        chat={"save_interval": 0.1},
    )
    with ServerThread(create_app(config)) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        yield Server(url, db_url, admin)
        admin.close()


@dataclass
class Refusal:
    """What a door answered: the HTTP status (or WebSocket close code) and the error's
    ``code``/``type`` when its shape carries them."""

    status: int
    code: str | None = None
    type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _openai(resp: httpx.Response) -> Refusal:
    body = resp.json()
    assert set(body) == {"error"}, body  # OpenAI's shape, exactly
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    return Refusal(resp.status_code, error.get("code"), error["type"], dict(resp.headers))


def _anthropic(resp: httpx.Response) -> Refusal:
    body = resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body  # Anthropic's shape
    error = body["error"]
    assert set(error) == {"type", "message"} and error["message"], body
    return Refusal(resp.status_code, None, error["type"], dict(resp.headers))


def _ollama(resp: httpx.Response) -> Refusal:
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return Refusal(resp.status_code, headers=dict(resp.headers))


def _seed(resp: httpx.Response) -> Refusal:
    body = resp.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    return Refusal(resp.status_code, headers=dict(resp.headers))


class Door:
    """One door: how a caller with a credential asks it for ``model``. ``call`` returns None
    when the request was served, else the refusal."""

    name: str
    shape = "openai"  # what its errors look like: openai | anthropic | ollama | seed | websocket
    by_user = False  # the caller is a signed-in user, not a client key

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        raise NotImplementedError


class V1(Door):
    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.name = "chat_completions" + ("_stream" if stream else "")

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if self.stream:
            body["stream"] = True
        resp = httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers)
        if resp.status_code == 200:
            if self.stream:
                assert resp.text.rstrip().endswith("data: [DONE]")
            return None
        return _openai(resp)


class Responses(Door):
    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.name = "responses" + ("_stream" if stream else "")

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        body: dict[str, Any] = {"model": model, "input": "hi"}
        if self.stream:
            body["stream"] = True
        resp = httpx.post(server.url + "/v1/responses", json=body, headers=headers)
        if resp.status_code == 200:
            if self.stream:
                assert "event: response.completed\n" in resp.text
            else:
                assert resp.json()["status"] == "completed"
            return None
        return _openai(resp)


class OpenAIBody(Door):
    """An OpenAI door other than chat: ``path`` with ``body`` (plus the model)."""

    def __init__(self, name: str, path: str, body: dict[str, Any]) -> None:
        self.name, self.path, self.body = name, path, body

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        resp = httpx.post(
            server.url + self.path, json={**self.body, "model": model}, headers=headers
        )
        if resp.status_code == 200:
            if self.body.get("stream"):
                assert resp.text.rstrip().endswith("data: [DONE]")
            else:
                assert resp.json()["object"] in ("text_completion", "list")
            return None
        return _openai(resp)


class Messages(Door):
    """Anthropic's door; the key travels as ``x-api-key``, as the Anthropic SDKs send it."""

    shape = "anthropic"

    def __init__(self, stream: bool) -> None:
        self.stream = stream
        self.name = "anthropic_messages" + ("_stream" if stream else "")

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        headers = {"x-api-key": credential} if credential else {}
        body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
        if self.stream:
            body["stream"] = True
        resp = httpx.post(server.url + "/v1/messages", json=body, headers=headers)
        if resp.status_code == 200:
            if self.stream:
                assert resp.text.rstrip().endswith('data: {"type":"message_stop"}')
            else:
                assert resp.json()["type"] == "message"
            return None
        return _anthropic(resp)


class Ollama(Door):
    """Ollama's doors: they stream unless told not to; the key is a bearer token."""

    shape = "ollama"

    def __init__(self, path: str, stream: bool) -> None:
        self.path = path
        self.stream = stream
        self.name = "ollama_" + path.rsplit("/", 1)[1] + ("_stream" if stream else "")

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        body: dict[str, Any] = {"model": model, "stream": self.stream}
        if self.path.endswith("chat"):
            body["messages"] = [{"role": "user", "content": "hi"}]
        else:
            body["prompt"] = "hi"
        resp = httpx.post(server.url + self.path, json=body, headers=headers)
        if resp.status_code == 200:
            last = json.loads(resp.text.strip().splitlines()[-1])
            assert last["done"] is True and last["done_reason"] == "stop", resp.text
            return None
        return _ollama(resp)


class Seed(Door):
    shape = "seed"

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = path.strip("/")

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        resp = httpx.post(server.url + self.path, json=body, headers=headers)
        if resp.status_code == 200:
            assert resp.json()["messages"][-1]["role"] == "assistant"
            return None
        return _seed(resp)


def _settle(client: httpx.Client, cid: str, mid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        conv = client.get(f"/api/conversations/{cid}").json()
        found = [m for m in conv["messages"] if m["id"] == mid]
        if found and found[0]["status"] != "streaming":
            message: dict[str, Any] = found[0]
            return message
        assert time.monotonic() < deadline, "the answer is still streaming"
        time.sleep(0.05)


def _conversation(client: httpx.Client | None, server: Server, model: str) -> str | None:
    if client is None:
        return None
    r = client.post("/api/conversations", json={"model": model})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


class WebRest(Door):
    name = "web_chat_rest"
    by_user = True

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        client = credential or httpx.Client(
            base_url=server.url, headers={"X-Requested-With": "tests"}
        )
        cid = _conversation(credential, server, model) or "c_nothing"
        resp = client.post(f"/api/conversations/{cid}/messages", json={"content": "hi"})
        if resp.status_code == 202:
            message = _settle(client, cid, resp.json()["message_id"])
            assert message["status"] == "done", message
            return None
        return _openai(resp)


class WebSocket(Door):
    name = "web_chat_ws"
    shape = "websocket"
    by_user = True

    def call(self, server: Server, credential: Any, model: str) -> Refusal | None:
        return asyncio.run(self._call(server, credential, model))

    async def _call(
        self, server: Server, client: httpx.Client | None, model: str
    ) -> Refusal | None:
        url = server.url.replace("http://", "ws://") + "/api/ws"
        headers = {}
        if client is not None:
            headers["Cookie"] = f"chatgate_session={client.cookies['chatgate_session']}"
        cid = await asyncio.to_thread(_conversation, client, server, model)
        try:
            async with websockets.connect(url, additional_headers=headers) as ws:
                await ws.send(json.dumps({"type": "send", "conversation_id": cid, "content": "hi"}))
                async with asyncio.timeout(15):
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply["type"] == "error":
                            error = reply["error"]
                            assert isinstance(error["message"], str) and error["message"]
                            return Refusal(0, error.get("code"), error["type"])
                        if reply["type"] == "started":
                            break
        except websockets.ConnectionClosed as closed:
            return Refusal(closed.rcvd.code if closed.rcvd else 0)
        except InvalidStatus as refused:
            return Refusal(refused.response.status_code)
        assert client is not None and cid is not None
        message = await asyncio.to_thread(_settle, client, cid, reply["message_id"])
        assert message["status"] == "done", message
        return None


DOORS = [
    V1(False),
    V1(True),
    OpenAIBody("completions", "/v1/completions", {"prompt": "hi"}),
    OpenAIBody("completions_stream", "/v1/completions", {"prompt": "hi", "stream": True}),
    # long enough to cost more than one token: the budget test spends past a budget of one
    OpenAIBody("embeddings", "/v1/embeddings", {"input": "hello there, embeddings"}),
    Messages(False),
    Messages(True),
    Ollama("/api/chat", False),
    Ollama("/api/chat", True),
    Ollama("/api/generate", False),
    Responses(False),
    Responses(True),
    Seed("/chatgpt/"),
    Seed("/gigachat/"),
    WebRest(),
    WebSocket(),
]
# The error type each refusal has in shapes that carry a type but no code (Anthropic's).
TYPES = {
    "missing": "authentication_error",
    "model": "permission_error",
    "budget": "rate_limit_error",
    "rate": "rate_limit_error",
}
IDS = [d.name for d in DOORS]


def caller(server: Server, door: Door, **policy: Any) -> tuple[str, Any]:
    """(the id usage is recorded under, the credential the door takes) for a new caller."""
    if door.by_user:
        return server.user(**policy)
    return server.key(**policy)


def usage_of(server: Server, door: Door, holder: str) -> tuple[int, int]:
    """(requests, tokens) recorded for the key or user ``holder`` (this replica flushes first)."""
    query = {"user_id": holder} if door.by_user else {"key_id": holder}
    rows = server.admin.get("/admin/usage", params=query).json()["data"]
    return sum(r["requests"] for r in rows), sum(r["total_tokens"] for r in rows)


@pytest.mark.parametrize("door", DOORS, ids=IDS)
def test_a_missing_credential_is_refused(server: Server, door: Door) -> None:
    refusal = door.call(server, None, ALLOWED)
    assert refusal is not None
    if door.shape == "websocket":
        assert refusal.status in (1008, 403)  # closed as a policy violation
    else:
        assert refusal.status == 401
    if door.shape in ("openai", "anthropic"):
        assert refusal.type == TYPES["missing"]


@pytest.mark.parametrize("door", DOORS, ids=IDS)
def test_a_model_outside_the_allow_list_is_refused(server: Server, door: Door) -> None:
    holder, credential = caller(server, door, models=[ALLOWED])
    refusal = door.call(server, credential, FORBIDDEN)
    assert refusal is not None
    assert refusal.status == (0 if door.shape == "websocket" else 403)
    if door.shape in ("openai", "websocket"):
        assert refusal.code == "model_not_allowed"
    elif door.shape == "anthropic":
        assert refusal.type == TYPES["model"]
    assert door.call(server, credential, ALLOWED) is None  # the allowed one is served
    assert usage_of(server, door, holder)[0] >= 1


@pytest.mark.parametrize("door", DOORS, ids=IDS)
def test_an_exhausted_budget_is_refused(server: Server, door: Door) -> None:
    holder, credential = caller(server, door, budget_tokens=1)
    assert door.call(server, credential, ALLOWED) is None  # within budget: spends past it
    refusal = door.call(server, credential, ALLOWED)
    assert refusal is not None
    assert refusal.status == (0 if door.shape == "websocket" else 429)
    if door.shape in ("openai", "websocket"):
        assert refusal.code == "insufficient_quota"
    elif door.shape == "anthropic":
        assert refusal.type == TYPES["budget"]
    requests, tokens = usage_of(server, door, holder)
    assert requests >= 1 and tokens > 1  # the first answer's tokens, on this key or user


@pytest.mark.parametrize("door", DOORS, ids=IDS)
def test_a_rate_limit_is_refused(server: Server, door: Door) -> None:
    holder, credential = caller(server, door, rpm=1)
    assert door.call(server, credential, ALLOWED) is None
    refusal = door.call(server, credential, ALLOWED)
    assert refusal is not None
    if door.shape == "websocket":
        assert refusal.status == 0 and refusal.type == "rate_limit_error"
    else:
        assert refusal.status == 429
        assert float(refusal.headers["retry-after"]) > 0
    if door.shape in ("openai", "anthropic"):
        assert refusal.type == TYPES["rate"]
    assert usage_of(server, door, holder)[0] >= 1


def test_each_door_is_counted_under_its_own_api_label(server: Server) -> None:
    key_id, secret = server.key()
    user_id, client = server.user()
    for door in DOORS:
        assert door.call(server, client if door.by_user else secret, ALLOWED) is None
    text = httpx.get(server.url + "/metrics").text
    for api in (
        "chat_completions",
        "responses",
        "completions",
        "embeddings",
        "anthropic",
        "ollama",
        "seed",
        "web_chat",
    ):
        assert f'chatgate_requests_total{{api="{api}",model="{ALLOWED}",status="200"' in text
    keyed = [door for door in DOORS if not door.by_user]
    assert usage_of(server, DOORS[0], key_id)[0] == len(keyed)  # one request each
    assert usage_of(server, DOORS[-1], user_id)[0] >= 2  # two answers (and their titles)


def test_usage_lands_on_the_key_or_the_user_never_both(server: Server) -> None:
    key_id, secret = server.key()
    user_id, client = server.user()
    assert WebRest().call(server, client, ALLOWED) is None
    assert V1(False).call(server, secret, ALLOWED) is None
    rows = server.admin.get("/admin/usage").json()["data"]
    mine = [r for r in rows if r["user_id"] == user_id]
    assert mine and all(r["key_id"] is None for r in mine)
    theirs = [r for r in rows if r["key_id"] == key_id]
    assert theirs and all(r["user_id"] is None for r in theirs)


def test_count_tokens_walks_the_request_path(server: Server) -> None:
    """``/v1/messages/count_tokens`` calls no upstream but is a door all the same: key,
    allow-list, budget and one request of the rate limit, in Anthropic's shape, counted under
    its own api label and in the key's usage (a request, no tokens)."""
    url = server.url + "/v1/messages/count_tokens"
    body = {"model": ALLOWED, "messages": [{"role": "user", "content": "count these words"}]}

    def count(secret: str | None, **extra: Any) -> httpx.Response:
        headers = {"x-api-key": secret} if secret else {}
        return httpx.post(url, json={**body, **extra}, headers=headers)

    missing = count(None)
    assert missing.status_code == 401 and _anthropic(missing).type == TYPES["missing"]
    key_id, secret = server.key(models=[ALLOWED], rpm=2)
    forbidden = count(secret, model=FORBIDDEN)
    assert forbidden.status_code == 403 and _anthropic(forbidden).type == TYPES["model"]
    served = count(secret)
    assert served.status_code == 200 and served.json()["input_tokens"] > 0
    assert served.headers["x-ratelimit-limit-requests"] == "2"
    assert count(secret).status_code == 200
    limited = count(secret)
    assert limited.status_code == 429 and _anthropic(limited).type == TYPES["rate"]
    assert float(limited.headers["retry-after"]) > 0
    assert usage_of(server, DOORS[0], key_id) == (2, 0)
    _, spent = server.key(budget_tokens=1)
    assert DOORS[0].call(server, spent, ALLOWED) is None  # spends past the budget
    broke = count(spent)
    assert broke.status_code == 429 and _anthropic(broke).type == TYPES["budget"]
    metrics = httpx.get(server.url + "/metrics").text
    assert (
        'chatgate_requests_total{api="anthropic_count_tokens",model="fake-model",status="200"'
        in metrics
    )
