"""``bench/inproc.py`` measures any door of ``bench/apis.py`` (every request must answer 200
with a body, or the run fails), and can profile the measured part."""

from __future__ import annotations

import json
import pstats
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("api", ["responses", "anthropic"])
def test_a_door_is_measured_and_profiled(api: str, tmp_path: Path) -> None:
    profile = tmp_path / "run.prof"
    argv = [sys.executable, str(REPO / "bench" / "inproc.py"), "--api", api, "--json"]
    argv += ["--requests", "40", "--concurrency", "2", "--profile", str(profile)]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cpu_us_per_request"] > 0 and result["wall_rps"] > 0
    door = "responses.py" if api == "responses" else "anthropic.py"
    names = {f"{Path(file).name}" for file, _, _ in pstats.Stats(str(profile)).stats}
    assert door in names  # the profile saw that door's module at work
