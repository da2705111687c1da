"""Backing services that a test can take away and give back: a TCP proxy and a private Redis.

``TcpProxy`` stands between chatgate and a real server (PostgreSQL, Redis): ``cut`` refuses new
connections and drops the open ones (the server stopped), ``freeze`` keeps them open but passes
no byte (the server hung), ``restore`` brings it back. It runs its own event loop in a daemon
thread, so synchronous and asynchronous tests drive it alike.

``RedisServer`` is a ``redis-server`` of the test's own on a free port, which it may stop, start
again, freeze (SIGSTOP) and thaw (SIGCONT). Never the shared 127.0.0.1:6379.

``PostgresCluster`` is a throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free port,
stopped and started for real. Never the shared server on 5432. ``postgres()`` gives a database
and the ``Switch`` that takes it away: a cluster's stop/start, or a proxy's cut/restore in front
of a throwaway database on an existing server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class TcpProxy:
    """127.0.0.1:``port`` → ``target``, with the faults above."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing = asyncio.Event()
        self.connections = 0  # accepted so far

    # -- control (any thread) ----------------------------------------------------------------------
    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        self._call(self._set_flowing(True))
        return self

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._call(self._cut())

    def freeze(self) -> None:
        """Accept connections but pass no byte either way (a hung server)."""
        self._call(self._set_flowing(False))

    def restore(self) -> None:
        """Undo ``cut`` or ``freeze``."""
        self._call(self._restore())

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    # -- on the proxy's loop -----------------------------------------------------------------------
    async def _set_flowing(self, on: bool) -> None:
        if on:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for pair in list(self._pairs):
            for writer in pair:
                writer.transport.abort()
        self._pairs.clear()

    async def _restore(self) -> None:
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                writer.transport.abort()
                return
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()


class RedisServer:
    """A private ``redis-server`` on a free port (no persistence)."""

    def __init__(self, log_path: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        out = self.log_path.open("ab") if self.log_path is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen([self.binary, *args], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Stop it (SIGTERM; SIGKILL if it does not go)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PostgresCluster:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) under ``root`` on a free port,
    which the run may stop and start for real. As root, its processes run as ``postgres``."""

    def __init__(self, root: Path, bindir: Path | None = None) -> None:
        self.root = root
        self.bindir = bindir or _pg_bindir()
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def init(self) -> PostgresCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def _pg_bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("PostgreSQL's initdb is not installed")
    return Path(initdb).resolve().parent


class Switch(Protocol):
    """A backing service the run can take away and give back."""

    def down(self) -> None: ...

    def up(self) -> None: ...


class ClusterSwitch:
    def __init__(self, cluster: PostgresCluster) -> None:
        self.cluster = cluster

    def down(self) -> None:
        self.cluster.stop()

    def up(self) -> None:
        self.cluster.start()


class ProxySwitch:
    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    def down(self) -> None:
        self.proxy.cut()

    def up(self) -> None:
        self.proxy.restore()


@contextlib.contextmanager
def postgres(kind: str, workdir: Path, admin_url: str) -> Iterator[tuple[str, Switch]]:
    """A database for chatgate and the switch that takes it away: (url, switch)."""
    if kind == "cluster":
        cluster = PostgresCluster(workdir / "postgres").init()
        cluster.start()
        try:
            yield cluster.url, ClusterSwitch(cluster)
        finally:
            cluster.stop()
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"chatgate_outages_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    target = make_url(admin_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    try:
        via = target.set(host="127.0.0.1", port=proxy.port, database=name)
        yield via.render_as_string(hide_password=False), ProxySwitch(proxy)
    finally:
        proxy.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
