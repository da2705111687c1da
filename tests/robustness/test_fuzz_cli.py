"""``python -m robustness.fuzz`` as a person runs it: options reach schemathesis in its units."""

from __future__ import annotations

from pathlib import Path

import pytest
from robustness.fuzz import main, parse_args
from robustness.harness import gateway_yaml

from chatgate.app import create_app
from chatgate.config import Config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread


def test_max_time_given_in_seconds_with_a_fraction_runs(
    fake: FakeUpstream, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--max-time 90` used to reach schemathesis as "90.0", which it refuses: no report, a crash.
    config = Config.model_validate(gateway_yaml(fake.base_url, tmp_path))
    with ServerThread(create_app(config)) as url:
        argv = ["--url", url, "--max-time", "2.5", "--examples", "1", "--phases", "examples"]
        code = main([*argv, "--workers", "1", "--report-dir", str(tmp_path / "reports")])
    assert code == 0, capsys.readouterr().out[-3000:]
    assert (tmp_path / "reports" / "report.json").exists()


def test_max_time_is_whole_seconds_of_at_least_one() -> None:
    assert parse_args(["--max-time", "90"]).max_time == 90
    assert parse_args(["--max-time", "90.7"]).max_time == 90
    with pytest.raises(SystemExit):
        parse_args(["--max-time", "0.5"])
