"""Reasoning modes end to end: the fake upstream → chatgate → the openai SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.fakes.upstream import FakeUpstream

MSG = [{"role": "user", "content": "why?"}]
INLINE = "<think>\nLet me see.\n</think>\n\nBecause."


def ask(
    client: openai.OpenAI, stream: bool, mode: str | None = None, model: str = "fake-model"
) -> tuple[str, str]:
    """(content, reasoning) as the client sees them."""
    headers = {"X-Chatgate-Reasoning": mode} if mode else None
    if not stream:
        resp = client.chat.completions.create(
            model=model,
            messages=MSG,
            extra_headers=headers,  # type: ignore[arg-type]
        )
        msg: Any = resp.choices[0].message
        return msg.content or "", getattr(msg, "reasoning_content", None) or ""
    content, reasoning = [], []
    for chunk in client.chat.completions.create(
        model=model,
        messages=MSG,
        stream=True,
        extra_headers=headers,  # type: ignore[arg-type]
    ):
        if not chunk.choices:
            continue
        delta: Any = chunk.choices[0].delta
        content.append(delta.content or "")
        reasoning.append(getattr(delta, "reasoning_content", None) or "")
    return "".join(content), "".join(reasoning)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("chunks", [1, 7, 40])
def test_inline_think_separated_by_default(
    client: openai.OpenAI, fake: FakeUpstream, stream: bool, chunks: int
) -> None:
    fake.configure(content=INLINE, chunks=chunks)
    assert ask(client, stream) == ("Because.", "Let me see.\n")


@pytest.mark.parametrize("stream", [False, True])
def test_modes_by_header(client: openai.OpenAI, fake: FakeUpstream, stream: bool) -> None:
    fake.configure(content=INLINE, chunks=9)
    assert ask(client, stream, "strip") == ("Because.", "")
    assert ask(client, stream, "keep") == (INLINE, "")
    assert ask(client, stream, "separate") == ("Because.", "Let me see.\n")


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_reasoning_content(
    client: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    fake.configure(reasoning="Deep thought.", content="42", chunks=3)
    assert ask(client, stream) == ("42", "Deep thought.")
    assert ask(client, stream, "keep") == ("42", "Deep thought.")
    assert ask(client, stream, "strip") == ("42", "")


@pytest.mark.parametrize("stream", [False, True])
def test_model_config_mode_and_missing_open_tag(
    client: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    # an R1 distill: the opening tag is in the prompt template, the answer starts inside
    fake.configure(content="hmm, think</think>\n\nAnswer", chunks=5)
    assert ask(client, stream, model="r1-distill") == ("Answer", "")
    assert ask(client, stream, "separate", model="r1-distill") == ("Answer", "hmm, think")


def test_bad_mode_header_is_400(gateway_url: str, fake: FakeUpstream) -> None:
    resp = httpx.post(
        gateway_url + "/v1/chat/completions",
        json={"model": "fake-model", "messages": MSG},
        headers={"X-Chatgate-Reasoning": "sometimes"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "X-Chatgate-Reasoning"
    assert fake.count() == 0


def test_earlier_reasoning_is_not_sent_upstream(client: openai.OpenAI, fake: FakeUpstream) -> None:
    tool_turn = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "need weather",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    }
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "<think>greet</think>\n\nHello!",
            "reasoning_content": "x",
        },
        {"role": "user", "content": "weather?"},
        tool_turn,
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    client.chat.completions.create(model="fake-model", messages=history)  # type: ignore[arg-type]
    sent = fake.requests[-1]["body"]["messages"]
    assert sent[1] == {"role": "assistant", "content": "Hello!"}
    assert sent[3] == tool_turn  # DeepSeek's thinking mode needs a tool turn's reasoning back
    assert sent[4] == history[4]
