"""The drain deadline: SIGTERM with streams that outlast ``server.drain_seconds``. Every open
stream gets its door's error event and a clean end at the deadline (no cut body, no traceback
per stream), the running web-chat answer is saved as an error with its text, and the process
exits 0."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cli.process import chatgate, free_port, wait_healthy
from tests.fakes.upstream import FakeUpstream

DRAIN = 1.0
WEB = {"X-Requested-With": "tests"}
MODEL = {"model": "fake-model"}


class Reader(threading.Thread):
    """Reads one streamed response to its end; keeps its SSE data events (NDJSON lines with
    ``prefix=""``) and any error."""

    def __init__(self, method: str, url: str, prefix: str = "data: ", **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.request = (method, url, kwargs)
        self.prefix = prefix
        self.events: list[str] = []
        self.error: BaseException | None = None
        self.ended_at = 0.0
        self.started = threading.Event()

    def run(self) -> None:
        method, url, kwargs = self.request
        try:
            with httpx.stream(method, url, timeout=30, **kwargs) as resp:
                for line in resp.iter_lines():
                    if line and line.startswith(self.prefix):
                        self.events.append(line[len(self.prefix) :])
                    self.started.set()
        except BaseException as exc:  # an incomplete body: the stream was cut
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()

    def last(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.events[-1])
        return payload


def test_streams_end_with_an_error_event_at_the_drain_deadline(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    db = tmp_path / "chatgate.db"
    config = tmp_path / "chatgate.yaml"
    config.write_text(
        "discover_env: false\nlocal_model: false\n"
        f"database: {{url: 'sqlite:///{db}'}}\n"
        f"server: {{drain_seconds: {DRAIN}}}\n"
        "chat: {model_titles: false, save_interval: 0.2}\n"
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}/v1', models: [fake-model]}}\n",
        encoding="utf-8",
    )
    fake.configure(chunks=100, chunk_delay_ms=100)  # a 10-second answer
    port = free_port()
    proc = chatgate("serve", "--config", str(config), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "long"}]}
        v1 = Reader("POST", url + "/v1/chat/completions", json={**body, "stream": True})
        doors = {  # the other doors that stream: each ends with its own error at the deadline
            "anthropic": Reader(
                "POST", url + "/v1/messages", json={**body, "max_tokens": 500, "stream": True}
            ),
            "ollama": Reader("POST", url + "/api/chat", prefix="", json=body),
            "responses": Reader(
                "POST", url + "/v1/responses", json={**MODEL, "input": "long", "stream": True}
            ),
        }
        conv = httpx.post(url + "/api/conversations", json={"model": "fake-model"}, headers=WEB)
        assert conv.status_code == 201, conv.text
        cid = conv.json()["id"]
        user = Reader("GET", url + "/api/events", headers=WEB)
        user.start()
        assert user.started.wait(10)
        sent = httpx.post(
            f"{url}/api/conversations/{cid}/messages", json={"content": "long"}, headers=WEB
        )
        assert sent.status_code == 202, sent.text
        follow = Reader("GET", url + sent.json()["events_url"], headers=WEB)
        v1.start()
        follow.start()
        for reader in doors.values():
            reader.start()
        deadline = time.monotonic() + 10
        while (
            len(v1.events) < 3
            or sum('"delta"' in e for e in follow.events) < 3
            or any(len(reader.events) < 3 for reader in doors.values())
        ):
            assert time.monotonic() < deadline, (v1.events, follow.events, doors)
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        for reader in (v1, follow, user, *doors.values()):
            reader.join(15)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stdout.read() if proc.stdout else ""
    # /v1: its SSE error event, no [DONE], the body properly ended.
    assert v1.error is None, f"/v1 stream cut: {v1.error!r}"
    assert v1.events[-1] != "[DONE]"
    assert v1.last()["error"]["code"] == "shutting_down", v1.events[-3:]
    # The web chat: the answer's own end (an error: shut down), then a clean end.
    assert follow.error is None, f"chat stream cut: {follow.error!r}"
    end = follow.last()
    assert end["type"] in ("done", "error"), end
    assert end.get("status", "error") == "error"
    # The user-event stream, which never ends by itself: an error event and a clean end.
    assert user.error is None, f"event stream cut: {user.error!r}"
    assert user.last()["type"] == "error"
    # Anthropic: its error event, no message_stop. Ollama: an {"error"} line, no done line.
    # Responses: error then response.failed.
    for name, reader in doors.items():
        assert reader.error is None, f"{name} stream cut: {reader.error!r}"
    anthropic = doors["anthropic"].last()
    assert anthropic["type"] == "error", doors["anthropic"].events[-3:]
    assert "shutting down" in anthropic["error"]["message"]
    assert not any('"message_stop"' in e for e in doors["anthropic"].events)
    ollama = doors["ollama"].last()
    assert set(ollama) == {"error"} and "shutting down" in ollama["error"], ollama
    responses = [json.loads(e) for e in doors["responses"].events[-2:]]
    assert [e["type"] for e in responses] == ["error", "response.failed"], responses
    assert responses[0]["code"] == "shutting_down"
    for reader in (v1, follow, user, *doors.values()):
        assert reader.ended_at - stopped < DRAIN + 0.5, reader.ended_at - stopped
    assert "Traceback" not in log and "Cancel" not in log, log[-3000:]
    with sqlite3.connect(db) as conn:
        status, content = conn.execute(
            "SELECT status, content FROM messages WHERE role = 'assistant'"
        ).fetchone()
    assert status == "error" and content.startswith("tok0 tok1 tok2 "), (status, content)
