"""Cmdlet handler registry of the simulated tenant: the seam between the tenant model and the
transports that serve it.

A handler takes the tenant and the parameters as the transport decoded them (names as sent,
values typed: str, int, bool for switches, aware UTC datetime, list, ``Secret``-like objects with
``reveal()`` for SecureStrings) and returns ``SimObject``s or a ``SimOutput``. A terminating error
is raised as ``SimCmdletError``; transports serve it the way PowerShell would (an ErrorRecord with
category and FullyQualifiedErrorId).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SimObject:
    """One output object: PowerShell type names (most specific first) and typed properties."""

    type_names: list[str]
    properties: dict[str, Any]
    # What the object's ToString() returns; None: .NET's default, the full type name (type_names[0]).
    text: str | None = None


def plain(value: Any) -> Any:
    """Nested SimObjects as dicts of their properties (full depth, as a handler built them)."""
    if isinstance(value, SimObject):
        return {k: plain(v) for k, v in value.properties.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


STRING_TYPE = "System.String"


def sim_string(text: str) -> SimObject:
    """A bare string in the output (what ConvertTo-Json writes): sent as a primitive ``<S>``, not an object."""
    return SimObject([STRING_TYPE], {}, text)


def is_string(obj: SimObject) -> bool:
    return obj.type_names == [STRING_TYPE] and not obj.properties and obj.text is not None


@dataclass
class SimOutput:
    """Everything a handler emits besides a terminating error."""

    objects: list[SimObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[SimCmdletError] = field(default_factory=list)  # non-terminating


class SimCmdletError(Exception):
    """A cmdlet error as PowerShell reports it.

    ``category`` is an ErrorCategory name (``InvalidArgument``, ``PermissionDenied``,
    ``ObjectNotFound``, ``ResourceUnavailable``, ``OperationTimeout``, ``LimitsExceeded``,
    ``NotSpecified`` ...); ``exception_type`` the .NET exception name (e.g.
    ``System.Management.Automation.CommandNotFoundException``).
    """

    def __init__(
        self,
        message: str,
        *,
        category: str = "NotSpecified",
        error_id: str = "",
        exception_type: str = "System.Management.Automation.RuntimeException",
        target: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.error_id = error_id
        self.exception_type = exception_type
        self.target = target


class TenantLike(Protocol):
    """What the registry needs of a tenant; the model lives in ``sim/tenant.py``."""

    def before_call(self, cmdlet: str, params: Mapping[str, Any]) -> None:
        """Latency and fault injection, connection checks; may raise SimCmdletError."""
        ...


Handler = Callable[[Any, dict[str, Any]], "list[SimObject] | SimOutput"]

_HANDLERS: dict[str, Handler] = {}
_CANONICAL: dict[str, str] = {}  # lower-case name -> the spelling it was registered with


def cmdlet(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler under one or more cmdlet names (case-insensitive, like PowerShell)."""

    def register(func: Handler) -> Handler:
        for name in names:
            key = name.lower()
            if key in _HANDLERS:
                raise KeyError(f"cmdlet {name} registered twice")
            _HANDLERS[key] = func
            _CANONICAL[key] = name
        return func

    return register


def registered_cmdlets() -> list[str]:
    return sorted(_HANDLERS)


def registered_handlers() -> dict[str, Handler]:
    """Registered spelling -> handler, for every cmdlet (tests tell model handlers from test doubles)."""
    import mia_bridge.sim.handlers  # noqa: F401

    return {_CANONICAL[key]: handler for key, handler in _HANDLERS.items()}


def canonical_name(name: str) -> str:
    """The registered spelling of a cmdlet name (PowerShell resolves names case-insensitively)."""
    import mia_bridge.sim.handlers  # noqa: F401

    return _CANONICAL.get(name.lower(), name)


def command_not_found(name: str) -> SimCmdletError:
    """The error PowerShell raises for an unknown command."""
    return SimCmdletError(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or "
        "operable program. Check the spelling of the name, or if a path was included, verify that "
        "the path is correct and try again.",
        category="ObjectNotFound",
        error_id="CommandNotFoundException",
        exception_type="System.Management.Automation.CommandNotFoundException",
        target=name,
    )


def dispatch(tenant: TenantLike, name: str, params: dict[str, Any]) -> SimOutput:
    """Run one cmdlet against the tenant. Raises SimCmdletError for terminating errors."""
    # Handlers are registered by importing the handler modules.
    import mia_bridge.sim.handlers  # noqa: F401

    handler = _HANDLERS.get(name.lower())
    if handler is None:
        raise command_not_found(name)
    tenant.before_call(name, params)
    result = handler(tenant, params)
    if isinstance(result, SimOutput):
        return result
    return SimOutput(objects=list(result))
