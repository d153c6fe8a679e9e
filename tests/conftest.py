"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

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
