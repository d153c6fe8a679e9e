"""Parameter access for simulated cmdlets: case-insensitive names, single value or list, and the
binding errors PowerShell raises (unknown parameter, missing mandatory, wrong type)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mia_bridge.sim.registry import SimCmdletError

# PowerShell's common parameters: every cmdlet accepts them.
COMMON_PARAMETERS = frozenset(
    name.lower()
    for name in (
        "Verbose",
        "Debug",
        "ErrorAction",
        "WarningAction",
        "InformationAction",
        "ProgressAction",
        "ErrorVariable",
        "WarningVariable",
        "InformationVariable",
        "OutVariable",
        "OutBuffer",
        "PipelineVariable",
        "WhatIf",
        "Confirm",
    )
)


def binding_error(cmdlet: str, message: str, error_id: str) -> SimCmdletError:
    return SimCmdletError(
        message,
        category="InvalidArgument",
        error_id=f"{error_id},{cmdlet}",
        exception_type="System.Management.Automation.ParameterBindingException",
    )


class Params:
    """The parameters of one call, looked up case-insensitively (PowerShell is)."""

    def __init__(self, cmdlet: str, params: dict[str, Any], allowed: Iterable[str] = ()) -> None:
        self.cmdlet = cmdlet
        self._values = {str(k).lower().lstrip("-"): v for k, v in params.items()}
        allowed_l = {a.lower() for a in allowed}
        for name in params:
            key = str(name).lower().lstrip("-")
            if key not in allowed_l and key not in COMMON_PARAMETERS:
                raise binding_error(
                    cmdlet,
                    f"A parameter cannot be found that matches parameter name '{name}'.",
                    "NamedParameterNotFound",
                )

    def has(self, name: str) -> bool:
        return name.lower() in self._values

    def raw(self, name: str) -> Any:
        return self._values.get(name.lower())

    def require(self, *names: str) -> None:
        missing = [n for n in names if self._values.get(n.lower()) is None]
        if missing:
            raise binding_error(
                self.cmdlet,
                "Cannot process command because of one or more missing mandatory parameters: "
                + " ".join(missing)
                + ".",
                "MissingMandatoryParameter",
            )

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, list | tuple):
            if len(value) != 1:
                raise self._type_error(name, value, "System.String")
            value = value[0]
        if hasattr(value, "reveal"):
            raise self._type_error(name, value, "System.String")
        return str(value)

    def texts(self, name: str) -> list[str] | None:
        """A string-array parameter: a single value or a list; PowerShell also splits nothing here."""
        value = self.raw(name)
        if value is None:
            return None
        items = list(value) if isinstance(value, list | tuple) else [value]
        return [str(v) for v in items if v is not None]

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            raise self._type_error(name, value, "System.Int32")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise self._type_error(name, value, "System.Int32") from None

    def switch(self, name: str) -> bool:
        value = self.raw(name)
        if value is None:
            return False
        if isinstance(value, str):
            return value.strip().lower() in ("true", "$true", "1")
        return bool(value)

    def flag(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, str):
            low = value.strip().lower().lstrip("$")
            if low in ("true", "1"):
                return True
            if low in ("false", "0"):
                return False
            raise self._type_error(name, value, "System.Boolean")
        return bool(value)

    def date(self, name: str) -> datetime | None:
        """A DateTime: aware datetimes are converted to UTC, naive ones and strings are taken as UTC."""
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if isinstance(value, str):
            text = value.strip()
            if text.lower().endswith("z"):
                text = text[:-1].rstrip() + "+00:00"
            parsed = _parse_date(text)
            if parsed is None:
                raise self._type_error(name, value, "System.DateTime")
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        raise self._type_error(name, value, "System.DateTime")

    def _type_error(self, name: str, value: Any, target: str) -> SimCmdletError:
        # Never echo the value: it may be a secret.
        return binding_error(
            self.cmdlet,
            f"Cannot process argument transformation on parameter '{name}'. Cannot convert the value of type "
            f'"{type(value).__name__}" to type "{target}".',
            f"ParameterArgumentTransformationError,{name}",
        )


# en-US culture formats PowerShell accepts for a [DateTime] given as text (the docs' examples use them).
_US_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y")


def _parse_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _US_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None
