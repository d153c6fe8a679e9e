"""Golden: ``mia investigate --demo`` writes sparrow/ byte for byte as Sparrow.ps1 under PowerShell 5.1.

Each mode the issue names (all apps and one app, with and without Audit Premium, ``--license-policy
sparrow``, another ``--delimiter``) is run through the real CLI against the simulated tenant; then every
file under sparrow/ is compared, whole, with the file the independent model in ``sparrow_oracle``
derives from the case's raw evidence and directory output. The set of files must match too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sparrow_oracle as oracle

from mia_bridge.cli.app import main
from mia_bridge.evidence.store import read_records
from mia_bridge.sim.scenario import build_tenant
from mia_bridge.sim.tenant import TenantConfig

RECORDS = "600"


def _attacker_app() -> str:
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=int(RECORDS))
    assert tenant.truth is not None
    return tenant.truth.attacker_app_ids[0]


def _evidence(case: Path, name: str) -> list[dict[str, Any]]:
    path = case / "evidence" / f"{name}.jsonl"
    return read_records(path) if path.exists() else []


def _output(case: Path, name: str) -> Any:
    return json.loads((case / "directory" / f"{name}.json").read_text(encoding="utf-8"))


def expected_files(case: Path, *, app_id: str | None, delimiter: str) -> dict[str, bytes]:
    """What Sparrow.ps1 writes for this case's records, by the oracle."""
    domains = _output(case, "domains")["output"]
    federation_path = case / "directory" / "domain_federation.json"
    federation = json.loads(federation_path.read_text(encoding="utf-8")) if federation_path.exists() else {}
    flagged = oracle.flagged_domains(domains, federation)
    chunks: dict[str, list[list[dict[str, Any]]]] = {}
    columns: dict[str, list[str]] = {}
    for name, file, cols in oracle.TENANT_SEARCHES:
        records = _evidence(case, name)
        if name == "sparrow-06-saml":
            records = [r for r in records if len(str(r.get("UserId")).split("@")) > 1
                       and str(r["UserId"]).split("@")[1].lower() in flagged]  # fmt: skip
        chunks.setdefault(file, []).append(records)
        columns[file] = cols
    sps = _output(case, "service_principals")["output"]
    if app_id:
        apps = [(app_id, "AppInvestigations/MailItems_Operations_Export.csv",
                 "AppInvestigations/FileItems_Operations_Export.csv")]  # fmt: skip
    else:
        apps = []
        for sp in sps:
            if sp.get("ServicePrincipalType") == "Application":
                name = sp["DisplayName"]
                assert name.isprintable() and not set(name) & set('<>:"/\\|?*.')  # plain names: used as they are
                apps.append((sp["AppId"], f"AppInvestigations/{name}/MailItems_Operations_Export.{sp['AppId']}.csv",
                             f"AppInvestigations/{name}/FileItems_Operations_Export.{sp['AppId']}.csv"))  # fmt: skip
    for app, mail_file, file_file in apps:
        chunks[mail_file] = [_evidence(case, f"app-{app.lower()}-mailitems")]
        columns[mail_file] = oracle.EXO
        chunks[file_file] = [_evidence(case, f"app-{app.lower()}-fileitems")]
        columns[file_file] = oracle.SHAREPOINT
    out = {}
    for file, parts in chunks.items():
        data = oracle.ual_file(parts, columns[file], delimiter)
        if data is not None:
            out[file] = data
    out["Domain_List.csv"] = oracle.domain_list(domains, delimiter)
    assignments = _output(case, "app_role_assignments")
    out["ApplicationGraphPermissions.csv"] = oracle.graph_permissions(sps, assignments, delimiter)
    return out


MODES = {
    "all-apps-premium": [],
    "all-apps-standard-sparrow-semicolon": ["--sim-no-premium", "--license-policy", "sparrow", "--delimiter", ";"],
    "one-app-premium": ["--app-id", "ATTACKER"],
    "one-app-standard-sparrow": ["--app-id", "ATTACKER", "--sim-no-premium", "--license-policy", "sparrow"],
    "all-apps-rest-backend": ["--backend", "rest"],  # the REST path's Graph client reads the directory
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_demo_sparrow_files_are_byte_identical(mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = list(MODES[mode])
    app = _attacker_app() if "ATTACKER" in args else None
    args = [app if a == "ATTACKER" and app else a for a in args]
    delimiter = args[args.index("--delimiter") + 1] if "--delimiter" in args else ","
    case = tmp_path / "case"
    code = main(["investigate", "--demo", "--sim-records", RECORDS, "--out", str(case), "--json", *args])
    summary = json.loads(capsys.readouterr().out)["sparrow"]
    assert code in (0, 3)
    export = case / "sparrow"
    written = {p.relative_to(export).as_posix(): p.read_bytes() for p in export.rglob("*.csv")}
    expected = expected_files(case, app_id=app, delimiter=delimiter)
    assert sorted(written) == sorted(expected)
    for name, data in expected.items():
        assert written[name] == data, name
    assert summary["files"] == len(written) + 1 and summary["not_written"] == {}  # + Summary_Export.xlsx
    pslogin = expected["PSLogin_Operations_Export.csv"]
    assert summary["rows"]["PSLogin_Operations_Export.csv"] == pslogin.count(b"\r\n") - 1  # lines but the header
    # the modes differ as Sparrow's answers do: MailItems only with E5/G5 under the sparrow policy
    mail = [n for n in written if "MailItems" in n]
    assert (mail == []) == ("sparrow" in args)
    assert "SAMLToken_Operations_Export.csv" in written and (export / "Summary_Export.xlsx").exists()
