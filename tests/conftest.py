"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mia_bridge.sim.kerberos import isolate_kerberos

# No test may ask a real KDC: with python-gssapi installed, every Negotiate logon tries Kerberos
# first. The Kerberos tests bring their own realm on 127.0.0.1 (tests/bridge/mit_kdc.py).
isolate_kerberos()

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"


# CI sets MIA_REQUIRE_REALDATA=1 (.ci/run): there a missing sample fails the run instead of skipping, since a
# skipped real-data test hides regressions. A lone clone (no ../shared) skips these tests with the reason.
REQUIRE_REALDATA = os.environ.get("MIA_REQUIRE_REALDATA") == "1"


def realdata_path(*parts: str, module_level: bool = False) -> Path:
    """A file under ../shared/realdata; skips (fails where MIA_REQUIRE_REALDATA=1) when absent.

    ``module_level=True`` for calls made while a test module is being imported."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        reason = f"real sample data missing: {path} (expected ../shared/realdata beside the repo)"
        if REQUIRE_REALDATA:
            pytest.fail(reason)
        pytest.skip(reason, allow_module_level=module_level)
    return path


@pytest.fixture
def realdata() -> object:
    return realdata_path


# --- the JEA contract: every pipeline the bridge sends, in every test (tests/ps_scripts/test_jea_contract.py) ---

SENT_PIPELINES: list[tuple[str, list[tuple[str, dict[str, object]]]]] = []
CONTRACT_TEST = "test_every_pipeline_the_bridge_sent_is_exposed_by_the_role_capability"


def _record_sent(kind: str, pipeline: list[tuple[str, dict[str, object]]]) -> None:
    SENT_PIPELINES.append((kind, [(name, dict(params)) for name, params in pipeline]))


def pytest_configure(config: pytest.Config) -> None:
    from mia_bridge.bridge import winrm

    if _record_sent not in winrm.SENT_OBSERVERS:
        winrm.SENT_OBSERVERS.append(_record_sent)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The contract test runs last, when every other test has sent what it sends."""
    items.sort(key=lambda item: item.name == CONTRACT_TEST)


@pytest.fixture
def sent_pipelines() -> list[tuple[str, list[tuple[str, dict[str, object]]]]]:
    return SENT_PIPELINES


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[2] Spark session for one test module; skips with the reason where pyspark or Java is missing,
    fails instead where ``MIA_REQUIRE_SPARK=1`` (CI)."""
    from mia_bridge.analysis.engines.spark import INSTALL_HINT, session, unavailable_reason

    reason = unavailable_reason("local[2]")
    if reason is not None:
        message = f"Spark engine unavailable: {reason} ({INSTALL_HINT})"
        if os.environ.get("MIA_REQUIRE_SPARK") == "1":
            pytest.fail(message)
        pytest.skip(message)
    active = session("local[2]", {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    yield active
    active.stop()


def assert_same_analysis(expected: Path, actual: Path) -> None:
    """Two analyses' outputs equal (Parquet: equal tables and schemas; the rest byte for byte), but for
    summary.json's ``inputs``, which must differ (one read the exports, the other a saved base)."""
    import json

    import pyarrow.parquet as pq

    from mia_bridge.analysis import saved_base

    names = sorted(p.name for p in expected.iterdir() if p.name != saved_base.FOLDER)
    assert names == sorted(p.name for p in actual.iterdir() if p.name != saved_base.FOLDER)
    for name in names:
        if name.endswith(".parquet"):
            want, got = pq.read_table(expected / name), pq.read_table(actual / name)
            assert got.schema == want.schema and got.equals(want), name
        elif name == "summary.json":
            want_summary = json.loads((expected / name).read_text("utf-8"))
            got_summary = json.loads((actual / name).read_text("utf-8"))
            assert want_summary.pop("inputs") != got_summary.pop("inputs")
            assert got_summary == want_summary
        else:
            assert (actual / name).read_bytes() == (expected / name).read_bytes(), name


def write_csv_export(path: Path, header: list[str], rows: list[list[str]], type_line: bool = False,
                     encoding: str = "utf-8-sig") -> Path:
    """A CSV export as Purview / Export-Csv write it (CRLF, optional ``#TYPE`` line)."""
    import csv

    with path.open("w", encoding=encoding, newline="") as handle:
        if type_line:
            handle.write("#TYPE Deserialized.Microsoft.Exchange.Management.SystemConfigurationTasks.AuditRecord\r\n")
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path
