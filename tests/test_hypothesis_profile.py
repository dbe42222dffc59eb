"""The README's test command is deterministic: two runs draw the same hypothesis examples.

``test_probe_round_trip`` is an ordinary property of the secure buffers; when the environment
names a file in ``CORTEX_HYPOTHESIS_DRAWS`` it also writes down every example it is given. The
test below runs it in a child exactly as the README's command runs the suite (no profile
option, the project's own pyproject and conftest) twice, and compares what was drawn. As a
control it runs it twice more under ``--hypothesis-profile=explore``, which must draw
differently, so the comparison is shown able to tell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.securemem import SecureBuffer
from hypothesis_profiles import CI, EXPLORE, FACTOR_VARIABLE, examples

ROOT = Path(__file__).resolve().parents[1]
DRAWS = "CORTEX_HYPOTHESIS_DRAWS"
PROBE = f"{Path(__file__).relative_to(ROOT)}::test_probe_round_trip"


@settings(max_examples=examples(60))
@given(data=st.binary(min_size=1, max_size=64), other=st.binary(min_size=1, max_size=64))
def test_probe_round_trip(data: bytes, other: bytes) -> None:
    with SecureBuffer.from_bytes(data) as buf:
        assert buf.constant_time_compare(data)
        assert buf.constant_time_compare(other) is (other == data)
    log = os.environ.get(DRAWS)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{data.hex()} {other.hex()}\n")


def draws(tmp_path: Path, name: str, *options: str) -> list[str]:
    log = tmp_path / name
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS_"))}
    env[DRAWS] = str(log)
    env[FACTOR_VARIABLE] = "5"  # the explore runs below count on the default factor
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp_path / "hypothesis")  # explore keeps its database there
    command = [sys.executable, "-W", "error", "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, PROBE]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
    return log.read_text(encoding="utf-8").splitlines()


def test_two_runs_of_the_readme_command_draw_the_same_examples(tmp_path: Path) -> None:
    first = draws(tmp_path, "first")
    second = draws(tmp_path, "second")
    assert len(first) >= 60, f"the probe ran {len(first)} examples"
    assert first == second, "two runs of the default profile drew different examples"

    explored = draws(tmp_path, "explore-1", f"--hypothesis-profile={EXPLORE}")
    again = draws(tmp_path, "explore-2", f"--hypothesis-profile={EXPLORE}")
    assert len(explored) >= 60 * 5 - 10, "the explore profile runs more examples"
    assert explored != again and explored != first, "the explore profile drew the same examples twice"


def test_this_run_uses_the_profile_it_was_asked_for(pytestconfig) -> None:
    """The profile in force is the one the command line named, ``ci`` when it named none."""
    asked = pytestconfig.getoption("hypothesis_profile", default=None) or CI
    assert settings.get_current_profile_name() == asked
    if asked == CI:
        assert settings.default.derandomize is True
        assert settings.default.database is None
        assert settings.default.deadline is None
