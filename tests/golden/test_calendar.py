"""The demo case and ``doctor --deep``'s judgement do not depend on the date of the run. The simulated records sit
in a fixed month; what counts back from the present (message trace's 90 days, the retention, the probes) counts
from the simulated tenant's present (``Tenant.now``). Before that, the golden demo case changed from 2026-12-15
on (the oldest read mail fell out of message trace's reach) and the deep probe found too few records to judge.

Here both test files run again in a child process whose clock libfaketime moves (Debian ``faketime``): 45 days
on (message trace's reach) and two years on. Skips without faketime; fails instead where
``MIA_REQUIRE_FAKETIME=1`` (CI installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ["tests/golden/test_demo_golden.py", "tests/cli/test_doctor_deep.py"]


def _faketime() -> str:
    found = shutil.which("faketime")
    if found is None:
        message = "libfaketime's faketime is not installed (Debian: apt-get install faketime)"
        if os.environ.get("MIA_REQUIRE_FAKETIME") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("days", [45, 730])
def test_the_demo_and_the_deep_probes_are_the_same_on_a_later_day(days: int, tmp_path: Path) -> None:
    faketime = _faketime()
    later = datetime.now(tz=UTC) + timedelta(days=days)
    command = [faketime, "-f", f"@{later:%Y-%m-%d %H:%M:%S}", sys.executable, "-m", "pytest", "-q",
               "-o", "addopts=", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"), *FILES]
    env = {k: v for k, v in os.environ.items() if k != "MIA_UPDATE_GOLDEN"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert "passed" in done.stdout and done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # the child really ran at the later date
    probe = subprocess.run([faketime, "-f", f"@{later:%Y-%m-%d %H:%M:%S}", sys.executable, "-c",
                            "import datetime; print(datetime.date.today())"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == f"{later:%Y-%m-%d}"
