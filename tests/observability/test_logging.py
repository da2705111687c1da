"""Logs: JSON lines off a terminal, one access record per request, no prompt and no key."""

from __future__ import annotations

import io
import logging
import signal
from pathlib import Path

import httpx
import orjson

from chatgate.observability.logging import AccessLog, BufferedHandler, JSONFormatter
from tests.cli.process import chatgate, free_port, wait_healthy
from tests.fakes.upstream import FakeUpstream

SECRET_PROMPT = "my bank PIN is 7391"
UPSTREAM_KEY = "sk-upstream-never-log-me-0123456789"


def test_access_record_is_one_json_line() -> None:
    stream = io.StringIO()
    handler = BufferedHandler(stream, interval=60)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("chatgate.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        AccessLog().request(
            "seed", "rid-1", "fake-model", 200, 0.0, "miss", True, key_id="k1", user_id=None
        )
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    record = orjson.loads(stream.getvalue().strip())
    assert record["request_id"] == "rid-1"
    assert (record["api"], record["key_id"]) == ("seed", "k1")
    assert "user_id" not in record
    assert (record["model"], record["status"], record["cache"], record["stream"]) == (
        "fake-model",
        200,
        "miss",
        True,
    )
    assert record["latency_ms"] >= 0


def test_served_requests_are_logged_without_secrets(tmp_path: Path, fake: FakeUpstream) -> None:
    config = tmp_path / "chatgate.yaml"
    config.write_text(
        "discover_env: false\nlocal_model: false\n"
        f"database: {{url: 'sqlite:///{tmp_path}/db'}}\nproviders:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}/v1', api_keys: ['{UPSTREAM_KEY}'],"
        " models: [fake-model]}\n",
        encoding="utf-8",
    )
    port = free_port()
    proc = chatgate("serve", "--config", str(config), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        body = {"model": "fake-model", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
        httpx.post(url + "/v1/chat/completions", json=body, headers={"x-request-id": "log-test"})
        fake.configure(status=401)  # the upstream refuses our key: logged, key not in the log
        httpx.post(url + "/v1/chat/completions", json=body)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert SECRET_PROMPT not in out
    assert UPSTREAM_KEY not in out
    records = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "chatgate.access"]
    assert [r["status"] for r in access] == [200, 502]
    assert access[0]["request_id"] == "log-test"
    assert [r["api"] for r in access] == ["chat_completions", "chat_completions"]
    assert access[0]["model"] == "fake-model"
    assert all(r["level"] in ("info", "warning", "error") for r in records)
