"""Read the shipped JEA files: the PowerShell data-file subset of ``.pssc``/``.psrc`` and function param blocks.

``parse_data_file`` reads what ``Import-PowerShellDataFile`` accepts in these files: hashtables ``@{}``,
arrays ``@()`` and comma lists, single- and double-quoted strings (no expansion: the files use none),
here-strings, numbers, ``$true``/``$false``/``$null`` and script blocks, kept as their source text
(``ScriptBlockText``). ``parse_param_block`` reads the ``param(...)`` of a function body in the style the
role capability uses (``[Parameter(Mandatory = $true)]``, ``[ValidateSet(...)]``, ``[ValidatePattern('…')]``,
``[ValidateRange(a, b)]``, ``[type] $Name = default``). Errors name the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class DataFileError(ValueError):
    """The file is not in the supported data-file subset (line numbers are 1-based)."""


class ScriptBlockText(str):
    """A script block's source text, without the outer braces."""


_BAREWORD = re.compile(r"[A-Za-z0-9_.\\:*-]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?$")


class _Reader:
    def __init__(self, text: str, origin: str) -> None:
        self.text = text
        self.pos = 0
        self.origin = origin

    def error(self, message: str) -> DataFileError:
        line = self.text.count("\n", 0, self.pos) + 1
        return DataFileError(f"{self.origin}:{line}: {message}")

    def skip(self, newlines: bool = True) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n") or (ch == "`" and text[self.pos + 1 : self.pos + 2] == "\n"):
                self.pos += 2 if ch == "`" else 1
            elif text.startswith("<#", self.pos):
                end = text.find("#>", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated block comment")
                self.pos = end + 2
            elif ch == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def expect(self, token: str) -> None:
        self.skip()
        if not self.peek(token):
            raise self.error(f"expected {token!r}")
        self.pos += len(token)

    # --- values -------------------------------------------------------------------------------

    def value_list(self) -> Any:
        """A value, or a comma list of values (``'a', 'b'``) as a list."""
        first = self.value()
        items = [first]
        while True:
            self.skip(newlines=False)
            if not self.peek(","):
                break
            self.pos += 1
            self.skip()
            items.append(self.value())
        return items if len(items) > 1 else first

    def value(self) -> Any:
        self.skip()
        text = self.text
        if self.peek("@{"):
            return self.hashtable()
        if self.peek("@("):
            self.pos += 2
            items: list[Any] = []
            while True:
                self.skip()
                if self.peek(")"):
                    self.pos += 1
                    return items
                item = self.value_list()
                items.extend(item if isinstance(item, list) else [item])
                self.skip()
                if self.peek(";"):
                    self.pos += 1
        if self.peek("@'") or self.peek('@"'):
            quote = text[self.pos + 1]
            end = text.find("\n" + quote + "@", self.pos)
            if end < 0:
                raise self.error("unterminated here-string")
            start = text.find("\n", self.pos) + 1
            self.pos = end + 3
            return text[start:end].rstrip("\r")
        if self.peek("'"):
            return self.single_quoted()
        if self.peek('"'):
            return self.double_quoted()
        if self.peek("{"):
            return self.script_block()
        if self.peek("$"):
            match = re.compile(r"\$(true|false|null)\b", re.IGNORECASE).match(text, self.pos)
            if match is None:
                raise self.error("variables are not allowed in a data file")
            self.pos = match.end()
            return {"true": True, "false": False, "null": None}[match.group(1).lower()]
        match = _BAREWORD.match(text, self.pos)
        if match is None:
            raise self.error(f"unexpected {text[self.pos:self.pos + 10]!r}")
        self.pos = match.end()
        word = match.group(0)
        if _NUMBER.match(word):
            return float(word) if "." in word else int(word)
        return word

    def hashtable(self) -> dict[str, Any]:
        self.expect("@{")
        out: dict[str, Any] = {}
        while True:
            self.skip()
            if self.peek("}"):
                self.pos += 1
                return out
            if self.peek(";"):
                self.pos += 1
                continue
            key = self.value()
            if not isinstance(key, str):
                raise self.error("a hashtable key must be a name or a string")
            self.expect("=")
            out[key] = self.value_list()

    def single_quoted(self) -> str:
        text, parts = self.text, []
        self.pos += 1
        while True:
            end = text.find("'", self.pos)
            if end < 0:
                raise self.error("unterminated string")
            parts.append(text[self.pos : end])
            self.pos = end + 1
            if self.peek("'"):  # '' is a quote
                parts.append("'")
                self.pos += 1
                continue
            return "".join(parts)

    def double_quoted(self) -> str:
        text, parts = self.text, []
        self.pos += 1
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "`" and self.pos + 1 < len(text):
                parts.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(text[self.pos + 1], text[self.pos + 1]))
                self.pos += 2
            elif ch == '"':
                if self.peek('""'):
                    parts.append('"')
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(parts)
            else:
                parts.append(ch)
                self.pos += 1
        raise self.error("unterminated string")

    def script_block(self) -> ScriptBlockText:
        start = self.pos + 1
        end = skip_braces(self.text, self.pos, self.error)
        self.pos = end
        return ScriptBlockText(self.text[start : end - 1])


def skip_braces(text: str, pos: int, error: Any, opening: str = "{", closing: str = "}") -> int:
    """The position after the bracket matching the one at ``pos``, skipping strings and comments."""
    depth = 0
    i = pos
    while i < len(text):
        ch = text[i]
        if text.startswith("<#", i):
            i = text.find("#>", i + 2)
            if i < 0:
                break
            i += 2
            continue
        if ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        if ch == "'":
            i += 1
            while i < len(text) and not (text[i] == "'" and text[i + 1 : i + 2] != "'"):
                i += 2 if text[i] == "'" else 1
            i += 1
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "`" else 1
            i += 1
            continue
        if ch == opening:
            depth += 1
        elif ch == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise error(f"unbalanced {opening}{closing}")


def parse_data_file(text: str, origin: str = "<data file>") -> dict[str, Any]:
    """A .pssc/.psrc file as Python: its top-level hashtable."""
    reader = _Reader(text, origin)
    value = reader.value()
    reader.skip()
    if reader.pos != len(text):
        raise reader.error("text after the top-level hashtable")
    if not isinstance(value, dict):
        raise reader.error("a data file holds one hashtable")
    return value


# --- function param blocks -------------------------------------------------------------------------


@dataclass
class ParamSpec:
    """One declared parameter of a function."""

    name: str
    type: str = "object"  # string, string[], int, datetime, switch, bool, securestring, object
    mandatory: bool = False
    validate_set: tuple[str, ...] | None = None
    validate_pattern: str | None = None
    validate_range: tuple[int, int] | None = None


@dataclass
class FunctionSpec:
    name: str
    params: dict[str, ParamSpec] = field(default_factory=dict)  # lower-case name -> spec
    body: str = ""


_ATTRIBUTE = re.compile(r"\[\s*([A-Za-z.]+)\s*(\(|\])")
_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_function(name: str, body: str, origin: str = "<function>") -> FunctionSpec:
    """The declared parameters of a function body (its ``param(...)`` block)."""
    spec = FunctionSpec(name=name, body=body)
    match = re.search(r"\bparam\s*\(", body, re.IGNORECASE)
    if match is None:
        return spec
    reader = _Reader(body, origin)
    start = match.end() - 1
    end = skip_braces(body, start, reader.error, "(", ")")
    for chunk in _split_top_level(body[start + 1 : end - 1]):
        param = _param(chunk, reader)
        if param is not None:
            spec.params[param.name.lower()] = param
    return spec


def _split_top_level(text: str) -> list[str]:
    """Split a param block at the commas between parameters (not inside brackets, parens or strings)."""
    parts, depth, current, i = [], 0, [], 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            end = text.find(ch, i + 1)
            while end >= 0 and ch == "'" and text[end + 1 : end + 2] == "'":
                end = text.find("'", end + 2)
            end = len(text) - 1 if end < 0 else end
            current.append(text[i : end + 1])
            i = end + 1
            continue
        if ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _param(chunk: str, reader: _Reader) -> ParamSpec | None:
    variable: re.Match[str] | None = None
    for match in _VARIABLE.finditer(chunk):
        before = chunk[: match.start()]
        if before.count("(") == before.count(")") and before.count("[") == before.count("]"):
            variable = match
            break
    if variable is None:
        return None
    spec = ParamSpec(name=variable.group(1))
    head = chunk[: variable.start()]
    pos = 0
    while (attribute := _ATTRIBUTE.search(head, pos)) is not None:
        match = attribute
        word = match.group(1)
        if match.group(2) == "]":
            spec.type = word.lower().split(".")[-1] + ("[]" if head[match.end() - 3 : match.end() - 1] == "[]" else "")
            pos = match.end()
            continue
        args_end = skip_braces(head, match.end() - 1, reader.error, "(", ")")
        args = head[match.end() : args_end - 1]
        low = word.lower()
        if low == "parameter":
            spec.mandatory = bool(re.search(r"Mandatory(\s*=\s*\$true)?", args, re.IGNORECASE))
        elif low == "validateset":
            spec.validate_set = tuple(_strings(args))
        elif low == "validatepattern":
            spec.validate_pattern = _strings(args)[0]
        elif low == "validaterange":
            low_high = [int(v) for v in re.findall(r"-?\d+", args)]
            spec.validate_range = (low_high[0], low_high[1])
        pos = args_end
        closing = head.find("]", pos)
        pos = closing + 1 if closing >= 0 else len(head)
    # "[string[]] $Name": the array suffix sits before the variable.
    type_match = re.search(r"\[\s*([A-Za-z.]+)\s*(\[\s*\])?\s*\]\s*$", head)
    if type_match is not None:
        spec.type = type_match.group(1).lower().split(".")[-1] + ("[]" if type_match.group(2) else "")
    return spec


def _strings(args: str) -> list[str]:
    reader = _Reader(args, "<attribute>")
    out: list[str] = []
    while True:
        reader.skip()
        if reader.pos >= len(args):
            return out
        if reader.peek(","):
            reader.pos += 1
            continue
        value = reader.value()
        out.append(str(value))
