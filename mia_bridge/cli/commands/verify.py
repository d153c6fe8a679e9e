"""``mia verify CASE``: recheck every hash and count in a case folder; non-zero exit on any mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mia_bridge.cli.console import current_console, safe
from mia_bridge.errors import ExitCode
from mia_bridge.evidence import seal, verify_case

_SIGNATURE = {
    "valid": "valid (HMAC-SHA256 with the case key)",
    "invalid": "INVALID",
    "unsigned": "none (the case was written without a case key: compare the SHA-256 above with the one noted)",
    "not checked": "present, not checked (give --key or MIA_CASE_KEY)",
}


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_command(
        case_dir: Path = typer.Argument(..., help="Case folder written by mia collect / mia investigate."),
        as_json: bool = typer.Option(False, "--json", help="Report as JSON on stdout."),
        key: Path | None = typer.Option(None, "--key", help="File holding the case key: check the manifest's "
                                        "signature (manifest.hmac). Or set MIA_CASE_KEY."),
    ) -> None:
        """Recheck the SHA-256, size and record count of every file the manifest lists, report files it does not
        list, print the manifest's own SHA-256 and check its signature."""
        console = current_console()
        seal.use_key_file(key)
        report = verify_case(case_dir)
        if as_json:
            console.out.write_line(json.dumps(report.to_dict(), indent=2))
        else:
            for problem in report.problems:  # paths come from the manifest: one line each, controls escaped
                console.err.print(f"MISMATCH {safe(problem)}")
            verdict = "OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)"
            console.out.print(f"{safe(case_dir)}: {len(report.checked)} files checked, {verdict}")
            console.out.print(f"manifest SHA-256: {report.manifest_sha256} (compare with the one the run printed)")
            console.out.print(f"signature: {_SIGNATURE[report.signature]}")
        if not report.ok:
            raise typer.Exit(ExitCode.FAILURE)
