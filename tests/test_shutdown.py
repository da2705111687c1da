"""Graceful shutdown: SIGTERM lets a running stream finish, refuses new work, exits 0, and
writes the last usage batch."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.process import chatgate, free_port, wait_healthy
from tests.fakes.upstream import FakeUpstream


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_drains_a_stream_and_exits_0(
    tmp_path: Path, fake: FakeUpstream, workers: str
) -> None:
    db = tmp_path / "chatgate.db"
    config = tmp_path / "chatgate.yaml"
    config.write_text(
        "discover_env: false\nlocal_model: false\n"
        f"database: {{url: 'sqlite:///{db}'}}\n"
        "server: {drain_seconds: 20}\n"
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}/v1', models: [fake-model]}}\n",
        encoding="utf-8",
    )
    fake.configure(chunks=20, chunk_delay_ms=100)  # a 2-second answer
    port = free_port()
    proc = chatgate(
        "serve", "--config", str(config), "--port", str(port), env={"CHATGATE_WORKERS": workers}
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc)
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "long one"}],
        "stream": True,
    }
    got: list[str] = []
    first_bytes = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as resp:
            for text in resp.iter_text():
                got.append(text)
                first_bytes.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_bytes.wait(10)
    proc.send_signal(signal.SIGTERM)
    # No new work once draining. The signal takes a moment to reach every worker (longer on a
    # loaded machine), so ask until refused.
    deadline = time.monotonic() + 5
    served = 0
    while True:
        time.sleep(0.1)
        try:
            httpx.post(url + "/v1/chat/completions", json={**body, "stream": False}, timeout=5)
        except httpx.TransportError:
            break
        served += 1
        assert time.monotonic() < deadline, "still accepting new requests 5 s after SIGTERM"
    reader.join(30)
    assert "".join(got).endswith("data: [DONE]\n\n")  # the running answer was finished
    assert proc.wait(timeout=30) == 0
    with sqlite3.connect(db) as conn:  # the last usage batch was written on the way out
        (requests,) = conn.execute("SELECT SUM(requests) FROM usage_daily").fetchone()
    assert requests == 1 + served
