"""Proof against the simulated tenant, through pypsrp's real client and the project's PSRP server.

The compromised scenario's ground truth must be found (every attacker action a finding, every message
id the attacker read listed, no benign look-alike attributed), the Sparrow files must have Sparrow's
exact column sets, the licence policies must differ exactly as described, ingestion off must stop
clearly (or be enabled with --enable-ingestion --yes), one denied search must not lose the rest, and an
interrupted run must resume to a case that ``mia verify`` accepts.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mia_bridge.bridge.config import ConnectionSettings
from mia_bridge.cli.app import main
from mia_bridge.cli.progress import EVENTS
from mia_bridge.collect.engine import CollectOptions, QueryResult
from mia_bridge.errors import IngestionDisabledError
from mia_bridge.evidence import verify_case
from mia_bridge.exports.sparrow import WORKLOAD_COLUMNS
from mia_bridge.exports.timeline import TIMELINE_COLUMNS
from mia_bridge.investigate.license import LicensePolicy
from mia_bridge.investigate.pipeline import InvestigateOptions, InvestigationResult, run_investigation
from mia_bridge.investigate.steps import StepOutcome, StepStatus
from mia_bridge.sim.backend import sim_session
from mia_bridge.sim.scenario import DEFAULT_START, build_tenant
from mia_bridge.sim.tenant import Tenant, TenantConfig, TenantSession

REPO = Path(__file__).resolve().parents[2]
RECORDS = 1500
END = DEFAULT_START + timedelta(days=30)
SPARROW_WORKLOADS = {
    "Domain": "AAD", "AppUpdate": "AAD", "ServicePrincipal": "AAD", "AppRoleAssignment": "AAD", "Consent": "AAD",
    "SAMLToken": "AAD", "PSLogin": "AAD", "PSMailbox": "EXO2", "MailItems": "EXO", "FileItems": "SharePoint",
}  # fmt: skip


@dataclass
class RecordingUI:
    """The console stand-in: answers confirmations, records outcomes, can press Ctrl-C mid-collection."""

    answer: bool = True
    interrupt_at: int | None = None  # Ctrl-C when this many searches have started
    outcomes: list[StepOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    @property
    def progress(self) -> RecordingUI:
        return self

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def outcome(self, outcome: StepOutcome) -> None:
        self.outcomes.append(outcome)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def query_started(self, name: str, total_seconds: int, done_seconds: int) -> None:
        self.started.append(name)
        if self.interrupt_at is not None and len(self.started) >= self.interrupt_at:
            raise KeyboardInterrupt

    def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None:
        pass

    def query_finished(self, name: str, result: QueryResult) -> None:
        pass


def _options(case: Path, **kw: Any) -> InvestigateOptions:
    # as --demo does: the simulated tenant lets the mailbox name the parties message trace lacks (without it,
    # read mail that never went through transport has no parties, which is exit 3: test_investigate_enrich_exit)
    base: dict[str, Any] = {"tenant": "contoso.onmicrosoft.com", "out_dir": case, "start": DEFAULT_START, "end": END,
                            "collect_options": CollectOptions(concurrency=2),
                            "allow_mailbox_metadata": True}  # fmt: skip
    base.update(kw)
    return InvestigateOptions(**base)


def _run(tenant: Tenant, options: InvestigateOptions, ui: RecordingUI | None = None) -> InvestigationResult:
    with sim_session(ConnectionSettings(), tenant=tenant) as session:
        return run_investigation(session.backend, options, ui or RecordingUI())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tenant, InvestigationResult]]:
    """The demo scenario, all apps: first interrupted by Ctrl-C, then rerun to completion (resume)."""
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=RECORDS)
    assert tenant.truth is not None
    case = tmp_path_factory.mktemp("demo") / "case"
    lookups = [*sorted(tenant.truth.read_message_ids)[:2], "<never-sent@contoso.com>"]
    with pytest.raises(KeyboardInterrupt):
        _run(tenant, _options(case, all_apps=True, message_ids=lookups), RecordingUI(interrupt_at=6))
    assert (case / "manifest.json").exists()  # the interrupted case is there to resume
    yield tenant, _run(tenant, _options(case, all_apps=True, message_ids=lookups))


def test_ground_truth_found_and_nothing_benign_attributed(demo: tuple[Tenant, InvestigationResult]) -> None:
    tenant, result = demo
    truth = tenant.truth
    assert truth is not None and result.findings is not None
    attributed = {rid for f in result.findings.attacker_findings for rid in f.record_ids}
    missing = [(a.operation, a.what) for a in truth.actions if a.record_id not in attributed]
    assert missing == []
    assert not attributed & set(truth.benign_lookalike_ids)
    assert attributed <= truth.attacker_record_ids()  # nothing else either
    listed = {m.internet_message_id for m in result.findings.exposed}
    assert listed == truth.read_message_ids
    assert set(result.findings.synced_folders[truth.victims[0]]) == set(truth.synced_folders)
    assert set(result.findings.context.ips) == set(truth.attacker_ips)
    assert set(result.findings.context.apps) == set(truth.attacker_app_ids)
    # the exposed messages are in the case as a file, and in the machine summary
    rows = list(csv.DictReader((result.case_dir / "exposed_messages.csv").open(encoding="utf-8")))
    assert {r["internet_message_id"] for r in rows if r["exposure"] == "accessed"} == truth.read_message_ids
    assert set(result.summary["exposed_message_ids"]) == truth.read_message_ids
    assert result.exit_code == 0


def test_sparrow_files_have_exact_columns_and_layout(demo: tuple[Tenant, InvestigationResult]) -> None:
    tenant, result = demo
    export = result.case_dir / "sparrow"
    files = sorted(export.rglob("*_Operations_Export*.csv"))
    assert {f.name.split("_")[0] for f in files} == set(SPARROW_WORKLOADS)  # every Sparrow search produced rows
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle))
        assert tuple(header) == WORKLOAD_COLUMNS[SPARROW_WORKLOADS[path.name.split("_")[0]]], path
        assert path.read_bytes().startswith(b'"CreationTime","Id","Operation"')
    truth = tenant.truth
    assert truth is not None
    app = truth.attacker_app_ids[0]
    app_dir = export / "AppInvestigations" / truth.attacker_app_names[0]
    assert (app_dir / f"MailItems_Operations_Export.{app}.csv").exists()
    assert (app_dir / f"FileItems_Operations_Export.{app}.csv").exists()
    saml = list(csv.DictReader((export / "SAMLToken_Operations_Export.csv").open(encoding="utf-8")))
    assert {r["UserId"].split("@")[1] for r in saml} == set(truth.federated_domains)  # Sparrow's domain filter
    pslogin = list(csv.DictReader((export / "PSLogin_Operations_Export.csv").open(encoding="utf-8")))
    by_search = [r for name in ("sparrow-08a-ps-exo-app", "sparrow-08b-ps-aad-app", "sparrow-08c-winrm")
                 for r in next(run for run in result.searches if run.spec.name == name).records]  # fmt: skip
    assert [r["Id"] for r in pslogin] == [r["Id"] for r in by_search]  # appended in Sparrow's order, as found
    graph = list(csv.DictReader((export / "ApplicationGraphPermissions.csv").open(encoding="utf-8")))
    sp_id = next(sp["Id"] for sp in _directory(result.case_dir) if sp.get("AppId") == app)
    # ClientID is the assignment's PrincipalId: the service principal's object id, as Sparrow writes it
    assert {"ApplicationDisplayName": truth.attacker_app_names[0], "ClientID": sp_id, "Value": "Mail.Read"} in graph
    domains = list(csv.DictReader((export / "Domain_List.csv").open(encoding="utf-8")))
    assert truth.federated_domains[0] in {d["Name"] for d in domains}
    assert (export / "Summary_Export.xlsx").stat().st_size > 0


def _directory(case: Path) -> list[dict[str, Any]]:
    return list(json.loads((case / "directory" / "service_principals.json").read_text(encoding="utf-8"))["output"])


def test_case_verifies_and_holds_everything(demo: tuple[Tenant, InvestigationResult]) -> None:
    _, result = demo
    case = result.case_dir
    report = verify_case(case)
    assert report.ok, report.problems
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    for rel in (
        "report.html",
        "timeline.csv",
        "findings.json",
        "investigation.json",
        "sparrow/Domain_List.csv",
        "analysis/summary.json",
        "directory/domains.json",
        "evidence/mia-mailitemsaccessed.jsonl",
    ):
        assert rel in manifest["files"], rel
    with (case / "timeline.csv").open(encoding="utf-8") as handle:
        assert tuple(next(csv.reader(handle))) == TIMELINE_COLUMNS
    steps = json.loads((case / "investigation.json").read_text(encoding="utf-8"))["steps"]
    assert all(s["status"] == "done" for s in steps if s["name"].startswith("Search"))
    assert manifest["investigation"]["steps"][-1]["name"] == "Report"  # outcomes are in the manifest too
    assert manifest["investigation"]["license"]["policy"] == "detect"


def test_message_id_lookups(demo: tuple[Tenant, InvestigationResult]) -> None:
    tenant, result = demo
    assert tenant.truth is not None and result.analysis is not None
    lookup = result.analysis.message_lookup
    status = dict(zip(lookup["internet_message_id"], lookup["status"], strict=True))
    read = sorted(tenant.truth.read_message_ids)[:2]
    assert [status[m.strip("<>").lower()] for m in read] == ["accessed", "accessed"]
    # never read, but the mailbox was synced and throttled: possibly exposed, never "accessed"
    assert status["never-sent@contoso.com"] == "possibly_exposed"
    assert result.report_path is not None
    assert "Message-id lookups" in result.report_path.read_text(encoding="utf-8")


def test_demo_report_renders_in_chromium(demo: tuple[Tenant, InvestigationResult]) -> None:
    _, result = demo
    assert result.report_path is not None
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed (apt-get install chromium)")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    profile = result.case_dir.parent / "chromium-profile"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1200,2000"]  # fmt: skip
    dom = subprocess.run([*base, "--dump-dom", result.report_path.as_uri()], capture_output=True, text=True,
                         timeout=90, check=False)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Verdict: compromised" in dom.stdout and "An attacker read mail" in dom.stdout
    assert "forwards all mail outside the organisation" in dom.stdout
    shot = artifacts / "investigate-demo-report.png"
    subprocess.run([*base, f"--screenshot={shot}", result.report_path.as_uri()], capture_output=True, timeout=90,
                   check=True)  # fmt: skip
    assert shot.stat().st_size > 10_000


def _search_status(result: InvestigationResult) -> dict[str, tuple[str, str]]:
    out = {}
    for run in result.searches:
        status = "skipped" if run.skipped else "failed" if run.error else "done"
        out[run.spec.name] = (status, run.skipped or run.error)
    return out


def test_sparrow_and_detect_policies_differ_exactly_as_described(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(premium=False, mailbox_audit_retired=True), scenario="compromised",
                          records=RECORDS)  # fmt: skip
    truth = tenant.truth
    assert truth is not None
    app = truth.attacker_app_ids[0]
    common = {"users": tuple(truth.victims), "app_id": app}
    sparrow = _run(tenant, _options(tmp_path / "sparrow", license_policy=LicensePolicy.SPARROW, **common))
    detect = _run(tenant, _options(tmp_path / "detect", license_policy=LicensePolicy.DETECT, **common))
    s, d = _search_status(sparrow), _search_status(detect)
    assert set(s) == set(d)
    differing = {name for name in s if s[name][0] != d[name][0]}
    mail_items = {run.spec.name for run in sparrow.searches if run.spec.mail_items}
    assert differing == mail_items == {"mia-mailitemsaccessed", f"app-{app}-mailitems"}
    for name in mail_items:
        assert s[name][0] == "skipped" and "E5/G5" in s[name][1]
        assert d[name][0] == "done"
    # Premium-only searches are skipped by both, with the reason given
    assert s["mia-premium-crucial"][0] == d["mia-premium-crucial"][0] == "skipped"
    assert "Premium" in d["mia-premium-crucial"][1]
    # what that means for the responder: detect finds the mail read, sparrow cannot
    assert sparrow.findings is not None and detect.findings is not None
    assert sparrow.findings.exposed == []
    story = next(o for o in detect.steps if o.name == f"MailItemsAccessed for {truth.victims[0]}")
    assert story.reason.startswith("throttled 1 time(s); synced folders:")  # Microsoft's order
    assert f"by the attacker: {len(truth.read_message_ids)} message(s) read" in story.reason
    assert {m.internet_message_id for m in detect.findings.exposed} == truth.read_message_ids
    assert not (sparrow.case_dir / "sparrow" / "AppInvestigations" / "MailItems_Operations_Export.csv").exists()
    assert (detect.case_dir / "sparrow" / "AppInvestigations" / "MailItems_Operations_Export.csv").exists()
    # the skips are explained in the manifest's investigation record and in the report
    for result, name in ((sparrow, "mia-mailitemsaccessed"), (detect, "mia-premium-crucial")):
        record = json.loads((result.case_dir / "investigation.json").read_text(encoding="utf-8"))
        assert any(e["name"] == name and e["status"] == "skipped" for e in record["summary"]["searches"])
        assert result.report_path is not None and name in result.report_path.read_text(encoding="utf-8")
    # sparrow's skip of data that exists is worth attention; Premium-only events never recorded are not
    assert sparrow.exit_code == 3 and detect.exit_code == 0
    # Search-MailboxAuditLog retired: said so, not a gap (MailItemsAccessed comes from the unified log)
    retired = next(o for o in detect.steps if o.name.startswith("Mailbox audit log"))
    assert retired.status is StepStatus.SKIPPED and not retired.attention and "not available" in retired.reason


def test_ingestion_off_stops_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["investigate", "--demo", "--sim-ingestion-off", "--sim-records", "300", "--out", str(tmp_path)])
    assert code == 1
    message = capsys.readouterr().err
    assert "ingestion is OFF" in message and "--enable-ingestion" in message


def test_enable_ingestion_declined_then_confirmed(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(ingestion_enabled=False), scenario="compromised", records=RECORDS)
    declined = RecordingUI(answer=False)
    with pytest.raises(IngestionDisabledError, match="declined"):
        _run(tenant, _options(tmp_path / "no", enable_ingestion=True), declined)
    assert declined.questions and "60 minutes" in declined.questions[0] and not tenant.ingestion_enabled
    # Where ingestion is off the tenant is dehydrated (the simulator's default): asked in the same question.
    assert "Enable-OrganizationCustomization" in declined.questions[0] and tenant.dehydrated
    truth = tenant.truth
    assert truth is not None
    result = _run(tenant, _options(tmp_path / "yes", enable_ingestion=True, assume_yes=True,
                                   users=tuple(truth.victims)))  # fmt: skip
    assert tenant.ingestion_enabled
    first = result.steps.to_list()[0]
    assert first["status"] == "done" and "was OFF; enabled" in first["reason"] and "60 minutes" in first["reason"]
    assert not tenant.dehydrated and "dehydrated" in first["reason"] and "read back as True" in first["reason"]
    audit = next(o for o in result.steps if o.name == f"Mailbox audit log: {truth.victims[0]}")
    assert audit.status is StepStatus.DONE and "MailItemsAccessed rows" in audit.reason
    assert result.exit_code == 3


def test_one_denied_search_does_not_lose_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mia_bridge.sim.registry import SimCmdletError

    original = TenantSession.before_call

    def deny_winrm(self: TenantSession, cmdlet: str, params: Any) -> None:
        if cmdlet.lower() == "search-unifiedauditlog" and params.get("FreeText") == "WinRM":
            raise SimCmdletError(
                "The user doesn't have the required role to run this cmdlet.",
                category="PermissionDenied",
                error_id="AccessDenied,Search-UnifiedAuditLog",
            )
        original(self, cmdlet, params)

    monkeypatch.setattr(TenantSession, "before_call", deny_winrm)
    tenant = build_tenant(TenantConfig(), scenario="compromised", records=RECORDS)
    result = _run(tenant, _options(tmp_path / "case"))
    status = _search_status(result)
    assert status["sparrow-08c-winrm"][0] == "failed" and "role" in status["sparrow-08c-winrm"][1]
    assert all(s == "done" for name, (s, _) in status.items() if name not in {"sparrow-08c-winrm",
                                                                              "mia-premium-crucial"})  # fmt: skip
    assert (result.case_dir / "sparrow" / "PSLogin_Operations_Export.csv").exists()  # 8a/8b still exported
    assert result.findings is not None and result.findings.exposed
    assert result.exit_code == 3
    assert verify_case(result.case_dir).ok


def test_cli_demo_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connect_app = "11111111-2222-3333-4444-555555555555"  # the connection's identity: --connect-app-id here
    code = main(["investigate", "--demo", "--sim-records", "600", "--out", str(tmp_path / "case"), "--json",
                 "--connect-app-id", connect_app])  # fmt: skip
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == summary["exit_code"] == 0
    assert summary["report"] and Path(summary["report"]).exists()
    assert summary["verdict"]["level"] == "compromised" and "An attacker read mail" in summary["verdict"]["headline"]
    assert summary["attacker"]["ips"] and len(summary["exposed_message_ids"]) > 0
    assert any(s["sparrow_row"] == "6" and s["status"] == "done" for s in summary["searches"])
    assert connect_app in (tmp_path / "case" / "manifest.json").read_text(encoding="utf-8")
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert {"step", "query_started", "query_finished"} <= {e["event"] for e in events}  # progress on stderr
    assert all(list(e) == ["event", *EVENTS[e["event"]]] for e in events)  # the documented vocabulary only


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--app-id", "11111111-2222-3333-4444-555555555555", "--all-apps"], "not both"),
        (["--app-id", "not-a-guid"], "GUID"),
        (["--start", "2026-10-05", "--end", "2026-10-01"], "after --start"),
        (["--delimiter", ";;"], "one character"),
        (["--delimiter", '"'], "one character"),
    ],
)
def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], text: str) -> None:
    assert main(["investigate", "--demo", "--out", str(tmp_path), *argv]) == 2
    assert text in capsys.readouterr().err


def test_benign_tenant_has_no_attacker_findings(tmp_path: Path) -> None:
    tenant = build_tenant(TenantConfig(), scenario="benign", records=RECORDS)
    result = _run(tenant, _options(tmp_path / "case", all_apps=True))
    assert result.findings is not None
    assert result.findings.attacker_findings == [] and result.findings.exposed == []
    assert result.findings.findings  # the benign look-alikes are still listed, for review
    assert all(not f.attacker and f.severity in {"info", "low", "medium"} for f in result.findings.findings)
    assert result.report_path is not None
    assert "Verdict: no evidence" in result.report_path.read_text(encoding="utf-8")
    assert result.exit_code == 0


def test_cli_ctrl_c_says_the_case_is_resumable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mia_bridge.cli.commands.investigate as command

    def interrupted(*args: Any, **kwargs: Any) -> InvestigationResult:
        raise KeyboardInterrupt  # what Ctrl-C raises wherever the run is (the resume itself is proven above)

    monkeypatch.setattr(command, "_run", interrupted)
    assert main(["investigate", "--demo", "--out", str(tmp_path / "case")]) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
