"""A short schemathesis run against a live chatgate in front of the fake upstream.

No 5xx (an upstream-explained 502/503/504 aside) and every error in the OpenAI shape; the long
run is `make fuzz` (``python -m robustness.fuzz``). Fixed seed, one worker, no example database:
the same cases every time, so a failure here is a finding, not flakiness.
"""

from __future__ import annotations

from pathlib import Path

from robustness.fuzz import run_schemathesis
from robustness.harness import gateway_yaml

from chatgate.app import create_app
from chatgate.config import Config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

SEED = 20240611


def test_schemathesis_short_run(fake: FakeUpstream, tmp_path: Path) -> None:
    config = Config.model_validate(gateway_yaml(fake.base_url, tmp_path))
    with ServerThread(create_app(config)) as url:
        result = run_schemathesis(
            url,
            examples=5,
            seed=SEED,
            workers=1,
            report_dir=tmp_path / "reports",
            timeout=300,  # a loaded 2-core box: ~2 min for ~40 operations
        )
    print(result.summary())
    assert result.generated >= 100, result.output[-3000:]
    assert not result.gating, result.summary()
