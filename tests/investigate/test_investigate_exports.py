"""``mia investigate --from-exports``: the simulated tenant's records exported as responders receive them
(Purview CSV, raw JSON lines, Sentinel OfficeActivity rows, mixed, gzipped), investigated without the tenant,
must give what the tenant run gives on the same scenario (attacker IPs, apps, accounts, exposed message ids;
nothing benign attributed), preserve the inputs as evidence, and say what the exports cannot answer.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from export_builders import (
    write_jsonl,
    write_purview_csv,
    write_sentinel_csv,
    write_sentinel_json,
)
from test_investigate_sim import END, RecordingUI, _options, _run

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.cli.app import main
from mia_bridge.enrich.api import EnrichOptions, enrich_case
from mia_bridge.evidence import verify_case
from mia_bridge.evidence.manifest import sha256_file
from mia_bridge.investigate.offline import safe_name
from mia_bridge.investigate.offline_run import run_offline_investigation
from mia_bridge.investigate.pipeline import InvestigateOptions, InvestigationResult
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.scenario import DEFAULT_START, build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig

RECORDS = 1500
Writer = Callable[[Path, list[dict[str, Any]]], list[Path]]


def _records(tenant: Tenant) -> list[dict[str, Any]]:
    return [json.loads(text) for text in tenant.store.snapshot()]


def _offline(case: Path, inputs: list[Path], **kw: Any) -> InvestigationResult:
    """``start=None``: the period is the whole days the exports cover (as without --start/--end)."""
    base: dict[str, Any] = {"tenant": "(from exports)", "out_dir": case, "start": DEFAULT_START, "end": END,
                            "exports": tuple(inputs), "all_apps": True}  # fmt: skip
    base.update(kw)
    return run_offline_investigation(InvestigateOptions(**base), RecordingUI(), end_given=base["start"] is not None)


def _attributed(result: InvestigationResult) -> set[str]:
    assert result.findings is not None
    return {rid for f in result.findings.attacker_findings for rid in f.record_ids}


@pytest.fixture(scope="module")
def compromised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tenant, InvestigationResult]:
    """The scenario and the tenant run on it (through the PSRP simulator), to compare against."""
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=RECORDS)
    case = tmp_path_factory.mktemp("tenant") / "case"
    return tenant, _run(tenant, _options(case, all_apps=True))


def _purview(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    return [write_purview_csv(folder / "Audit search export.csv", records)]


def _jsonl_gz(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    return [write_jsonl(folder / "ual.jsonl.gz", records, gz=True)]


def _sentinel(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    return [write_sentinel_csv(folder / "OfficeActivity.csv", records)]


def _mixed(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    """Directory events in a Purview CSV, Exchange in Sentinel JSON rows (gzipped), the rest in JSON lines;
    a slice of records in two exports at once (counted once)."""
    aad = [r for r in records if str(r.get("Workload", "")).startswith("AzureActiveDirectory")]
    exchange = [r for r in records if r.get("Workload") == "Exchange"]
    rest = [r for r in records if r not in aad and r not in exchange]
    return [write_purview_csv(folder / "aad.csv", aad),
            write_sentinel_json(folder / "exchange.json.gz", exchange, gz=True),
            write_jsonl(folder / "rest.jsonl", rest + exchange[:50])]  # fmt: skip


@pytest.mark.parametrize("writer", [_purview, _jsonl_gz, _sentinel, _mixed], ids=lambda w: w.__name__.strip("_"))
def test_exports_find_what_the_tenant_run_finds(
    compromised: tuple[Tenant, InvestigationResult], writer: Writer, tmp_path: Path
) -> None:
    tenant, online = compromised
    truth = tenant.truth
    assert truth is not None and online.findings is not None
    inputs = writer(tmp_path, _records(tenant))
    result = _offline(tmp_path / "case", inputs)
    assert result.findings is not None
    for key in ("ips", "apps", "accounts"):
        assert result.summary["attacker"][key] == online.summary["attacker"][key], key
    assert set(result.summary["exposed_message_ids"]) == set(online.summary["exposed_message_ids"])
    assert set(result.summary["exposed_message_ids"]) == truth.read_message_ids
    assert result.summary["synced_folders"] == online.summary["synced_folders"]
    attributed = _attributed(result)
    assert attributed <= truth.attacker_record_ids()  # nothing benign attributed
    assert attributed == _attributed(online)
    assert not attributed & set(truth.benign_lookalike_ids)
    # the same searches found the same records (Sparrow's criteria applied to the exports)
    online_counts = {s["name"]: s.get("records") for s in online.summary["searches"]}
    offline_counts = {s["name"]: s.get("records") for s in result.summary["searches"]}
    for name in [n for n in online_counts if n.startswith(("sparrow-", "mia-"))]:
        assert offline_counts[name] == online_counts[name], name
    # the summary has the tenant run's shape (and says where the records came from)
    assert set(online.summary) <= set(result.summary)
    assert result.summary["source"] == "exports" and online.summary["source"] == "tenant"
    assert result.verdict["level"] == "compromised"
    assert result.exit_code == 0, [s for s in result.summary["steps"] if s["attention"]]


def test_inputs_are_preserved_hashed_and_verified(compromised: tuple[Tenant, InvestigationResult],
                                                  tmp_path: Path) -> None:
    tenant, _ = compromised
    inputs = _mixed(tmp_path, _records(tenant))
    hostile = tmp_path / "..evil name; $(rm -rf) <x>.jsonl"
    hostile.write_bytes(inputs[2].read_bytes())
    inputs[2] = hostile
    case = tmp_path / "case"
    result = _offline(case, inputs)
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    for index, source in enumerate(inputs, start=1):
        rel = f"evidence/exports/{safe_name(str(source), index)}"
        assert (case / rel).read_bytes() == source.read_bytes()  # unchanged
        assert manifest["files"][rel]["sha256"] == sha256_file(source)
        assert manifest["files"][rel]["kind"] == "evidence-export"
        assert manifest["exports"]["inputs"][rel]["source"] == str(source)
    section = manifest["investigation"]
    assert section["source"] == "exports" and section["exports"]["records_read"] == result.exports.read
    assert tenant.truth is not None
    assert section["inferred"]["federated_domains"] == tenant.truth.federated_domains
    assert all("/" not in p.name and not p.name.startswith(".") for p in (case / "evidence/exports").iterdir())
    assert verify_case(case).ok
    # the duplicated slice is counted once, and the counts reconcile
    exports = result.exports
    assert exports.duplicates == 50 and exports.read == exports.parsed + len(exports.quarantined)
    assert exports.unique == RECORDS
    # Sparrow's files, written per search as a tenant run writes them (the SAML file: the federated domain only)
    saml = list(csv.DictReader((case / "sparrow/SAMLToken_Operations_Export.csv").open(encoding="utf-8")))
    assert tenant.truth is not None
    assert {r["UserId"].split("@")[1] for r in saml} == set(tenant.truth.federated_domains)
    for name in ("Domain_List.csv", "ApplicationGraphPermissions.csv"):  # they need the tenant: not invented
        assert (case / "sparrow" / name).stat().st_size == 0  # written empty, as Sparrow writes an empty listing
    # tampering with a preserved export is caught
    copy = case / "evidence/exports" / safe_name(str(inputs[0]), 1)
    copy.write_bytes(copy.read_bytes() + b"\n")
    assert not verify_case(case).ok


def test_benign_export_has_no_attacker_findings(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(seed=11), scenario="benign", records=RECORDS)
    result = _offline(tmp_path / "case", _purview(tmp_path, _records(tenant)))
    assert result.findings is not None and result.findings.attacker_findings == []
    assert result.summary["attacker"] == {"ips": [], "apps": [], "accounts": []}
    assert result.summary["exposed_message_ids"] == []
    assert result.verdict["level"] == "no evidence"
    assert "No activity was attributed to an attacker" in result.verdict["headline"]


def test_an_export_without_directory_events_or_mail_items_says_what_it_cannot_answer(
    compromised: tuple[Tenant, InvestigationResult], tmp_path: Path
) -> None:
    """Sentinel's OfficeActivity holds no Entra ID events; this one lacks MailItemsAccessed too."""
    tenant, _ = compromised
    records = [r for r in _records(tenant) if not str(r.get("Workload", "")).startswith("AzureActiveDirectory")
               and r.get("Operation") != "MailItemsAccessed"]  # fmt: skip
    result = _offline(tmp_path / "case", [write_sentinel_json(tmp_path / "oa.json", records)], start=DEFAULT_START)
    steps = {s["name"]: s for s in result.summary["steps"]}
    consent = steps["Search 5: OAuth permission grants and consent"]
    assert "cannot answer" in consent["reason"] and "AzureActiveDirectory" in consent["reason"] and consent["attention"]
    assert "no MailItemsAccessed records" in steps["MailItemsAccessed analysis"]["reason"]
    assert any("MailItemsAccessed" in limit for limit in result.limits)
    report = (tmp_path / "case/report.html").read_text(encoding="utf-8")
    assert "cannot be told from them" in report and "cannot answer" in report
    assert "whether mail was read cannot be told" in result.verdict["headline"]
    assert any(limit.startswith("Searches the exports cannot answer (they hold no AzureActiveDirectory records")
               for limit in result.limits)
    assert result.exit_code == 3  # complete, with gaps worth attention


def test_period_beyond_the_export_is_a_limit(compromised: tuple[Tenant, InvestigationResult], tmp_path: Path) -> None:
    from datetime import timedelta

    tenant, _ = compromised
    result = _offline(tmp_path / "case", _jsonl_gz(tmp_path, _records(tenant)),
                      start=DEFAULT_START - timedelta(days=60), end=END + timedelta(days=30))
    assert any("The exports begin at" in limit for limit in result.limits)
    assert any("The exports end at" in limit for limit in result.limits)
    period = next(s for s in result.summary["steps"] if s["name"] == "Period")
    assert period["attention"] and "The exports begin at" in period["reason"]


def test_enrich_works_on_an_offline_case_with_tenant_access(
    compromised: tuple[Tenant, InvestigationResult], tmp_path: Path
) -> None:
    tenant, _ = compromised
    truth = tenant.truth
    assert truth is not None
    case = tmp_path / "case"
    result = _offline(case, _purview(tmp_path, _records(tenant)))
    skipped = [s for s in result.summary["steps"] if s["name"] == "Affected parties (message trace)"]
    assert skipped and "mia enrich CASE" in skipped[0]["reason"]
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        enriched = enrich_case(session.backend, case, EnrichOptions(allow_mailbox_metadata=True))
    accessed = {m.internet_message_id for m in enriched.messages if m.exposure == "accessed"}
    assert accessed == truth.read_message_ids
    assert all(m.meta is not None for m in enriched.messages if m.exposure == "accessed")
    assert verify_case(case).ok


def test_cli_from_exports_json_and_bad_inputs(compromised: tuple[Tenant, InvestigationResult], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    tenant, online = compromised
    good = write_jsonl(tmp_path / "good.jsonl", _records(tenant))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good.read_text(encoding="utf-8") + '{"Id": "x", "Operation": \n', encoding="utf-8")
    code = main(["investigate", "--from-exports", str(broken), "--all-apps", "--tenant-domain", "contoso.com",
                 "--tenant-domain", "contoso-corp.com", "--out", str(tmp_path / "case"), "--json"])  # fmt: skip
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert code == 3  # a quarantined record is worth attention
    assert summary["attacker"] == online.summary["attacker"]
    read = next(s for s in summary["steps"] if s["name"] == "Exports read")
    assert "1 quarantined" in read["reason"]
    err = " ".join(out.err.split())
    assert "broken.jsonl" in err and "invalid JSON" in err
    # bad inputs: clear errors naming the file, never a traceback
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 10)
    for args, expected in (
        ([str(tmp_path / "missing.csv")], "missing.csv: no such file"),
        ([str(junk)], "junk.bin"),
    ):
        code = main(["investigate", "--from-exports", *args, "--out", str(tmp_path / f"bad{len(args)}{code}")])
        err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
        assert code in (1, 2) and expected in err and "Traceback" not in err, err
    before = {p: p.read_bytes() for p in online.case_dir.glob("*.json")}
    code = main(["investigate", "--from-exports", str(good), "--out", str(online.case_dir)])  # a tenant case
    assert code == 2 and "collected from the tenant" in " ".join(capsys.readouterr().err.split())
    assert {p: p.read_bytes() for p in online.case_dir.glob("*.json")} == before  # nothing written into it
    code = main(["investigate", "--demo", "--sim-records", "300", "--out", str(tmp_path / "case")])  # and back
    assert code == 2 and "investigated from exports" in " ".join(capsys.readouterr().err.split())
    code = main(["investigate", "--from-exports", str(good), "--demo", "--out", str(tmp_path / "x")])
    assert code == 2 and "cannot be used with --from-exports" in " ".join(capsys.readouterr().err.split())


def test_old_sparrow_files_are_investigated_and_their_limits_said(
    compromised: tuple[Tenant, InvestigationResult], tmp_path: Path
) -> None:
    """A client sends the Sparrow CSVs of an earlier run (here the tenant run's): the attacker is found from
    them, and what Sparrow never exported (inbox rules, forwarding, mailbox logins) is a limit, not "none".

    Sparrow's files hold the mail read per application of the directory; the attacker's Outlook sync from its
    second IP is in none of them, so only the first IP can be found, and nothing benign is taken for it."""
    tenant, online = compromised
    truth = tenant.truth
    assert truth is not None
    inputs = sorted((online.case_dir / "sparrow").rglob("*_Operations_Export*.csv"))
    result = _offline(tmp_path / "case", inputs)
    assert result.summary["attacker"]["ips"] == [truth.attacker_ips[0]]
    assert result.summary["attacker"]["apps"] == online.summary["attacker"]["apps"]
    # Sparrow wrote the ids without their angle brackets: the same messages
    assert {i.strip("<>") for i in result.summary["exposed_message_ids"]} == {i.strip("<>") for i in
                                                                              truth.read_message_ids}
    assert _attributed(result) <= truth.attacker_record_ids()
    steps = {s["name"]: s for s in result.summary["steps"]}
    changes = steps["Search +: Inbox rules, forwarding and mailbox permission grants"]
    assert "they are Sparrow's files" in changes["reason"] and changes["attention"]
    assert result.exports.duplicates > 0  # 8a/8b/8c and the per-app files overlap: counted once


def test_search_criteria_are_the_services() -> None:
    """Search-UnifiedAuditLog's matching, on records as the exports spell them."""
    from mia_bridge.investigate.offline import matches
    from mia_bridge.investigate.plan import SearchSpec

    consent = {"Operation": "Consent to application.", "RecordType": "AzureActiveDirectory", "UserId": "A@x.com",
               "ExtendedProperties": [{"Name": "UserAgent", "Value": "Microsoft WinRM Client"}]}
    text = lambda: json.dumps(consent).lower()  # noqa: E731
    assert matches(SearchSpec("s", "t", ("consent TO application",), ("AzureActiveDirectory",)), consent, text)
    assert matches(SearchSpec("s", "t", ("Consent to application",), ("azureactivedirectory",)), dict(consent,
                   RecordType=8), text)  # fmt: skip
    assert not matches(SearchSpec("s", "t", ("Consent to application",), ("ExchangeAdmin",)), consent, text)
    assert matches(SearchSpec("s", "t", free_text="WINRM"), consent, text)
    assert not matches(SearchSpec("s", "t", free_text="PowerShell"), consent, text)
    assert matches(SearchSpec("s", "t", ("Consent to application",), user_ids=("a@X.com",)), consent, text)
    assert not matches(SearchSpec("s", "t", ("Consent to application",), user_ids=("b@x.com",)), consent, text)


def test_records_no_search_returns_are_counted_not_kept(compromised: tuple[Tenant, InvestigationResult],
                                                        tmp_path: Path) -> None:
    from mia_bridge.investigate.offline import preserve_exports, read_exports, run_offline_searches
    from mia_bridge.investigate.offline_run import candidate_searches
    from mia_bridge.investigate.plan import SAML_SEARCH, SPARROW_TENANT_SEARCHES, app_searches, mailbox_searches
    from mia_bridge.investigate.searches import SearchRun

    tenant, _ = compromised
    assert tenant.truth is not None
    app = tenant.truth.attacker_app_ids[0]
    files = preserve_exports(tmp_path, _jsonl_gz(tmp_path, _records(tenant)))
    for options in ({"users": ("megan.bowen@contoso.com",)}, {"app_id": app}, {}):
        opts = InvestigateOptions(tenant="x", out_dir=tmp_path, start=None, end=END, **options)
        everything, kept = read_exports(files), read_exports(files, candidate_searches(opts))
        assert kept.unique == everything.unique == RECORDS and len(kept.records) < len(everything.records)
        assert (kept.first, kept.last, kept.workloads) == (everything.first, everything.last, everything.workloads)
        specs = [*SPARROW_TENANT_SEARCHES, SAML_SEARCH, *mailbox_searches(opts.users),
                 *(app_searches(app, None) if opts.app_id else ())]  # fmt: skip
        counts = []
        for exports in (everything, kept):
            runs = [SearchRun(s) for s in specs]
            run_offline_searches(runs, exports, start=DEFAULT_START, end=END, evidence_dir=tmp_path)
            counts.append([[r["Id"] for r in run.records] for run in runs])
        assert counts[0] == counts[1]


def test_real_sentinel_exports(realdata: Callable[..., Path], tmp_path: Path) -> None:
    """The public Sentinel training-lab OfficeActivity exports: three inbox rules for review (none forwards
    outside the organisation), no Entra ID events (so those searches cannot be answered), a verified case."""
    inputs = [realdata("sentinel-training-lab", "office_activity.csv"),
              realdata("sentinel-training-lab", "office_activity_inbox_rule.csv")]  # fmt: skip
    case = tmp_path / "case"
    result = _offline(case, inputs, start=None, end=END, all_apps=False)
    assert result.findings is not None and result.findings.attacker_findings == []
    assert sorted(f.category for f in result.findings.findings) == ["inbox-rule"] * 3
    assert result.verdict["level"] == "no evidence"
    assert any("no AzureActiveDirectory records" in limit for limit in result.limits)
    assert result.exports.read == result.exports.parsed and result.exit_code == 3
    assert verify_case(case).ok


def test_cli_export_then_enrich_with_the_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The responder's path: `mia investigate --from-exports` on the simulated tenant's dump, later
    `mia enrich CASE --sim` once there is access to that tenant."""
    from mia_bridge.sim.backend import SimOptions, tenant_for

    tenant = tenant_for(ConnectionSettings(), SimOptions(records=RECORDS))
    assert tenant.truth is not None
    dump = tmp_path / "dump.jsonl"
    tenant.dump_truth(dump)
    case = tmp_path / "case"
    assert main(["investigate", "--from-exports", str(dump), "--out", str(case), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["exposed_message_ids"]) == tenant.truth.read_message_ids
    assert summary["period"]["start"].startswith(DEFAULT_START.date().isoformat())  # the exports' whole days
    code = main(["enrich", str(case), "--sim", "--sim-records", str(RECORDS), "--allow-mailbox-metadata", "--json"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader((case / "exposed_messages.csv").open(encoding="utf-8")))
    assert {r["internet_message_id"] for r in rows if r["exposure"] == "accessed"} == tenant.truth.read_message_ids
    assert all(r["sender"] for r in rows if r["exposure"] == "accessed")
    assert main(["verify", str(case)]) == 0


def test_the_whole_record_is_kept_whichever_export_comes_first(
    compromised: tuple[Tenant, InvestigationResult], tmp_path: Path
) -> None:
    """Sparrow's column subsets given before the full dump: the records kept are the dump's, so the result
    is the full export's (the Outlook sync's IP included)."""
    tenant, online = compromised
    sparrow = sorted((online.case_dir / "sparrow").rglob("*_Operations_Export*.csv"))
    full = _jsonl_gz(tmp_path, _records(tenant))
    result = _offline(tmp_path / "case", [*sparrow, *full])
    assert result.summary["attacker"] == online.summary["attacker"]
    assert set(result.summary["exposed_message_ids"]) == set(online.summary["exposed_message_ids"])
    assert result.exports.unique == RECORDS and result.exports.duplicates > 0
    whole = {r["Id"]: r for r in _records(tenant)}
    assert all(record == whole[record["Id"]] for record in result.exports.records)  # not Sparrow's columns


def test_redacted_offline_package(compromised: tuple[Tenant, InvestigationResult], tmp_path: Path) -> None:
    """--hash-addresses --redact-subjects offline: no account of the scenario in any derived file; the exports'
    copies (raw evidence) stay as received."""
    import zipfile

    import pandas as pd

    from mia_bridge.evidence.redaction import CHAIN_OF_CUSTODY, RAW_EVIDENCE

    tenant, _ = compromised
    truth = tenant.truth
    assert truth is not None
    inputs = _purview(tmp_path, _records(tenant))
    case = tmp_path / "case"
    result = _offline(case, inputs, redact_subjects=True, hash_addresses=True)
    accounts = {a.lower() for a in (*truth.victims, truth.compromised_admin, *truth.benign_users[:20])}
    texts = {}
    for path in sorted(case.rglob("*")):
        rel = path.relative_to(case).as_posix()
        if not path.is_file() or rel.startswith(RAW_EVIDENCE) or rel.startswith(CHAIN_OF_CUSTODY):
            continue
        if path.suffix == ".parquet":
            texts[rel] = str(pd.read_parquet(path).to_csv()).lower()
        elif path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                texts[rel] = "".join(book.read(n).decode("utf-8", "replace") for n in book.namelist()).lower()
        else:
            texts[rel] = path.read_bytes().decode("utf-8", "replace").lower()
    assert {"report.html", "findings.json", "timeline.csv", "investigation.json", "analysis/records.parquet",
            "sparrow/Summary_Export.xlsx", "exposed_messages.csv"} <= set(texts)
    leaks = {rel: sorted(a for a in accounts if a in text) for rel, text in texts.items()}
    assert {rel: found for rel, found in leaks.items() if found} == {}
    assert all(a.startswith("addr-") for a in result.summary["attacker"]["accounts"])
    clear = _offline(tmp_path / "clear", inputs)  # the search above can fail: unredacted, they are there
    assert set(clear.summary["attacker"]["accounts"]) <= accounts
    assert truth.victims[0] in (tmp_path / "clear/findings.json").read_text(encoding="utf-8").lower()
    assert (case / "evidence/exports" / safe_name(str(inputs[0]), 1)).read_bytes() == inputs[0].read_bytes()
    assert verify_case(case).ok
