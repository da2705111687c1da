"""`chatgate serve` and `chatgate models` as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_file(tmp_path: Path, fake: FakeUpstream) -> Path:
    path = tmp_path / "chatgate.yaml"
    path.write_text(
        "discover_env: false\nlocal_model: false\n"
        f"database: {{url: 'sqlite:///{tmp_path}/db'}}\nproviders:\n"
        f"  fake: {{type: openai, base_url: '{fake.base_url}/v1', discover_models: true}}\n",
        encoding="utf-8",
    )
    return path


def chatgate(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatgate.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"chatgate exited early ({proc.returncode}): {out}")
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("chatgate did not become ready")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_and_stops_cleanly_on_sigterm(
    tmp_path: Path, fake: FakeUpstream, workers: str
) -> None:
    port = free_port()
    proc = chatgate(
        "serve",
        "--config",
        str(config_file(tmp_path, fake)),
        "--port",
        str(port),
        env={"CHATGATE_WORKERS": workers},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        resp = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.json()["choices"][0]["message"]["content"] == FAKE_CONTENT
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_models_command_lists_discovered_models(tmp_path: Path, fake: FakeUpstream) -> None:
    proc = chatgate("models", "--config", str(config_file(tmp_path, fake)))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    lines = out.strip().splitlines()
    assert lines[0].split() == ["MODEL", "PROVIDER", "UPSTREAM", "MODEL"]
    assert any(line.split()[:2] == ["fake-model", "fake"] for line in lines[1:])
