"""``mia collect`` and ``mia investigate`` over both backends on the same seeded simulated tenant:
the same evidence bytes, the same exports and the same findings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mia_bridge.cli.app import main

RECORDS = "800"


# Run-specific files: journals and manifest (timings), the HTML report and investigation.json (the case
# path), the workbook (xlsx stores its creation time; the same rows are in the CSVs compared here).
# Run-specific: times of the run. The enrichment's query log, raw-answer log and summary carry the time
# of each query; its results (exposed_messages.csv, affected_parties.csv) are compared.
SKIP = ("state/", "manifest.json", "report.html", "investigation.json", "sparrow/Summary_Export.xlsx",
        "enrich/summary.json", "enrich/raw/", "enrich/message_trace_queries.jsonl")
PERIOD = ["--start", "2025-06-01", "--end", "2027-01-01"]


def _digests(case: Path) -> dict[str, str]:
    """sha256 of every file in a case folder, except run-specific ones."""
    out = {}
    for path in sorted(case.rglob("*")):
        rel = path.relative_to(case).as_posix()
        if path.is_file() and not rel.startswith(SKIP):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_collect_writes_identical_evidence(tmp_path: Path) -> None:
    cases = {}
    for backend in ("psrp", "rest"):
        case = tmp_path / backend
        code = main(
            [
                "collect",
                "--sim",
                "--backend",
                backend,
                "--sim-records",
                RECORDS,
                "--out",
                str(case),
                "--start",
                "2025-01-01",
                "--end",
                "2027-01-01",
            ]
        )
        assert code == 0
        cases[backend] = case
    assert _digests(cases["psrp"]) == _digests(cases["rest"])
    manifests = {b: json.loads((c / "manifest.json").read_text()) for b, c in cases.items()}
    text = json.dumps(manifests["rest"])
    assert '"backend": "rest"' in text and "PRIVATE KEY" not in text


@pytest.mark.slow
def test_investigate_gives_identical_exports_and_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {}
    digests = {}
    for backend in ("psrp", "rest"):
        # Both runs write to the same folder (the first is moved away after): the analysis names the evidence
        # files it read, by their path.
        case = tmp_path / "case"
        args = ["investigate", "--sim", "--backend", backend, "--sim-records", RECORDS]
        code = main([*args, "--tenant", "contoso.onmicrosoft.com", *PERIOD, "--out", str(case)])
        captured = capsys.readouterr()
        assert code in (0, 3), captured.err
        outputs[backend] = [line.strip() for line in captured.out.splitlines() if line.strip().startswith("[")]
        digests[backend] = _digests(case)
        case.rename(tmp_path / backend)
    assert outputs["psrp"] == outputs["rest"]
    assert outputs["rest"], "the compromised scenario must yield findings"
    assert digests["psrp"] == digests["rest"]
    assert any(name.startswith("sparrow/") for name in digests["rest"])
    assert {"exposed_messages.csv", "affected_parties.csv"} <= set(digests["rest"])
