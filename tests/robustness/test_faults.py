"""A short fault run: every fault × mode ends with the right answer or the right error, in time.

The long run with more requests per cell is ``python -m robustness.faults``.
"""

from __future__ import annotations

from pathlib import Path

from robustness.faults import DEADLINE, run_faults, table
from robustness.harness import gateway_yaml

from chatgate.app import create_app
from chatgate.config import Config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread


async def test_fault_matrix(fake: FakeUpstream, tmp_path: Path) -> None:
    config = Config.model_validate(gateway_yaml(fake.base_url, tmp_path))
    with ServerThread(create_app(config)) as url:
        cells = await run_faults(url, fake.base_url, repeats=3)
    report = table(cells)
    print(report)
    assert len(cells) == 22
    assert all(c.ok for c in cells), report
    assert max(c.max_latency for c in cells) < DEADLINE
