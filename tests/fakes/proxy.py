"""A real HTTP proxy on loopback for the tests: proxy.py (PyPI) in its own process.

It speaks CONNECT and absolute-form forwarding, checks ``Proxy-Authorization`` when started with
credentials (407 without), and resolves ``*.internal`` host names to 127.0.0.1 by itself
(:mod:`tests.fakes.proxy_hosts`): nothing else on the machine can.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class LoopbackProxy:
    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="chatgate-proxy-")
        self.log = Path(self._dir.name) / "proxy.log"

    @property
    def url(self) -> str:
        """The proxy's URL, with its credentials when it wants them."""
        creds = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"http://{creds}127.0.0.1:{self.port}"

    @property
    def bare_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackProxy:
        port_file = Path(self._dir.name) / "port"
        args = [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--num-acceptors",
            "1",
            "--num-workers",
            "1",
            "--threaded",
            "--plugins",
            "tests.fakes.proxy_hosts.InternalHosts",
            "--log-level",
            "info",
        ]
        if self.auth:
            args += ["--basic-auth", f"{self.auth[0]}:{self.auth[1]}"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.pop(name, None)
            env.pop(name.lower(), None)
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"proxy.py exited: {self.log.read_text()[-2000:]}")
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text.isdigit() and _listening(int(text)):
                self.port = int(text)
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("proxy.py did not start within 30 s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._dir.cleanup()

    def __enter__(self) -> LoopbackProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
