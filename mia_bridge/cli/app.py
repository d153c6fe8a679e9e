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
from mia_bridge.cli.console import err
from mia_bridge.cli.exit_codes import ExitCode
from mia_bridge.errors import MiaError

COMMAND_MODULES: tuple[str, ...] = (
    # one line per command module
    "mia_bridge.cli.commands.analyze",
    "mia_bridge.cli.commands.collect",
    "mia_bridge.cli.commands.verify",
    "mia_bridge.cli.commands.sim",
    "mia_bridge.cli.commands.doctor",
    "mia_bridge.cli.commands.config",
    "mia_bridge.cli.commands.investigate",
    "mia_bridge.cli.commands.enrich",
)

app = typer.Typer(
    name="mia",
    help="mia-bridge: which mail did the attacker read, and what else did they do in this Microsoft 365 tenant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mia-bridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """mia-bridge command line."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def _save_traceback() -> str:
    """Write the current exception's traceback to a private temporary file and return its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="mia-traceback-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        traceback.print_exc(file=fh)
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning known errors into one line and an exit code."""
    try:
        # With standalone_mode=False click returns typer.Exit's code instead of raising it.
        rc = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except MiaError as exc:
        err.print(exc.render(), markup=False, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume where it stopped", markup=False)
        return ExitCode.INTERRUPTED
    except click.exceptions.Abort:
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file or folder the user named is missing, unreadable or full
        err.print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), markup=False, highlight=False)
        return ExitCode.FAILURE
    except Exception as exc:  # a defect: one line for the responder, the traceback kept for the bug report
        path = _save_traceback()
        err.print(f"internal error: {type(exc).__name__}: {exc}\n  the traceback is in {path}; "
                  "please report it", markup=False, highlight=False)
        return ExitCode.FAILURE
    return int(rc) if isinstance(rc, int) and not isinstance(rc, bool) else ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
