"""``mia verify CASE``: recheck every hash and count in a case folder; non-zero exit on any mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mia_bridge.cli.console import current_console, safe
from mia_bridge.cli.exit_codes import ExitCode
from mia_bridge.evidence import verify_case


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_command(
        case_dir: Path = typer.Argument(..., help="Case folder written by mia collect / mia investigate."),
        as_json: bool = typer.Option(False, "--json", help="Report as JSON on stdout."),
    ) -> None:
        """Recheck the SHA-256, size and record count of every file the manifest lists."""
        console = current_console()
        report = verify_case(case_dir)
        if as_json:
            console.out.write_line(json.dumps(report.to_dict(), indent=2))
        else:
            for problem in report.problems:  # paths come from the manifest: one line each, controls escaped
                console.err.print(f"MISMATCH {safe(problem)}")
            verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
            console.out.print(f"{safe(case_dir)}: {len(report.checked)} files checked, {verdict}")
        if not report.ok:
            raise typer.Exit(ExitCode.FAILURE)
