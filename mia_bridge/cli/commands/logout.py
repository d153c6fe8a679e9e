"""``mia logout``: forget delegated sign-ins (every account and token in the chosen token cache)."""

from __future__ import annotations

from pathlib import Path

import typer

from mia_bridge.bridge.token_cache import CacheChoice, forget
from mia_bridge.cli.console import err


def logout(
    insecure_file: Path | None = typer.Option(
        None, "--token-cache-insecure-file", help="The plaintext token cache a sign-in used (deleted)."
    ),
) -> None:
    """Remove the signed-in accounts and their tokens; the next --auth device-code/browser run signs in again."""
    choice = CacheChoice("insecure-file", insecure_file) if insecure_file else CacheChoice("encrypted")
    accounts = forget(choice)
    where = choice.describe()
    if accounts:
        err.print(f"signed out {', '.join(accounts)}: tokens removed from {where}", markup=False, highlight=False)
    else:
        err.print(f"no signed-in account in {where}", markup=False, highlight=False)
    err.print("tokens already issued stay valid until they expire (about an hour); to cut access at once, revoke "
              "the user's sessions in Entra ID", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("logout")(logout)
