"""Tools the harness needs and installs itself when missing: wrk (Debian) and LiteLLM (own venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Pinned so that figures from different days compare like with like; override with --litellm-spec.
LITELLM_SPEC = "litellm[proxy]==1.106.2"
INSTALL_TIMEOUT_S = 1200


class MissingTool(RuntimeError):
    """A tool could not be found or installed; the message says how to get it."""


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _run(argv: list[str], timeout: float) -> bool:
    _log("$ " + " ".join(argv))
    try:
        return subprocess.run(argv, timeout=timeout, stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log(f"failed: {exc}")
        return False


def ensure_wrk() -> str:
    """Path of wrk, installed from Debian's packages when missing and we are root."""
    for tool in ("taskset",):
        if shutil.which(tool) is None:
            raise MissingTool(f"{tool} not found: install util-linux (apt-get install util-linux)")
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _log("wrk not found: installing it with apt-get")
        installed = _run(["apt-get", "install", "-y", "-q", "wrk"], INSTALL_TIMEOUT_S)
        if not installed:
            _run(["apt-get", "update", "-q"], INSTALL_TIMEOUT_S)
            _run(["apt-get", "install", "-y", "-q", "wrk"], INSTALL_TIMEOUT_S)
        found = shutil.which("wrk")
        if found:
            return found
    raise MissingTool(
        "wrk not found and could not be installed; run as root: apt-get update && "
        "apt-get install -y wrk"
    )


def ensure_litellm(venv: Path, spec: str) -> Path:
    """Path of the `litellm` proxy command inside `venv`, creating the venv when missing."""
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    _log(f"LiteLLM not found in {venv}: installing {spec!r} (takes a few minutes, once)")
    if not (venv / "bin" / "python").exists() and not _run(
        [sys.executable, "-m", "venv", str(venv)], 300
    ):
        raise MissingTool(f"could not create a venv at {venv}")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if not _run([*pip, spec], INSTALL_TIMEOUT_S) or not exe.exists():
        raise MissingTool(
            f"could not install {spec!r} into {venv}; try: {venv}/bin/pip install '{spec}', "
            "or run without LiteLLM: --targets direct,chatgate"
        )
    return exe


def litellm_version(venv: Path) -> str:
    try:
        out = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import importlib.metadata as m;print(m.version('litellm'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"
