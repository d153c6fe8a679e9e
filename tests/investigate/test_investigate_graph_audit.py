"""PROOF: ``mia investigate --source graph-audit`` (REST) finds what ``--source ual`` finds, search by search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mia_bridge.cli.app import main
from mia_bridge.evidence.store import read_records


def test_investigate_through_graph_audit_matches_ual(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = {}
    for source in ("graph-audit", "ual"):
        case = tmp_path / source
        code = main(["investigate", "--demo", "--backend", "rest", "--sim-records", "3000", "--source", source,
                     "--out", str(case), "--yes", "--json"])
        assert code == 0
        verdicts[source] = json.loads(capsys.readouterr().out)["verdict"]
    assert verdicts["graph-audit"] == verdicts["ual"]
    assert verdicts["ual"]["level"] == "compromised"
    files = sorted(p.name for p in (tmp_path / "ual" / "evidence").glob("*.jsonl"))
    assert files == sorted(p.name for p in (tmp_path / "graph-audit" / "evidence").glob("*.jsonl"))
    for name in files:
        ual = {r.get("Id") for r in read_records(tmp_path / "ual" / "evidence" / name)}
        graph = {r.get("Id") for r in read_records(tmp_path / "graph-audit" / "evidence" / name)}
        assert graph == ual, name
    manifest = json.loads((tmp_path / "graph-audit" / "manifest.json").read_text())
    assert manifest["collection"]["runs"][-1]["options"]["source"] == "graph-audit"
