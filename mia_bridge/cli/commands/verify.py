"""``mia verify CASE``: recheck every hash and count in a case folder; non-zero exit on any mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mia_bridge.cli.console import err, out
from mia_bridge.cli.exit_codes import ExitCode
from mia_bridge.evidence import verify_case


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_command(
        case_dir: Path = typer.Argument(..., help="Case folder written by mia collect / mia investigate."),
        as_json: bool = typer.Option(False, "--json", help="Report as JSON on stdout."),
    ) -> None:
        """Recheck the SHA-256, size and record count of every file the manifest lists."""
        report = verify_case(case_dir)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            for problem in report.problems:
                err.print(f"MISMATCH {problem}", markup=False, highlight=False)
            verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
            out.print(f"{case_dir}: {len(report.checked)} files checked, {verdict}", markup=False, highlight=False)
        if not report.ok:
            raise typer.Exit(ExitCode.FAILURE)
