"""The project's exception tree.

Every error carries fields, an exit code and a hint; ``render()`` builds the one-line message a
responder sees. Code below the CLI only raises; the CLI turns errors into exit codes in one place.
``ExitCode`` lists the process's exit codes; it lives here, at the bottom of the layers, because the
investigation (not only the CLI) decides between a complete run and one with gaps.
A problem with a single record is not an exception but a ``Quarantined`` value (see readers).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """The exit codes of every command, in one place."""

    OK = 0
    FAILURE = 1  # the run could not complete (or no input could be read)
    USAGE = 2  # bad command line or configuration
    ATTENTION = 3  # complete, but with gaps or skipped steps worth a look
    INTERRUPTED = 130  # Ctrl-C; the case folder is left resumable


class MiaError(Exception):
    """Base of every error mia-bridge raises on purpose."""

    exit_code: int = ExitCode.FAILURE
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = fields

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(MiaError):
    """The command line or a config value is wrong (exit code 2)."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The configuration file is missing, unreadable or inconsistent."""


# --- bridge -------------------------------------------------------------------------------------


class BridgeError(MiaError):
    """Talking to the tenant failed."""


class BridgeAuthError(BridgeError):
    """Authentication was refused (WinRM credentials, app-only certificate, token). Not retryable."""


class BridgeTransportError(BridgeError):
    """Network-level failure: refused connection, TLS failure, dropped connection, WSMan fault."""

    retryable = True


class BridgeTLSError(BridgeTransportError):
    """The server's certificate could not be verified. Not retryable: fix the CA bundle."""

    retryable = False


class BridgeTimeoutError(BridgeTransportError):
    """The server did not answer in time."""

    retryable = True


class CmdletError(BridgeError):
    """A cmdlet failed (terminating error) or a non-terminating error was promoted.

    ``category`` is PowerShell's ErrorCategory name when known (e.g. ``PermissionDenied``),
    ``error_id`` the FullyQualifiedErrorId.
    """

    def __init__(
        self,
        message: str,
        *,
        cmdlet: str,
        category: str = "",
        error_id: str = "",
        retryable: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, cmdlet=cmdlet, category=category, error_id=error_id)
        self.cmdlet = cmdlet
        self.category = category
        self.error_id = error_id
        self.retryable = retryable

    def render(self) -> str:
        text = f"error: {self.cmdlet}: {self.message}"
        if self.category:
            text += f" [{self.category}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class CommandNotFoundError(CmdletError):
    """The cmdlet does not exist on the endpoint (retired, or outside the JEA role)."""


class AccessDeniedError(CmdletError):
    """The connected identity lacks the role the cmdlet needs."""


class ThrottledError(CmdletError):
    """The service is throttling or busy; retry after a pause."""

    def __init__(self, message: str, *, cmdlet: str, retry_after: float | None = None, **kw: Any) -> None:
        kw.setdefault("retryable", True)
        super().__init__(message, cmdlet=cmdlet, **kw)
        self.retry_after = retry_after


class IngestionDisabledError(CmdletError):
    """Unified audit log ingestion is off: audit searches return nothing useful."""


# --- collection and evidence --------------------------------------------------------------------


class CollectError(MiaError):
    """Collection could not complete."""


class EvidenceError(MiaError):
    """The evidence store is inconsistent."""


class ManifestError(EvidenceError):
    """The manifest is missing or unreadable."""


# --- readers and exports ------------------------------------------------------------------------


class ReaderError(MiaError):
    """An input could not be read at all."""


class UnreadableInput(ReaderError):
    """A whole input file is unreadable (missing, binary, unknown format)."""

    def __init__(self, path: str, reason: str, *, line: int | None = None, hint: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}", hint=hint, path=path, line=line)
        self.path = path
        self.line = line
        self.reason = reason


class ExportError(MiaError):
    """Writing an output failed."""
