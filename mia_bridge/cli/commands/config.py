"""``mia config init``: write a commented configuration template (no secrets in it)."""

from __future__ import annotations

from pathlib import Path

import typer

from mia_bridge.bridge.config import write_template
from mia_bridge.cli.console import current_console, safe

config_app = typer.Typer(name="config", help="The configuration file.", no_args_is_help=True)


@config_app.command("init")
def init(
    path: Path = typer.Argument(Path("mia.toml"), help="Where to write the template."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented TOML template: tenant, jump host, auth, certificate, output dir, backend."""
    write_template(path, force=force)
    current_console().err.print(f"wrote {safe(path)}; edit it, then pass --config {safe(path)} (or set MIA_CONFIG)")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
