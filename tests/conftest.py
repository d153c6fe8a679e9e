"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_bridge.sim.kerberos import isolate_kerberos

# No test may ask a real KDC: with python-gssapi installed, every Negotiate logon tries Kerberos
# first. The Kerberos tests bring their own realm on 127.0.0.1 (tests/bridge/mit_kdc.py).
isolate_kerberos()

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"


def realdata_path(*parts: str) -> Path:
    """A file under ../shared/realdata; fails loudly when absent (a skipped real-data test hides regressions)."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"real sample data missing: {path} (expected ../shared/realdata beside the repo)")
    return path


@pytest.fixture
def realdata() -> object:
    return realdata_path
