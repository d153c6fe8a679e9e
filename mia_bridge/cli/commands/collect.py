"""``mia collect``: every unified audit log record of one query into a hashed, resumable case folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mia_bridge.cli.connection import ConnectionSettings, SimOptions, connection_options, open_connection
from mia_bridge.cli.console import Console, current_console, safe
from mia_bridge.cli.progress import CollectionProgress
from mia_bridge.cli.values import parse_when, split_values
from mia_bridge.collect import AuditQuery, CollectionResult, CollectOptions, SessionPolicy, collect
from mia_bridge.collect.engine import DEFAULT_CONCURRENCY
from mia_bridge.collect.graph_options import SOURCES, GraphAuditOptions
from mia_bridge.collect.mailbox_audit import collect_mailbox_audit
from mia_bridge.errors import ExitCode, UsageError
from mia_bridge.evidence import seal
from mia_bridge.evidence.manifest import manifest_sha256


def summary(result: CollectionResult, mailbox: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "complete": result.complete,
        "manifest": str(result.manifest_path),
        "manifest_sha256": manifest_sha256(result.manifest_path.parent),
        "queries": {
            q.query.name: {
                "file": str(q.path),
                "counts": q.describe()["counts"],
                "calls": q.calls,
                "retries": q.retries,
                "gaps": [g.describe() for g in q.gaps],
            }
            for q in result.queries
        },
        "mailbox_audit": mailbox,
    }


def _print_summary(result: CollectionResult, mailbox: list[dict[str, Any]], console: Console) -> None:
    err = console.err
    for q in result.queries:
        c = q.counts
        err.print(
            f"{safe(q.query.name)}: {c.unique} records in {safe(q.path)} ({c.retrieved} retrieved, "
            f"{c.duplicates_removed} duplicates removed, {c.out_of_window} outside the period, "
            f"{c.unparseable} unparseable"
            + (f", {c.rejected} rejected as another search's rows and refetched" if c.rejected else "")
            + (f", {c.id_conflicts} kept whose Id was already collected with other content" if c.id_conflicts else "")
            + f"); {q.calls} calls, {q.retries} retries",
            markup=False,
            highlight=False,
        )
        for gap in q.gaps:
            err.print(
                f"GAP {gap.start.isoformat()} .. {gap.end.isoformat()}: {safe(gap.explain())}",
                markup=False,
                highlight=False,
            )
    for item in mailbox:
        err.print(f"mailbox audit {safe(item['identity'])}: {item['status']} {safe(item.get('detail', ''))}".rstrip(),
                  markup=False, highlight=False)
    err.print(f"manifest: {safe(result.manifest_path)}")
    err.print(f"manifest SHA-256: {manifest_sha256(result.manifest_path.parent)} (note it: mia verify prints the "
              "same while the case is unaltered)")


def source_options(source: str, simulator: SimOptions | None, services: tuple[str, ...] | list[str] = (),
                   admin_units: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """CollectOptions fields for ``--source`` (and its graph-only filters); a clear error for a bad value.
    ``simulator``: the tenant is the simulated one (``--sim``)."""
    if source not in SOURCES:
        raise UsageError(f"--source {source}: expected one of {', '.join(SOURCES)}")
    if source != "graph-audit":
        if services or admin_units:
            raise UsageError("--service and --admin-unit filter the Graph audit log query API",
                             hint="add --source graph-audit")
        return {"source": source}
    graph = GraphAuditOptions(service_filters=tuple(services), administrative_unit_ids=tuple(admin_units))
    if simulator is not None:  # the simulated service finishes a query in a fraction of a second: poll accordingly
        graph.poll_initial_s, graph.poll_max_s = 0.05, 0.5
    return {"source": source, "graph": graph}


def register(app: typer.Typer) -> None:
    @app.command("collect")
    @connection_options
    def collect_command(
        out: Path = typer.Option(..., "--out", help="Case folder (created; rerun the same command to resume)."),
        start: str = typer.Option(..., "--start", help="Start of the period (ISO date/time, UTC if no zone)."),
        end: str = typer.Option(..., "--end", help="End of the period, exclusive (ISO date/time)."),
        operations: list[str] = typer.Option(None, "--operations", help="Operations (repeat or comma-separate)."),
        record_types: list[str] = typer.Option(None, "--record-type", help="Record types (repeat)."),
        users: list[str] = typer.Option(None, "--user", help="User ids / UPNs (repeat)."),
        free_text: str = typer.Option(None, "--free-text", help="Free-text filter."),
        ips: list[str] = typer.Option(None, "--ip", help="IP addresses (repeat)."),
        object_ids: list[str] = typer.Option(None, "--object-id", help="Object ids (repeat)."),
        name: str = typer.Option("ual", "--name", help="Query name = evidence file name."),
        mailbox_audit: list[str] = typer.Option(
            None, "--mailbox-audit", help="Also run Search-MailboxAuditLog (MailItemsAccessed) for this mailbox."
        ),
        concurrency: int = typer.Option(DEFAULT_CONCURRENCY, "--concurrency", min=1, max=16,
                                        help="Windows fetched at once (connections opened)."),
        sessions: SessionPolicy = typer.Option(SessionPolicy.AUTO, "--sessions",
                                               help="ReturnLargeSet sessions: auto (every window in a "
                                               "session: the only proof of completeness), always (the same), never "
                                               "(plain calls: they may be silently capped, so every window is "
                                               "reported unverified)."),
        gzip_out: bool = typer.Option(False, "--gzip", help="Write evidence as .jsonl.gz."),
        source: str = typer.Option("ual", "--source", help="ual (Search-UnifiedAuditLog) or graph-audit (Microsoft "
                                   "Graph audit log query API; needs --backend rest)."),
        services: list[str] = typer.Option(None, "--service", help="graph-audit only: service (Workload) filter, "
                                           "e.g. Exchange (repeat)."),
        admin_units: list[str] = typer.Option(None, "--admin-unit", help="graph-audit only: administrative unit id "
                                              "filter (repeat)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
        key: Path | None = typer.Option(None, "--key", help="File holding the case key: the manifest is signed "
                                        "(HMAC-SHA256). Or set MIA_CASE_KEY."),
        as_json: bool = typer.Option(False, "--json", help="Summary as JSON on stdout, progress as JSON lines."),
        *,
        conn: ConnectionSettings,
        simulator: SimOptions | None,
    ) -> None:
        """Collect every matching unified audit log record into CASE/evidence, with a hashed manifest."""
        query = AuditQuery(
            name=name,
            start=parse_when(start, "--start"),
            end=parse_when(end, "--end"),
            operations=split_values(operations),
            record_types=split_values(record_types),
            user_ids=split_values(users),
            free_text=free_text,
            ip_addresses=split_values(ips),
            object_ids=split_values(object_ids),
        )
        options = CollectOptions(concurrency=concurrency, sessions=sessions, compress=gzip_out,
                                 **source_options(source, simulator, split_values(services), split_values(admin_units)))
        mailbox: list[dict[str, Any]] = []
        console = current_console()
        seal.use_key_file(key)
        with open_connection(conn, simulator) as backend:
            if quiet:
                result = collect(backend, [query], out, options)
            else:
                with CollectionProgress(console, as_json=as_json, detailed=True) as progress:
                    result = collect(backend, [query], out, options, progress)
            for identity in split_values(mailbox_audit):
                mailbox.append(collect_mailbox_audit(backend, identity, query.start, query.end, out))
        if as_json:
            console.out.write_line(json.dumps(summary(result, mailbox), indent=2, default=str))
        elif not quiet:
            _print_summary(result, mailbox, console)
        if not result.complete or any(item["status"] not in ("collected", "retired") for item in mailbox):
            raise typer.Exit(ExitCode.ATTENTION)
