"""`mia doctor --json` and `mia doctor --deep` (issue 12 point 7) against the simulated tenant, through the
real pypsrp client and the REST backend: every check as JSON, and each deep probe as expected or different
(with what that changes), in the table, in --json and in doctor.json."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mia_bridge.cli.app import main

DEEP = ("Serialisation depth", "Command visibility", "Plain call completeness", "ResultCount",
        "Message trace precision", "Dehydration")


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", "--sim", "--sim-records", "1500", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("backend", ["psrp", "rest"])
def test_json_lists_every_check_for_every_mode(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _json(["--backend", backend], capsys)
    assert code == 0 and doc["mode"] == "basic" and doc["status"] == "ok"
    assert doc["checks"] and all(set(c) == {"name", "status", "detail"} for c in doc["checks"])
    assert all(c["status"] in ("ok", "warn", "fail") for c in doc["checks"])


@pytest.mark.parametrize("backend", ["psrp", "rest"])
def test_deep_reports_the_simulators_default_quirks_as_different(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _json(["--backend", backend, "--deep", "--out", str(tmp_path)], capsys)
    assert code == 0
    deep = {c["name"]: c for c in doc["checks"] if "as_expected" in c}
    assert set(deep) == set(DEEP)
    assert deep["Plain call completeness"]["as_expected"] is False and "capped" in deep["Plain call completeness"][
        "changes"]
    assert deep["ResultCount"]["as_expected"] is False and "echoes" in deep["ResultCount"]["observed"]
    assert deep["Message trace precision"]["as_expected"] is True
    assert deep["Dehydration"]["as_expected"] is True
    written = json.loads((tmp_path / "doctor.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in written["checks"]] == [c["name"] for c in doc["checks"]]


def test_deep_on_a_kind_tenant_and_on_a_dehydrated_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the search quirks the plain call and ResultCount behave as documented. A tenant with
    ingestion off is dehydrated (the simulator's default there): a warning saying what --enable-ingestion
    will do. doctor.json lands in the current folder by default; the table says which probes differ."""
    monkeypatch.chdir(tmp_path)
    code, doc = _json(["--deep", "--sim-quirk", "none", "--sim-records", "4000"], capsys)
    deep = {c["name"]: c for c in doc["checks"] if "as_expected" in c}
    assert code == 0 and deep["Plain call completeness"]["as_expected"] is True
    assert deep["ResultCount"]["as_expected"] is True
    code = main(["doctor", "--sim", "--sim-records", "1500", "--deep", "--sim-ingestion-off"])
    table = capsys.readouterr().out
    assert code == 3 and "DIFFERENT" in table and "Dehydration" in table
    written = json.loads((tmp_path / "doctor.json").read_text(encoding="utf-8"))
    dehydration = next(c for c in written["checks"] if c["name"] == "Dehydration")
    assert dehydration["status"] == "warn" and "Enable-OrganizationCustomization" in dehydration["changes"]


def test_deep_on_the_simulator_looks_back_from_the_simulated_tenants_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulated records sit in a fixed month: the deep probes look back from the end of that month, not
    from the real clock, so they judge the same way in a year (the probe once found too few records to judge
    a cap when the month was 36 days old). Here the real clock stands two years after the simulated month."""
    from mia_bridge.cli.commands import doctor_deep

    class _Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> _Later:
            return cls(2028, 12, 1, tzinfo=tz or dt.UTC)

    monkeypatch.setattr(doctor_deep, "dt", SimpleNamespace(datetime=_Later, timedelta=dt.timedelta, UTC=dt.UTC))
    code, doc = _json(["--deep", "--out", str(tmp_path)], capsys)
    deep = {c["name"]: c for c in doc["checks"] if "as_expected" in c}
    assert code == 0 and deep["Plain call completeness"]["as_expected"] is False
    assert "capped" in deep["Plain call completeness"]["changes"]
