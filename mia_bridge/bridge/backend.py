"""The bridge interface. No I/O and no transport types here: backends implement ``ExoBackend``.

Parameter values a backend must accept in ``CmdletCall.parameters``:
``str``, ``int``, ``bool`` (``True`` on a switch parameter means the switch is present),
timezone-aware ``datetime`` (sent as a typed UTC DateTime), ``list``/``tuple`` of those,
and ``Secret`` (sent as a SecureString where the transport supports it).
Results come back as plain Python: dicts whose values are ``str``, ``int``, ``float``, ``bool``,
``None``, timezone-aware UTC ``datetime``, ``list`` and nested ``dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class Secret:
    """A secret value that never shows itself in repr, str, logs or exceptions."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class CmdletCall:
    """One cmdlet invocation: a name and typed parameters, never script text."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    select: tuple[str, ...] | None = None  # properties to keep (Select-Object on the server side)

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description for logs and manifests (secrets masked, dates ISO)."""
        out: dict[str, Any] = {}
        for key, value in self.parameters.items():
            out[key] = _describe_value(value)
        return {"cmdlet": self.name, "parameters": out}


def _describe_value(value: Any) -> Any:
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_describe_value(v) for v in value]
    return value


@dataclass(frozen=True)
class ErrorInfo:
    """A non-terminating error record from the error stream."""

    message: str
    category: str = ""
    error_id: str = ""
    target: str = ""


@dataclass(frozen=True)
class ProgressInfo:
    """A progress record."""

    activity: str
    status: str = ""
    percent: int = -1


@dataclass
class CmdletResult:
    """What a cmdlet returned: output objects plus the other streams."""

    call: CmdletCall
    output: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    progress: list[ProgressInfo] = field(default_factory=list)
    duration_s: float = 0.0


@runtime_checkable
class ExoBackend(Protocol):
    """A connection to one tenant. Use as a context manager or call open()/close().

    ``invoke`` raises a ``mia_bridge.errors.CmdletError`` subclass when the cmdlet fails with a
    terminating error, and a ``BridgeError`` subclass for transport/auth problems; non-terminating
    errors are returned in ``CmdletResult.errors``.
    """

    name: str

    def open(self) -> None: ...

    def invoke(self, call: CmdletCall) -> CmdletResult: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """Backend, endpoint, tenant and options for the manifest. Never a secret."""
        ...

    def __enter__(self) -> ExoBackend: ...

    def __exit__(self, *exc: object) -> None: ...
