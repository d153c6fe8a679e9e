"""Windows PowerShell 5.1's text rules, as Sparrow.ps1 relies on them, modelled on parsed JSON values.

Values are what ``json.loads`` gives for an AuditData record (dict, list, str, int, float, bool, None),
standing for what 5.1's ``ConvertFrom-Json`` gives (PSCustomObject, object[], string, Int32/Int64,
Decimal, Boolean, $null; ISO date strings stay strings in 5.1). Sources, read for each rule:

- ``ConvertTo-Json`` (5.1 serialises through System.Web.Script.Serialization.JavaScriptSerializer):
  pipeline input is collected, one item is written bare, several as an array, none writes nothing
  (PowerShell/PowerShell ConvertToJsonCommand.cs, EndProcessing). ``ProcessValue`` walks the value
  with the depth (default 2): a dictionary or array deeper than the depth becomes its string
  (``LanguagePrimitives.ConvertTo(string)``), primitives never do (JsonObject.cs, ProcessValue).
  JavaScriptSerializer escapes ``"`` ``\\`` and control characters and, through
  HttpUtility.JavaScriptStringEncode, ``'`` ``<`` ``>`` ``&`` U+0085 U+2028 U+2029 as ``\\u00xx``.
- String conversion (PSObject.ToString, MshObject.cs): a PSCustomObject is ``@{Name=value; ...}``
  whose values are converted without recursion (a nested object prints as its base object's
  ToString(), which PSCustomObject makes ``""``; a nested array as ``System.Object[]``); an array is
  its elements joined by ``$OFS`` (a space), each converted without recursion.
- ``Export-Csv -NoTypeInformation`` (CsvCommands.cs): the first object's property names are the
  header; every non-null value is quoted with ``"`` doubled; a null value is nothing (``,,``); lines
  end with CRLF; 5.1 writes ASCII, so each UTF-16 code unit above 127 becomes ``?``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

DEFAULT_DEPTH = 2  # ConvertTo-Json without -Depth

# .NET Char.IsWhiteSpace: what String.Trim() removes.
NET_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_JS_SHORT = {"\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\", "\n": "\\n", "\b": "\\b", "\f": "\\f"}


class NoOutput:
    """Marker: the pipeline wrote nothing (``@() | ConvertTo-Json``)."""


NO_OUTPUT = NoOutput()


_JS_ESCAPE = re.compile("[\x00-\x1f\"\\\\'<>&\x85\u2028\u2029]")


def _js_escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _JS_SHORT.get(ch) or f"\\u{ord(ch):04x}"


def js_string(text: str) -> str:
    """JavaScriptSerializer's quoted string (HttpUtility.JavaScriptStringEncode rules)."""
    return '"' + _JS_ESCAPE.sub(_js_escape, text) + '"'


def number_text(value: int | float | Decimal) -> str:
    """How .NET prints the number ConvertFrom-Json made of it (Int32/Int64 digits, Decimal digits).

    A float stands for the Decimal 5.1 parsed; its shortest repr is the literal as written except for
    trailing zeros and exponents, which Python's parser does not keep (a Decimal input is exact).
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    text = str(value) if isinstance(value, Decimal) else repr(value)
    if "e" in text.lower():
        text = format(Decimal(text), "f")
    return text


def to_string(value: Any, *, recurse: bool = True) -> str:
    """PowerShell's string of a value (PSObject.ToString / LanguagePrimitives.ConvertTo string)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, datetime):  # DateTime.ToString() in en-US, the culture Sparrow's users ran it in
        return f"{value.month}/{value.day}/{value.year} {value.strftime('%I').lstrip('0') or '12'}:{value:%M:%S %p}"
    if isinstance(value, Mapping):
        if not recurse:
            return ""  # PSCustomObject.ToString()
        parts = [f"{key}={to_string(item, recurse=False)}" for key, item in value.items()]
        return "@{" + "; ".join(parts) + "}" if parts else ""
    if isinstance(value, list | tuple):
        if not recurse:
            return "System.Object[]"
        return " ".join(to_string(item, recurse=False) for item in value)
    return str(value)


def _json(value: Any, depth: int, max_depth: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return number_text(value)
    if isinstance(value, str):
        return js_string(value)
    if isinstance(value, Mapping | list | tuple):
        if depth > max_depth:
            return js_string(to_string(value))
        if isinstance(value, Mapping):
            items = (f"{js_string(str(k))}:{_json(v, depth + 1, max_depth)}" for k, v in value.items())
            return "{" + ",".join(items) + "}"
        return "[" + ",".join(_json(v, depth + 1, max_depth) for v in value) + "]"
    return js_string(str(value))


def convert_to_json(value: Any, *, depth: int = DEFAULT_DEPTH) -> str:
    """``ConvertTo-Json -Compress -InputObject value`` (no pipeline unrolling)."""
    return _json(value, 0, depth)


def pipe_to_json(value: Any, *, depth: int = DEFAULT_DEPTH) -> str | NoOutput:
    """``$value | ConvertTo-Json -Compress``: the pipeline unrolls one array level."""
    if isinstance(value, list | tuple):
        if not value:
            return NO_OUTPUT
        if len(value) == 1:
            return _json(value[0], 0, depth)
        return _json(list(value), 0, depth)
    return _json(value, 0, depth)


def out_string_trim(text: str | NoOutput) -> str:
    """``(... | Out-String).Trim()``: Out-String always emits a string (empty for no input)."""
    if isinstance(text, NoOutput):
        return ""
    return text.strip(NET_WHITESPACE)


def csv_value(value: Any) -> str | None:
    """What Export-Csv writes for a property value: None for $null, else ``value.ToString()``."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return "System.Object[]"
    return to_string(value)


def convert_from_json_fails(value: Any) -> bool:
    """Whether 5.1's ``ConvertFrom-Json`` rejects this parsed JSON: an object with two names equal but for
    case ("contains the duplicated keys") or an empty name (a PSNoteProperty needs one). The record then
    never reaches Sparrow's export."""
    if isinstance(value, Mapping):
        names = [str(k).lower() for k in value]
        if "" in names or len(set(names)) != len(names):
            return True
        return any(convert_from_json_fails(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(convert_from_json_fails(v) for v in value)
    return False


def get_property(obj: Mapping[str, Any], name: str) -> Any:
    """``$obj.Name``: PowerShell member access is case-insensitive; absent is $null."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def csv_line(values: Sequence[str | None], delimiter: str) -> str:
    """One Export-Csv line (without the line end): present values quoted, $null as nothing."""
    return delimiter.join("" if v is None else _quote(v) for v in values)


def export_csv_text(
    rows: Sequence[Mapping[str, str | None] | None],
    delimiter: str,
    *,
    existing_header: Sequence[str] | None = None,
) -> str:
    """``$rows | Export-Csv -NoTypeInformation [-Append]`` as text (CRLF after every line).

    Each row is an ordered mapping of property name to cell value (None: $null), or None for an object
    without properties. The first row's names are the header (an object without properties gives an
    empty header); ``existing_header`` is the header of the file appended to (then none is written).
    """
    if not rows:
        return ""
    lines: list[str] = []
    if existing_header is not None:
        names = list(existing_header)
    else:
        names = list(rows[0] or {})
        lines.append(csv_line(names, delimiter))
    for row in rows:
        values = row or {}
        lines.append(csv_line([values.get(n) for n in names], delimiter))
    return "".join(line + "\r\n" for line in lines)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def ascii_bytes(text: str) -> bytes:
    """.NET ASCIIEncoding: every UTF-16 code unit above 127 becomes ``?`` (a surrogate pair, two)."""
    if text.isascii():
        return text.encode("ascii")
    return _ASTRAL.sub("??", text).encode("ascii", errors="replace")
