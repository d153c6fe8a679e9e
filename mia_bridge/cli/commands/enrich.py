"""``mia enrich CASE``: who and what was exposed -- sender, recipients and subject of every exposed message."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import typer

from mia_bridge.cli.connection import ConnectionSettings, SimOptions, connection_options, open_tenant
from mia_bridge.cli.console import current_console, safe
from mia_bridge.enrich.api import EnrichOptions, enrich_case
from mia_bridge.enrich.scope import load_scope
from mia_bridge.errors import ExitCode, UsageError
from mia_bridge.evidence import seal
from mia_bridge.evidence.manifest import manifest_sha256


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Repeatable options that also take comma-separated lists."""
    return tuple(v.strip() for value in values or [] for v in value.split(",") if v.strip())


@connection_options
def enrich(
    case_dir: Path = typer.Argument(..., help="Case folder from mia investigate, or the folder mia analyze wrote."),
    allow_mailbox_metadata: bool = typer.Option(
        False, "--allow-mailbox-metadata",
        help="For messages message trace lacks (older than 90 days, never through transport): read "
        "from/to/cc/bcc/subject/received/hasAttachments from the mailbox with Get-MgUserMessage. Never bodies.",
    ),
    redact_subjects: bool = typer.Option(False, "--redact-subjects", help="Replace subjects with [redacted]."),
    hash_addresses: bool = typer.Option(
        False, "--hash-addresses", help="Replace addresses and external domains with keyed hashes (HMAC-SHA256; "
        "key from MIA_HASH_KEY, else random for this run)."
    ),
    suspicious_ips: list[str] = typer.Option(None, "--suspicious-ip", help="Attacker IP (repeat); adds to "
                                             "findings.json's attacker context."),
    suspicious_apps: list[str] = typer.Option(None, "--suspicious-app", help="Attacker app id (repeat)."),
    no_potential: bool = typer.Option(False, "--no-potential", help="Skip mail potentially exposed by folder "
                                      "syncs and throttled windows."),
    as_json: bool = typer.Option(False, "--json", help="Summary as JSON on stdout."),
    key: Path | None = typer.Option(None, "--key", help="File holding the case key: the manifest is signed "
                                    "(HMAC-SHA256). Or set MIA_CASE_KEY."),
    *,
    conn: ConnectionSettings,
    simulator: SimOptions | None,
) -> None:
    """Enrich a case's exposed messages with sender, recipients and subject; list the affected parties."""
    if not case_dir.is_dir():
        raise UsageError(f"{case_dir}: not a folder", hint="give the case folder of mia investigate / mia analyze")
    options = EnrichOptions(
        allow_mailbox_metadata=allow_mailbox_metadata, redact_subjects=redact_subjects,
        hash_addresses=hash_addresses, potential=not no_potential,
        suspicious_ips=_split(suspicious_ips), suspicious_apps=_split(suspicious_apps),
    )
    seal.use_key_file(key)
    load_scope(case_dir)  # a case without analysis fails here, before any connection
    with open_tenant(conn, simulator) as (backend, present):
        result = enrich_case(backend, case_dir, replace(options, now=present()))
    counts = result.summary["counts"]
    console = current_console()
    out, err = console.out, console.err
    if as_json:
        out.write_line(json.dumps(result.summary, indent=2, default=str))
    else:
        out.print(f"{counts['accessed_ids']} message(s) read: {counts['accessed_with_metadata']} with sender and "
                  f"recipients, {counts['accessed_without_metadata']} without; {counts['potentially_exposed']} "
                  f"potentially exposed; {counts['affected_addresses']} affected address(es), "
                  f"{counts['affected_external_domains']} external domain(s)")
        for path in result.files:
            out.print(f"  {safe(path)}")
        out.print(f"manifest SHA-256: {manifest_sha256(case_dir)} (the case changed: note this one)")
    if result.trace_unavailable:
        err.print(f"warning: message trace unavailable: {safe(result.trace_unavailable)}")
    for reason, n in counts["accessed_without_metadata_reasons"].items():
        err.print(f"note: {n} message(s): {safe(reason)}")
    hint = result.summary["mailbox_metadata"]["hint"]
    if hint:
        err.print(f"hint: {safe(hint)}")
    if result.trace_unavailable or counts["accessed_without_metadata"]:
        raise typer.Exit(ExitCode.ATTENTION)


def register(app: typer.Typer) -> None:
    app.command("enrich")(enrich)
