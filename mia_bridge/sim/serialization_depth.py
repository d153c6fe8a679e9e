"""What PowerShell remoting keeps of an output object: serialization at depth 1.

Modelled on PowerShell's own serializer (github:PowerShell/PowerShell,
src/System.Management.Automation/engine/serialization.cs, ``InternalSerializer.WriteOneObject``):

- pipeline output is serialized with ``SerializationDepthForRemoting = 1``
  (engine/remoting/common/fragmentor.cs);
- a complex object at depth N writes its properties at depth N-1 (``WritePSObjectProperties``: "Depth
  available for each property is one less"); at depth 0 it is written as its ToString() text
  (``HandlePSObjectAsString``);
- containers (lists, arrays, dictionaries) do not use up depth: "even if the current depth is zero, we
  serialize the container. All contained items will get serialized with depth zero"
  (``HandleKnownContainerTypes``), so a list of objects inside a property arrives as a list of strings;
- primitive known types (string, numbers, bool, DateTime, Guid, SecureString …) are written as they are at
  any depth;
- a type's ``SerializationDepth`` in types.ps1xml replaces the depth for objects of that type
  (``GetDepthOfSerialization``, ``UseDepthFromTypes``; see ``TYPE_DEPTHS``).

The simulator's Python dicts inside properties model .NET objects (Graph SDK models and the like), not
hashtables: at depth 0 they become text as a PSCustomObject does (``@{Name=value; …}``). Handlers that
know the real model type return a nested ``SimObject`` instead, whose ToString() is the .NET default, the
type name -- which is what the real Graph SDK models send (the harsher case: nothing of the data is left).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from mia_bridge.sim.registry import SimObject

REMOTING_DEPTH = 1

# SerializationDepth of the types.ps1xml entries PowerShell ships (TypeTable_Types_Ps1Xml.cs,
# TypeTable_TypesV3_Ps1Xml.cs). Neither ExchangeOnlineManagement nor the Microsoft.Graph modules declare a
# SerializationDepth for the objects the product reads, so those stay at the remoting default.
TYPE_DEPTHS: dict[str, int] = {
    "System.Management.Automation.CompletionResult": 1,
    "System.Management.Automation.CommandCompletion": 1,
    "Microsoft.PowerShell.Commands.ModuleSpecification": 1,
    "System.Management.Automation.JobStateEventArgs": 2,
    "System.Exception": 1,
    "System.Management.Automation.Remoting.PSSessionOption": 1,
    "System.Management.Automation.Signature": 2,
    "System.Management.Automation.JobStateInfo": 1,
    "System.Net.IPAddress": 1,
}


def at_depth(
    obj: SimObject, depth: int | None = REMOTING_DEPTH, type_depths: Mapping[str, int] = TYPE_DEPTHS
) -> SimObject:
    """``obj`` as the client deserializes it after remoting at ``depth`` (None: no limit, the old simulator)."""
    if depth is None or not any(_complex(v) for v in obj.properties.values()):
        return obj  # the hot path: audit rows and most Exchange objects hold values only
    value = _value(obj, depth, type_depths)
    if isinstance(value, SimObject):
        return value
    # A top-level object is never turned into text: depth >= 1 at the top (or a types.ps1xml depth >= 1).
    return obj


def _complex(value: Any) -> bool:
    if isinstance(value, SimObject | Mapping):
        return True
    if isinstance(value, list | tuple):
        return any(_complex(v) for v in value)
    return False


def _depth_of(obj: SimObject, depth: int, type_depths: Mapping[str, int]) -> int:
    for name in obj.type_names:
        override = type_depths.get(name)
        if override is not None and override > 0:
            return override
    return depth


def _value(value: Any, depth: int, type_depths: Mapping[str, int]) -> Any:
    if isinstance(value, SimObject):
        depth = _depth_of(value, depth, type_depths)
        if depth <= 0:
            return to_string(value)
        return SimObject(
            list(value.type_names),
            {k: _value(v, depth - 1, type_depths) for k, v in value.properties.items()},
            value.text,
        )
    if isinstance(value, list | tuple):
        return [_value(v, depth, type_depths) for v in value]  # containers keep the depth
    if isinstance(value, Mapping):
        if depth <= 0:
            return to_string(value)
        return {k: _value(v, depth - 1, type_depths) for k, v in value.items()}
    return value


def to_string(value: Any) -> str:
    """PowerShell's ToString() of a value (as ``"$value"`` would show it)."""
    if value is None:
        return ""
    if isinstance(value, SimObject):
        return value.text if value.text is not None else (value.type_names[0] if value.type_names else "System.Object")
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dt.datetime):
        # ToString() of a DateTime uses the culture's short date and long time (en-US on the jump host).
        return f"{value.month}/{value.day}/{value.year} {value.strftime('%I:%M:%S %p').lstrip('0')}"
    if isinstance(value, list | tuple):
        return "System.Object[]"
    if isinstance(value, Mapping):
        # PSObject.ToString() of a PSCustomObject: @{Name=value; Other=value}; nested objects by their ToString.
        return "@{" + "; ".join(f"{k}={_inner(v)}" for k, v in value.items()) + "}"
    return str(value)


def _inner(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "System.Object[]"
    if isinstance(value, Mapping):
        return "System.Management.Automation.PSCustomObject"
    return to_string(value)
