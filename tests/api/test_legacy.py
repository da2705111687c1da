"""The seed endpoints /chatgpt/ and /gigachat/, exactly as seeds/001_*.txt describes them."""

from __future__ import annotations

import httpx

from chatgate.config import LEGACY_SYSTEM_PROMPT
from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream

USER = {"role": "user", "content": "Привет!"}


def test_chatgpt_endpoint_appends_answer(gateway_url: str, fake: FakeUpstream) -> None:
    resp = httpx.post(gateway_url + "/chatgpt/", json={"model": "fake-model", "messages": [USER]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": LEGACY_SYSTEM_PROMPT},
            USER,
            {"role": "assistant", "content": FAKE_CONTENT},
        ],
    }
    assert fake.requests[-1]["body"]["messages"][0]["content"] == LEGACY_SYSTEM_PROMPT


def test_client_system_prompt_is_kept(gateway_url: str, fake: FakeUpstream) -> None:
    mine = {"role": "system", "content": "Be brief."}
    resp = httpx.post(
        gateway_url + "/chatgpt/", json={"model": "fake-model", "messages": [mine, USER]}
    )
    assert resp.json()["messages"][:2] == [mine, USER]


def test_gigachat_endpoint_uses_oauth_and_unknown_model_name(
    gateway_url: str, fake: FakeUpstream
) -> None:
    body = {"model": "GigaChat:latest", "messages": [USER]}
    resp = httpx.post(gateway_url + "/gigachat/", json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["model"] == "GigaChat:latest"
    assert data["messages"][-1] == {"role": "assistant", "content": FAKE_CONTENT}
    sent = fake.requests[-1]
    assert sent["path"] == "/api/v1/chat/completions"
    assert sent["body"]["model"] == "GigaChat:latest"
    assert sent["headers"]["Authorization"].startswith("Bearer ")


def test_legacy_bad_input_is_400_in_the_seed_shape(gateway_url: str) -> None:
    resp = httpx.post(gateway_url + "/chatgpt/", json={"model": "fake-model"})
    assert resp.status_code == 400
    assert resp.json() == {"detail": "messages: Field required"}
    resp = httpx.post(
        gateway_url + "/chatgpt/", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json() == {"detail": "Request body is not valid JSON."}


def test_unknown_model_goes_verbatim_to_first_provider_of_its_kind(
    gateway_url: str, fake: FakeUpstream
) -> None:
    resp = httpx.post(gateway_url + "/chatgpt/", json={"model": "gpt-9", "messages": [USER]})
    assert resp.status_code == 200
    assert fake.requests[-1]["body"]["model"] == "gpt-9"
