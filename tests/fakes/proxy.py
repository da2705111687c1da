"""Real proxies on loopback for the tests, each in its own process.

:class:`LoopbackProxy` is proxy.py (PyPI), an HTTP proxy: it speaks CONNECT and absolute-form
forwarding, checks ``Proxy-Authorization`` when started with credentials (407 without), and
resolves ``*.internal`` host names to 127.0.0.1 by itself (:mod:`tests.fakes.proxy_hosts`):
nothing else on the machine can. :class:`SocksProxy` is pproxy (PyPI), a SOCKS5 proxy with
user/password authentication that logs every connection it makes.
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


class SocksProxy:
    """pproxy serving SOCKS5 on 127.0.0.1, with ``auth``; ``connections()`` reads its log."""

    def __init__(self, auth: tuple[str, str]) -> None:
        self.auth = auth
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="chatgate-socks-")
        self.log = Path(self._dir.name) / "pproxy.log"

    @property
    def url(self) -> str:
        return f"socks5://{self.auth[0]}:{self.auth[1]}@127.0.0.1:{self.port}"

    def connections(self) -> list[str]:
        """The "socks5 client -> target" lines pproxy logged."""
        return [line for line in self.log.read_text().splitlines() if " -> " in line]

    def start(self) -> SocksProxy:
        listen = f"socks5://127.0.0.1:{self.port}#{self.auth[0]}:{self.auth[1]}"
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _PPROXY, "-l", listen, "-v"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 30
        while not _listening(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pproxy did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)

    def __enter__(self) -> SocksProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()


# pproxy on asyncio's own loop: it takes uvloop when it can, and then asks for a loop in a way
# the current uvloop refuses
_PPROXY = """
import asyncio, sys
sys.modules["uvloop"] = None
asyncio.set_event_loop(asyncio.new_event_loop())
sys.argv[0] = "pproxy"
from pproxy.server import main
main()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
