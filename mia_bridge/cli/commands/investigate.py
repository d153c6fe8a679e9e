"""``mia investigate``: one command from tenant to evidence package and report.

``--app-id`` here names the application to investigate (Sparrow's "One" mode), as the issue has it;
the connection's app-only identity, which other commands take as ``--app-id``, is ``--connect-app-id``
here (or the config file's ``app_id``).
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mia_bridge.cli.commands.collect import source_options
from mia_bridge.cli.connection import ConnectionSettings, SimOptions, connection_options, open_tenant
from mia_bridge.cli.console import Console, current_console, safe
from mia_bridge.cli.progress import CollectionProgress, JsonEvents
from mia_bridge.cli.values import parse_when, split_values
from mia_bridge.collect.engine import DEFAULT_CONCURRENCY, CollectOptions, Progress
from mia_bridge.errors import ExitCode, UsageError
from mia_bridge.evidence import seal as case_seal
from mia_bridge.evidence.layout import SETTINGS_NAME
from mia_bridge.evidence.manifest import manifest_sha256
from mia_bridge.investigate.license import LicensePolicy
from mia_bridge.investigate.pipeline import InvestigateOptions, InvestigationResult, run_investigation
from mia_bridge.investigate.plan import GUID_RE
from mia_bridge.investigate.steps import StepOutcome, StepStatus
from mia_bridge.sim.backend import sim_session

DEMO_OUT = Path("output/demo")
_STATUS_STYLE = {StepStatus.DONE: "green", StepStatus.SKIPPED: "yellow", StepStatus.FAILED: "red"}


class ConsoleUI:
    """Step outcomes and notes on stderr (stdout stays for ``--json``), confirmation prompts; with ``--json``
    the progress events of cli/progress.py."""

    def __init__(self, as_json: bool, console: Console | None = None) -> None:
        self.as_json = as_json
        self.console = console or current_console()
        self.events = JsonEvents(self.console) if as_json else None
        self._progress = CollectionProgress(self.console, as_json=as_json)
        self.progress: Progress | None = self._progress

    def confirm(self, question: str) -> bool:
        self._progress.close()
        try:
            answer = self.console.err.input(f"{question} [y/N] ")
        except EOFError:
            return False
        return answer.strip().lower() in {"y", "yes"}

    def outcome(self, outcome: StepOutcome) -> None:
        if self.events is not None:
            self.events.emit("step", **outcome.to_dict())
            return
        if not outcome.name.startswith("Search"):
            self._progress.close()  # searches print under their bars; other steps after them
        self.console.err.print(f"{outcome.status.value:>7} ", style=_STATUS_STYLE[outcome.status], end="")
        # names and reasons carry tenant data (app names, server errors): one line each, controls escaped
        self.console.err.print(safe(outcome.name) + (f": {safe(outcome.reason)}" if outcome.reason else ""))

    def note(self, text: str) -> None:
        if self.events is not None:
            self.events.emit("note", text=text)
            return
        self._progress.close()
        self.console.err.print(text)

    def close(self) -> None:
        self._progress.close()


def _previous_period(out_dir: Path) -> tuple[datetime | None, datetime | None]:
    """The period an earlier run in this case folder used (so a rerun resumes the same searches)."""
    path = out_dir / SETTINGS_NAME
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        start = datetime.fromisoformat(data["start"]) if data.get("start") else None
        end = datetime.fromisoformat(data["end"]) if data.get("end") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    return start, end


def _print_result(result: InvestigationResult, as_json: bool, console: Console) -> None:
    out = console.out
    if as_json:
        out.write_line(json.dumps({**result.summary, "manifest_sha256": manifest_sha256(result.case_dir)}, indent=2,
                                  default=str))
        return
    if result.verdict:
        out.print(f"verdict: {result.verdict['level']}: {safe(result.verdict['headline'])}")
    findings = result.findings
    if findings is not None:
        attacker = findings.attacker_findings
        out.print(f"attacker findings: {len(attacker)}; for review: {len(findings.findings) - len(attacker)}; "
                  f"messages read by the attacker: {len(findings.exposed)}")  # fmt: skip
        for f in sorted(attacker, key=lambda f: ("critical", "high", "medium", "low", "info").index(f.severity))[:15]:
            out.print(f"  [{f.severity}] {safe(f.title)}")  # titles quote rule names, folders, apps
    out.print(f"case folder: {safe(result.case_dir)}")
    if result.report_path is not None:
        out.print(f"report: {safe(result.report_path)}")
    seal = manifest_sha256(result.case_dir)
    if seal:
        out.print(f"manifest SHA-256: {seal} (note it: mia verify prints the same while the case is unaltered)")
    redaction = result.redaction
    if redaction.get("redact_subjects") or redaction.get("hash_addresses"):
        kept = [*redaction.get("raw_evidence_not_redacted", []), *redaction.get("chain_of_custody_not_redacted", [])]
        out.print("redacted for sharing: the report and the derived files; not redacted, never to be shared: "
                  + ", ".join(kept))


def _run(conn: ConnectionSettings, simulator: SimOptions | None, options: InvestigateOptions, ui: ConsoleUI,
         demo: bool, end_given: bool = True) -> InvestigationResult:
    if options.exports:  # no tenant: the exports are the source of the records
        from mia_bridge.investigate.offline_run import run_offline_investigation

        return run_offline_investigation(options, ui, end_given=end_given)

    if not demo:
        with open_tenant(conn, simulator) as (backend, present):
            if options.end_is_now:  # the default end: the tenant's present (the simulated tenant's own)
                options = replace(options, end=present().replace(microsecond=0))
            return run_investigation(backend, options, ui, tenant_now=present)
    with sim_session(conn, simulator) as session:
        period = session.records_period()
        if options.start is None and period is not None:  # the simulated data sits in a fixed month: all of it
            options = replace(options, start=period[0], end=period[1])  # frozen
        # counted from the simulated tenant's present, the demo's case is the same on any day (the golden test)
        return run_investigation(session.backend, options, ui, tenant_now=session.now)


def investigate(
    tenant: str | None = typer.Option(None, "--tenant", help="Tenant, e.g. contoso.onmicrosoft.com."),
    users: list[str] = typer.Option(None, "--user", help="Victim mailbox / account (repeat or comma-separate)."),
    target_app_id: str | None = typer.Option(None, "--app-id", help="Investigate one application (AppId GUID)."),
    all_apps: bool = typer.Option(False, "--all-apps", help="Investigate every application service principal."),
    start: str | None = typer.Option(None, "--start", help="Start (ISO, UTC); default: the licence's retention."),
    end: str | None = typer.Option(None, "--end", help="End (ISO, UTC); default: now."),
    enable_ingestion: bool = typer.Option(
        False,
        "--enable-ingestion",
        help="Turn unified audit log ingestion on if it is off (asks first; takes up to 60 minutes).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Answer yes to confirmations."),
    license_policy: LicensePolicy = typer.Option(
        LicensePolicy.DETECT, "--license-policy", help="detect (default), sparrow, assume-premium, assume-standard."
    ),
    delimiter: str = typer.Option(
        ",", "--delimiter", help="Delimiter of the sparrow/ CSVs (Sparrow's -Delimiter, one character; default ',')."
    ),
    message_ids: Path | None = typer.Option(None, "--message-ids", help="File of InternetMessageIds to look up."),
    suspicious_ips: list[str] = typer.Option(None, "--suspicious-ip", help="Known attacker IP (repeat)."),
    known_good_ips: list[str] = typer.Option(None, "--known-good-ip", help="IP never attributed to the attacker."),
    out_dir: Path | None = typer.Option(None, "--out", help="Case folder (rerun the same command to resume)."),
    as_json: bool = typer.Option(False, "--json", help="Summary as JSON on stdout; progress as JSON lines."),
    demo: bool = typer.Option(False, "--demo", help="Run against the built-in simulated compromised tenant."),
    concurrency: int = typer.Option(
        DEFAULT_CONCURRENCY, "--concurrency", min=1, max=16, help="Windows fetched at once per search."
    ),
    source: str = typer.Option("ual", "--source", help="Audit searches through ual (Search-UnifiedAuditLog) or "
                               "graph-audit (Microsoft Graph audit log query API; needs --backend rest)."),
    allow_mailbox_metadata: bool | None = typer.Option(
        None, "--allow-mailbox-metadata/--no-mailbox-metadata",
        help="Affected parties: for messages message trace lacks (older than 90 days, never through transport), "
        "read from/to/cc/bcc/subject/received from the mailbox (Graph, never bodies). Off by default; on for --demo.",
    ),
    redact_subjects: bool = typer.Option(
        False, "--redact-subjects", help="Replace exposed messages' subjects with [redacted] in every derived file "
        "and the report (raw evidence is kept as received)."
    ),
    hash_addresses: bool = typer.Option(
        False, "--hash-addresses", help="Replace e-mail addresses with keyed hashes (HMAC-SHA256; key from "
        "MIA_HASH_KEY, else random for this run) in every derived file and the report (raw evidence is kept)."
    ),
    key: Path | None = typer.Option(None, "--key", help="File holding the case key: the manifest is signed "
                                    "(HMAC-SHA256, manifest.hmac). Or set MIA_CASE_KEY."),
    from_exports: bool = typer.Option(
        False, "--from-exports", help="Investigate the audit-log exports given as INPUT... (any format `mia analyze` "
        "reads, .gz too) instead of the tenant: no tenant access needed."
    ),
    tenant_domains: list[str] = typer.Option(
        None, "--tenant-domain", help="With --from-exports: the organisation's own domain (repeat); default: "
        "inferred from the mailbox owners."
    ),
    inputs: list[Path] = typer.Argument(None, metavar="[INPUT]...", show_default=False,
                                        help="With --from-exports: the export files."),
    *,
    conn: ConnectionSettings,
    simulator: SimOptions | None,
) -> None:
    """Investigate a tenant: Sparrow's searches and more, evidence package, Sparrow CSVs, timeline, HTML report.

    With --from-exports INPUT...: the same from audit-log exports, without tenant access.
    """
    console = current_console()
    case_seal.use_key_file(key)
    if len(delimiter) != 1 or delimiter in '"\r\n':  # Export-Csv -Delimiter is a [char]
        raise UsageError(f"--delimiter {delimiter!r} must be one character other than a quote or line break")
    if from_exports or inputs:
        _investigate_exports(from_exports, list(inputs or []), tenant, split_values(tenant_domains), users,
                             target_app_id, all_apps, start, end, message_ids, suspicious_ips, known_good_ips,
                             out_dir, as_json, redact_subjects, hash_addresses, delimiter,
                             conflicting=[name for name, given in (("--demo", demo),
                                          ("--enable-ingestion", enable_ingestion),
                                          ("--allow-mailbox-metadata", bool(allow_mailbox_metadata)),
                                          ("--license-policy", license_policy is not LicensePolicy.DETECT))
                                          if given])  # fmt: skip
        return
    if tenant_domains:
        raise UsageError("--tenant-domain is for --from-exports", hint="a tenant run reads the tenant's domains")
    if target_app_id and all_apps:
        raise UsageError("give either --app-id or --all-apps, not both")
    if target_app_id and not GUID_RE.match(target_app_id):
        raise UsageError(f"--app-id {target_app_id!r} is not an application id (GUID)")
    if demo:
        simulator = simulator or SimOptions()
        tenant = tenant or conn.organization or "contoso.onmicrosoft.com"
        all_apps = all_apps or not target_app_id
    tenant = tenant or conn.organization
    if not tenant:
        raise UsageError("--tenant is required", hint="e.g. --tenant contoso.onmicrosoft.com (or organization in "
                         "the config file)")  # fmt: skip
    if not conn.organization:
        conn = replace(conn, organization=tenant)
    case_dir = out_dir or (DEMO_OUT if demo else Path(f"mia-case-{tenant}"))
    start_at = parse_when(start, "--start") if start else None
    end_at = parse_when(end, "--end") if end else None
    if start is None and end is None:
        start_at, end_at = _previous_period(case_dir)
        if start_at is not None:
            console.err.print(f"resuming the case in {safe(case_dir)}: period {start_at.isoformat()} to {end_at}")
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise UsageError("--end must be after --start")
    ids: list[str] | None = None
    if message_ids is not None:
        from mia_bridge.analysis.message_lookup import read_message_ids

        ids = read_message_ids(message_ids)
    options = InvestigateOptions(
        tenant=tenant,
        out_dir=case_dir,
        start=start_at,
        end=end_at or datetime.now(tz=UTC).replace(microsecond=0),
        users=tuple(u.lower() for u in split_values(users)),
        app_id=target_app_id.lower() if target_app_id else None,
        all_apps=all_apps,
        enable_ingestion=enable_ingestion,
        assume_yes=yes,
        license_policy=license_policy,
        delimiter=delimiter,
        end_is_now=end_at is None,
        message_ids=ids,
        suspicious_ips=split_values(suspicious_ips),
        known_good_ips=split_values(known_good_ips),
        collect_options=CollectOptions(concurrency=concurrency, **source_options(source, simulator)),
        # the simulated tenant grants Graph's Mail.ReadBasic.All: the demo shows every read message's parties
        allow_mailbox_metadata=demo if allow_mailbox_metadata is None else allow_mailbox_metadata,
        redact_subjects=redact_subjects,
        hash_addresses=hash_addresses,
    )
    ui = ConsoleUI(as_json, console)
    try:
        result = _run(conn, simulator, options, ui, demo)
    except KeyboardInterrupt:
        ui.close()
        # click turns Ctrl-C into a silent Abort (exit 130); say what state the case is in first
        console.err.print(f"interrupted: the case in {safe(case_dir)} is kept; rerun the same command to resume "
                          "where it stopped")
        raise
    finally:
        ui.close()
    _print_result(result, as_json, console)
    if result.exit_code != ExitCode.OK:
        raise typer.Exit(result.exit_code)


def _investigate_exports(
    from_exports: bool, inputs: list[Path], tenant: str | None, domains: tuple[str, ...], users: list[str] | None,
    target_app_id: str | None, all_apps: bool, start: str | None, end: str | None, message_ids: Path | None,
    suspicious_ips: list[str] | None, known_good_ips: list[str] | None, out_dir: Path | None, as_json: bool,
    redact_subjects: bool, hash_addresses: bool, delimiter: str, conflicting: list[str],
) -> None:
    """``--from-exports INPUT... --out CASE``: checks the offline options, then runs the offline pipeline."""
    if not from_exports:
        raise UsageError(f"unexpected argument {str(inputs[0])!r}", hint="to investigate exports, give "
                         "--from-exports INPUT... --out CASE")  # fmt: skip
    if not inputs:
        raise UsageError("--from-exports needs at least one INPUT file")
    if conflicting:
        raise UsageError(f"{', '.join(conflicting)} cannot be used with --from-exports (they need the tenant)")
    if out_dir is None:
        raise UsageError("--from-exports needs --out CASE (the case folder the exports are preserved in)")
    if target_app_id and all_apps:
        raise UsageError("give either --app-id or --all-apps, not both")
    if target_app_id and not GUID_RE.match(target_app_id):
        raise UsageError(f"--app-id {target_app_id!r} is not an application id (GUID)")
    for path in inputs:
        if not path.is_file():
            raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    start_at = parse_when(start, "--start") if start else None
    end_at = parse_when(end, "--end") if end else None
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise UsageError("--end must be after --start")
    ids: list[str] | None = None
    if message_ids is not None:
        from mia_bridge.analysis.message_lookup import read_message_ids

        ids = read_message_ids(message_ids)
    domain_list = tuple(dict.fromkeys(d.strip().lower().lstrip("@") for d in (*domains, *([tenant] if tenant
                                                                                          else [])) if d.strip()))
    options = InvestigateOptions(
        tenant=domain_list[0] if domain_list else "(from exports)",
        out_dir=out_dir,
        start=start_at,
        end=end_at or datetime.now(tz=UTC).replace(microsecond=0),
        users=tuple(u.lower() for u in split_values(users)),
        app_id=target_app_id.lower() if target_app_id else None,
        all_apps=all_apps,
        message_ids=ids,
        suspicious_ips=split_values(suspicious_ips),
        known_good_ips=split_values(known_good_ips),
        redact_subjects=redact_subjects,
        hash_addresses=hash_addresses,
        delimiter=delimiter,
        exports=tuple(inputs),
        tenant_domains=domain_list,
    )
    console = current_console()
    ui = ConsoleUI(as_json, console)
    try:
        result = _run(ConnectionSettings(), None, options, ui, False, end_given=end_at is not None)
    finally:
        ui.close()
    _print_result(result, as_json, console)
    if result.exit_code != ExitCode.OK:
        raise typer.Exit(result.exit_code)


def _command() -> Any:
    """``investigate`` with the connection options, ``--app-id`` kept for the app to investigate."""
    decorated = connection_options(investigate)
    signature = inspect.signature(decorated)
    params = []
    for param in signature.parameters.values():
        if param.name == "app_id":  # the connection's app identity: renamed flag, same setting
            option = typer.Option(None, "--connect-app-id", help="Entra app id for app-only authentication "
                                  "(other commands' --app-id).", rich_help_panel="Connection")  # fmt: skip
            param = param.replace(default=option)
        params.append(param)

    @functools.wraps(decorated)
    def command(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("demo") or kwargs.get("from_exports"):
            # before the connection settings are validated: no server needed (--from-exports opens none;
            # --demo opens the simulated tenant)
            kwargs["sim"] = True
        return decorated(*args, **kwargs)

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = dict(decorated.__annotations__)
    if hasattr(command, "__wrapped__"):
        del command.__wrapped__
    return command


def register(app: typer.Typer) -> None:
    app.command("investigate")(_command())
