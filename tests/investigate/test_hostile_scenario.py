"""The hostile scenario end to end: the attacker's names are spreadsheet formulas and terminal escapes.

``mia investigate --demo`` runs (real pypsrp client, the project's PSRP server) against the simulated tenant
whose attacker named its app, inbox rule, folder, user agents and mail subjects as attacks. Every CSV the
run writes outside ``sparrow/`` must hold no cell starting with a formula character, and nothing the console
prints may hold an ESC byte (or a C1 CSI); the true values stay in Parquet and JSON.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mia_bridge.cli.app import main
from mia_bridge.csv_safety import FORMULA_START
from mia_bridge.evidence import verify_case
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.scenario_hostile import FORMULA_SUBJECTS, HOSTILE_NAMES
from mia_bridge.sim.tenant import TenantConfig

RECORDS = 1500


@pytest.fixture(scope="module")
def hostile_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    tenant = build_tenant(TenantConfig(), scenario="hostile", records=RECORDS)
    case = tmp_path_factory.mktemp("hostile") / "case"
    mp = pytest.MonkeyPatch()
    mp.setattr("mia_bridge.sim.backend.tenant_for", lambda conn, options, **_: tenant)
    import io
    import sys

    out, err = io.StringIO(), io.StringIO()
    mp.setattr(sys, "stdout", out)
    mp.setattr(sys, "stderr", err)
    try:
        code = main(["investigate", "--demo", "--out", str(case)])
    finally:
        mp.undo()
    assert code in (0, 3), err.getvalue()
    return case, out.getvalue(), err.getvalue()


def _csv_cells(case: Path) -> list[tuple[Path, str]]:
    cells = []
    for path in sorted(case.rglob("*.csv")):
        if "sparrow" in path.relative_to(case).parts:
            continue  # sparrow/ reproduces Sparrow's files exactly (its own issue)
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                cells.extend((path, cell) for cell in row)
    return cells


def test_no_csv_cell_outside_sparrow_starts_with_a_formula_character(hostile_case: tuple[Path, str, str]) -> None:
    case, _, _ = hostile_case
    cells = _csv_cells(case)
    written = {p.relative_to(case).as_posix() for p, _ in cells}
    assert {"exposed_messages.csv", "affected_parties.csv", "timeline.csv", "analysis/items.csv"} <= written
    bad = [(p.relative_to(case).as_posix(), c[:60]) for p, c in cells if c.startswith(FORMULA_START)]
    assert bad == []
    # the attacks did reach the CSVs (neutralised), so the check above is not vacuous
    values = {c for _, c in cells}
    assert any("'" + s in values for s in FORMULA_SUBJECTS)  # exposed_messages.csv subjects
    assert HOSTILE_NAMES.hidden_folder in values  # a folder path: starts with a backslash, kept as it is


def test_the_hostile_case_verifies(hostile_case: tuple[Path, str, str]) -> None:
    report = verify_case(hostile_case[0])
    assert report.ok and report.unlisted == [], report.problems


def test_parquet_and_json_keep_the_true_values(hostile_case: tuple[Path, str, str]) -> None:
    case, _, _ = hostile_case
    folders = set(pq.read_table(case / "analysis" / "items.parquet", columns=["folder_path"]).column(0).to_pylist())
    assert HOSTILE_NAMES.hidden_folder in folders  # unaltered: no quote, the escape bytes kept
    findings = json.loads((case / "findings.json").read_text(encoding="utf-8"))
    assert any(HOSTILE_NAMES.rule in f["title"] for f in findings["findings"])


def test_the_console_output_holds_no_escape_byte(hostile_case: tuple[Path, str, str]) -> None:
    _, out, err = hostile_case
    for stream in (out, err):
        assert "\x1b" not in stream and "\x9b" not in stream and "\x07" not in stream
    # the hostile names were printed, visibly escaped (so the check above is not vacuous)
    assert "\\x1b" in out
    assert "[red]rule[/]" in out  # markup printed as text


def test_sim_hostile_flag_is_the_scenario() -> None:
    a = build_tenant(TenantConfig(), scenario="compromised", records=800, hostile=True)
    b = build_tenant(TenantConfig(), scenario="hostile", records=800)
    assert a.truth is not None and b.truth is not None
    assert a.truth.attacker_app_names == b.truth.attacker_app_names == [HOSTILE_NAMES.app]
    assert HOSTILE_NAMES.hidden_folder in a.truth.synced_folders

