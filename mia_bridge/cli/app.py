"""The ``mia`` command: a typer app built from a table of command modules.

Each module in ``COMMAND_MODULES`` defines ``register(app: typer.Typer) -> None``. Errors become
exit codes here and only here.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
import typer

from mia_bridge import __version__
from mia_bridge.cli.console import Console, build_console, safe, use_console
from mia_bridge.errors import ExitCode, MiaError

COMMAND_MODULES: dict[str, str] = {
    # command name -> the module whose ``register`` adds it (one line per command)
    "analyze": "mia_bridge.cli.commands.analyze",
    "collect": "mia_bridge.cli.commands.collect",
    "verify": "mia_bridge.cli.commands.verify",
    "sim": "mia_bridge.cli.commands.sim",
    "doctor": "mia_bridge.cli.commands.doctor",
    "config": "mia_bridge.cli.commands.config",
    "investigate": "mia_bridge.cli.commands.investigate",
    "enrich": "mia_bridge.cli.commands.enrich",
    "logout": "mia_bridge.cli.commands.logout",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mia-bridge {__version__}")
        raise typer.Exit()


def build_app(commands: list[str] | None = None) -> typer.Typer:
    """The ``mia`` app with ``commands`` (default: all). Each command module imports what its command needs
    (pandas, pypsrp, msal, ...): loading only the one that runs saves ≈0.4 s of start-up."""
    app = typer.Typer(
        name="mia",
        help="mia-bridge: which mail did the attacker read, and what else did they do in this Microsoft 365 "
             "tenant.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    ) -> None:
        """mia-bridge command line."""

    for name in commands or list(COMMAND_MODULES):
        importlib.import_module(COMMAND_MODULES[name]).register(app)
    return app


def _command_of(argv: list[str]) -> list[str] | None:
    """The command ``argv`` runs, when its first word names one (else every command is loaded: help, errors)."""
    first = argv[0] if argv else None
    return [first] if first in COMMAND_MODULES else None


def _save_traceback() -> str:
    """Write the current exception's traceback to a private temporary file and return its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="mia-traceback-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        traceback.print_exc(file=fh)
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point: build the console once, run the app with it, turn known errors into one line and an exit
    code. Everything mia writes is private to the user (umask 077: case folders hold mail subjects and
    addresses)."""
    console = build_console()
    previous_umask = os.umask(0o077)
    try:
        with use_console(console):
            return _run(console, sys.argv[1:] if argv is None else argv)
    finally:
        os.umask(previous_umask)
        from mia_bridge.evidence import seal

        seal.use_key_file(None)  # a --key holds for the command that was given it


def _run(console: Console, args: list[str]) -> int:
    err = console.err
    try:
        # With standalone_mode=False click returns typer.Exit's code instead of raising it.
        rc = build_app(_command_of(args))(args=args, standalone_mode=False, obj=console)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except MiaError as exc:
        err.print(exc.render())  # a server's message may carry anything: printed as text, controls escaped
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume where it stopped")
        return ExitCode.INTERRUPTED
    except click.exceptions.Abort:
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show(file=err.file)
        return exc.exit_code
    except OSError as exc:  # a file or folder the user named is missing, unreadable or full
        err.print(f"error: {safe(exc.strerror or exc)}: {safe(exc.filename or '')}".rstrip(": "))
        return ExitCode.FAILURE
    except Exception as exc:  # a defect: one line for the responder, the traceback kept for the bug report
        path = _save_traceback()
        err.print(f"internal error: {type(exc).__name__}: {safe(exc)}\n  the traceback is in {path}; "
                  "please report it")
        return ExitCode.FAILURE
    return int(rc) if isinstance(rc, int) and not isinstance(rc, bool) else ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
