"""One value as exports hold it: JSON in a string (double encoding), PowerShell's ``@{Name=Value}`` object
strings (ConvertTo-Json below its depth), a one-element array as a bare object; within depth and NUL limits.

Shared by the readers (decoding cells), the analysis (normalising records) and the field accessors.
"""

from __future__ import annotations

import json
import re
from typing import Any

PS_OBJECT_ARRAY = "System.Object[]"
_PS_HASHTABLE = re.compile(r"^@\{(.*)\}$", re.DOTALL)


def parse_ps_hashtable(text: str) -> dict[str, Any] | None:
    """Parse PowerShell's ``@{Name=Value; Other=Value}`` object string (shallow ConvertTo-Json output).

    Values are kept as strings; ``System.Object[]`` marks a nested list PowerShell did not serialise.
    """
    match = _PS_HASHTABLE.match(text.strip())
    if match is None:
        return None
    body = match.group(1)
    result: dict[str, Any] = {}
    # Keys are identifiers; split on "; Key=" so values may themselves contain ";" or "=".
    parts = re.split(r";\s*(?=[A-Za-z_][A-Za-z0-9_]*=)", body)
    for part in parts:
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            return None
        result[key.strip()] = value
    return result


# Records nested deeper than this are quarantined: no audit record comes near it (Folders/FolderItems is 4
# levels), and Python's own parser fails at about a thousand levels.
MAX_DEPTH = 100
NUL_IN_RECORD = "NUL byte in the record"


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` for JSON text within the limits, else ``(None, why not)``: never raises."""
    if "\x00" in text:
        return None, NUL_IN_RECORD
    try:
        value = json.loads(text)
    except RecursionError:
        return None, f"nested deeper than {MAX_DEPTH} levels"
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    if text.count("[") + text.count("{") > MAX_DEPTH and too_deep(value):
        return None, f"nested deeper than {MAX_DEPTH} levels"
    return value, None


def maybe_json(value: Any) -> Any:
    """Decode a JSON document stored in a string cell (double encoding); leave other values alone."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{") and stripped[-1:] in ("]", "}"):
            decoded, error = parse_json(stripped)
            return value if error is not None else decoded
    return value


def as_list(value: Any) -> list[Any]:
    """A one-element array may arrive as a bare object (ConvertTo-Json); None is empty."""
    value = maybe_json(value)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]
