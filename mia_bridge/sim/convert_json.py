"""``ConvertTo-Json`` as Windows PowerShell 5.1 runs it on the jump host, as a later pipeline stage.

Modelled on PowerShell's ConvertTo-Json (github:PowerShell/PowerShell,
src/Microsoft.PowerShell.Commands.Utility/commands/utility/WebCmdlet/JsonObject.cs ``ProcessValue``,
ConvertToJsonCommand.cs) and on what 5.1 (JavaScriptSerializer) writes differently:

- the cmdlet collects its whole input and writes ONE string: a single input object is not wrapped in an
  array (5.1 has no ``-AsArray``), no input writes nothing;
- parameters: ``-Depth`` (default 2, at most 100), ``-Compress``, ``-InputObject`` and the common ones;
  anything else is a ParameterBindingException (5.1 has neither ``-AsArray`` nor ``-EnumsAsStrings``);
- an object or dictionary deeper than ``-Depth`` becomes its string form (``LanguagePrimitives.ConvertTo
  string``) and a warning says the JSON was truncated; lists and objects both use up one level;
- DateTime is ``"\\/Date(<ms since 1970 UTC>)\\/"`` in 5.1 (JavaScriptSerializer), not ISO 8601;
- JavaScriptSerializer escapes ``<``, ``>``, ``&`` and ``'`` as ``\\u003c`` … and keeps other characters.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from mia_bridge.sim.handlers._params import Params
from mia_bridge.sim.registry import SimCmdletError, SimObject, SimOutput, sim_string
from mia_bridge.sim.serialization_depth import to_string

NAME = "ConvertTo-Json"
DEFAULT_DEPTH = 2
MAX_DEPTH = 100
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"}


def convert_to_json(output: SimOutput, params: dict[str, Any]) -> SimOutput:
    """The later pipeline stage: every object of ``output`` → one JSON string (or none for no input)."""
    p = Params(NAME, params, ("Depth", "Compress", "InputObject"))
    depth = p.integer("Depth", DEFAULT_DEPTH)
    assert depth is not None
    if not 0 <= depth <= MAX_DEPTH:
        raise SimCmdletError(
            f"Cannot validate argument on parameter 'Depth'. The {depth} argument is greater than the maximum "
            f"allowed range of {MAX_DEPTH}. Supply an argument that is less than or equal to {MAX_DEPTH} and then "
            "try the command again." if depth > MAX_DEPTH else
            f"Cannot validate argument on parameter 'Depth'. The {depth} argument is less than the minimum allowed "
            "range of 0. Supply an argument that is greater than or equal to 0 and then try the command again.",
            category="InvalidData",
            error_id="ParameterArgumentValidationError,Microsoft.PowerShell.Commands.ConvertToJsonCommand",
            exception_type="System.Management.Automation.ParameterBindingValidationException",
        )
    warnings = list(output.warnings)
    if not output.objects:
        return SimOutput(objects=[], warnings=warnings, errors=output.errors)
    state = _State(depth)
    values: Any = [_process(o, 0, state) for o in output.objects]
    if len(values) == 1:
        values = values[0]
    if state.truncated:
        warnings.append(f"Resulting JSON is truncated as serialization has exceeded the set depth of {depth}.")
    text = dumps(values, compress=p.switch("Compress"))
    return SimOutput(objects=[sim_string(text)], warnings=warnings, errors=output.errors)


class _State:
    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.truncated = False


def _process(value: Any, depth: int, state: _State) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        millis = (aware.astimezone(dt.UTC) - _EPOCH) // dt.timedelta(milliseconds=1)
        return _Date(millis)
    if hasattr(value, "reveal"):
        return "System.Security.SecureString"
    if depth > state.depth:
        state.truncated = True
        if isinstance(value, list | tuple):
            # LanguagePrimitives.ConvertTo(string) of an array joins the items' strings with a space ($OFS).
            return " ".join(to_string(v) for v in value)
        return to_string(value)
    if isinstance(value, SimObject):
        return {k: _process(v, depth + 1, state) for k, v in value.properties.items()}
    if isinstance(value, Mapping):
        return {str(k): _process(v, depth + 1, state) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_process(v, depth + 1, state) for v in value]
    return to_string(value)


class _Date(int):
    """A DateTime on its way to JavaScriptSerializer's ``"\\/Date(ms)\\/"``."""


def dumps(value: Any, *, compress: bool) -> str:
    """JSON as Windows PowerShell 5.1 writes it (compressed, or pretty with its own indentation)."""
    if compress:
        return _compact(value)
    return _pretty(value, 0)


def _scalar(value: Any) -> str:
    if isinstance(value, _Date):
        return f'"\\/Date({int(value)})\\/"'
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escaped in _HTML_ESCAPES.items():
            text = text.replace(char, escaped)
        return text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{_scalar(str(k))}:{_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return _scalar(value)


def _pretty(value: Any, level: int) -> str:
    # 5.1 indents with four spaces per level and writes "name":  value (two spaces after the colon).
    pad = "    " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{\n\n" + "    " * level + "}"
        items = ",\n".join(f"{pad}{_scalar(str(k))}:  {_pretty(v, level + 1)}" for k, v in value.items())
        return "{\n" + items + "\n" + "    " * level + "}"
    if isinstance(value, list):
        if not value:
            return "[\n\n" + "    " * level + "]"
        items = ",\n".join(f"{pad}{_pretty(v, level + 1)}" for v in value)
        return "[\n" + items + "\n" + "    " * level + "]"
    return _scalar(value)
