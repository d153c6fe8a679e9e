"""Iterating JSON objects in JSON-lines or JSON-array inputs, with per-record error positions.

One streaming loop reads every shape a file may hold, in any mix: objects one per line, several arrays,
arrays followed by lines, pretty-printed objects. Every record seen is yielded (an object, or why it cannot
be one): a bad line is quarantined and reading resumes on the next line; a bad array element is quarantined
up to its end (found by its brackets, strings skipped) and reading resumes at the next element; text
outside any record is quarantined a line at a time. Nothing is silently skipped, nothing larger than the
record size limit is held in memory, and no record nested past ``MAX_DEPTH`` is parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from typing import Any, TextIO

from mia_bridge.readers.base import Sniff
from mia_bridge.readers.decoding import DecodedInput
from mia_bridge.readers.values import DEFAULT_MAX_RECORD_BYTES, EXCERPT, oversize_reason
from mia_bridge.records.cells import MAX_DEPTH, NUL_IN_RECORD, parse_json, too_deep

_DECODER = json.JSONDecoder()

JsonItem = tuple[int, dict[str, Any] | None, str, str | None]  # (line or record number, object, raw, error)

_CHUNK = 1 << 20
_LOOKAHEAD = 64 * 1024
_NOT_SPACE = re.compile(r"[^ \t\r\n]")
_NOT_SPACE_OR_COMMA = re.compile(r"[^ \t\r\n,]")
_STRUCTURE = re.compile(r'["\[\]{}]')
_IN_STRING = re.compile(r'["\\]')
_NEXT_ELEMENT = re.compile(r"\n([ \t]*),?[ \t]*(?=\{)")


class _Stream:
    """A window on the decoded text: read a chunk at a time, dropped once consumed."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.offset = 0  # characters before buf[0]
        self._line = 1  # line number at buf[_line_pos]
        self._line_pos = 0

    def fill(self, size: int = _CHUNK) -> bool:
        """Append up to ``size`` more characters; False at the end of the input."""
        if self.eof:
            return False
        chunk = self._handle.read(max(size, _CHUNK))
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def compact(self) -> None:
        """Drop what was consumed (only between records, so positions held by callers stay valid)."""
        if self.pos > _CHUNK:
            self.line_at(self.pos)
            self.buf = self.buf[self.pos:]
            self.offset += self.pos
            self._line_pos -= self.pos
            self.pos = 0

    def drop(self, keep_from: int) -> int:
        """Forget everything before ``keep_from`` (a record too large to hold); returns the shift."""
        self.line_at(keep_from)
        self.buf = self.buf[keep_from:]
        self.offset += keep_from
        self._line_pos -= keep_from
        self.pos = max(self.pos - keep_from, 0)
        return keep_from

    def line_at(self, pos: int) -> int:
        """The line number of ``buf[pos]`` (positions asked for never decrease)."""
        if pos > self._line_pos:
            self._line += self.buf.count("\n", self._line_pos, pos)
            self._line_pos = pos
        return self._line

    def skip(self, pattern: re.Pattern[str]) -> str | None:
        """Move to the next character ``pattern`` matches and return it; None at the end."""
        while True:
            match = pattern.search(self.buf, self.pos)
            if match is not None:
                self.pos = match.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            self.compact()
            if not self.fill():
                return None

    def ensure(self, size: int) -> None:
        while len(self.buf) - self.pos < size and self.fill():
            pass

    def value_end(self, start: int, limit: int, keep: bool = False) -> tuple[int | None, str | None, int]:
        """End of the JSON value at ``start`` by its brackets (strings skipped): ``(end, excerpt, skipped)``.

        ``end`` is None when the input ends first. When the value grows past ``limit`` characters, its first
        ``EXCERPT`` characters are returned and the rest is read and let go (``skipped`` counts it all);
        with ``keep``, the scan stops there instead (end None, nothing let go).
        """
        depth, in_string, pos, excerpt, dropped = 0, False, start, None, 0
        while True:
            match = (_IN_STRING if in_string else _STRUCTURE).search(self.buf, pos)
            if match is None or (in_string and match.group() == "\\" and match.end() >= len(self.buf)):
                pos = len(self.buf) if match is None else match.start()
                if keep and pos - start > limit:
                    return None, None, pos - start
                if excerpt is None and pos - start > limit:
                    excerpt = self.buf[start:start + EXCERPT]
                if excerpt is not None:  # nothing of it is kept any more
                    shift = self.drop(pos)
                    dropped += shift
                    start -= shift
                    pos -= shift
                if not self.fill():
                    return None, excerpt, pos - start + dropped
                continue
            char, pos = match.group(), match.end()
            if in_string:
                if char == "\\":
                    pos += 1
                else:
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
            else:
                depth -= 1
            if depth <= 0 and not in_string:
                if excerpt is None and pos - start > limit:
                    excerpt = self.buf[start:start + EXCERPT]
                return pos, excerpt, pos - start + dropped

    def line_end(self, start: int, limit: int) -> tuple[int, str | None, int]:
        """End of the line at ``start`` (after its newline, or the input's end), like ``value_end``."""
        excerpt, dropped, search = None, 0, start
        while True:
            found = self.buf.find("\n", search)
            if found >= 0:
                end = found + 1
                if excerpt is None and end - start > limit:
                    excerpt = self.buf[start:start + EXCERPT]
                return end, excerpt, end - start + dropped
            if excerpt is None and len(self.buf) - start > limit:
                excerpt = self.buf[start:start + EXCERPT]
            if excerpt is not None:
                shift = self.drop(len(self.buf))
                dropped += shift
                start -= shift
            search = len(self.buf)
            if not self.fill():
                return len(self.buf), excerpt, len(self.buf) - start + dropped


def _checked(raw: str, obj: Any) -> tuple[dict[str, Any] | None, str | None]:
    if "\x00" in raw:
        return None, NUL_IN_RECORD
    if raw.count("[") + raw.count("{") > MAX_DEPTH and too_deep(obj):
        return None, f"nested deeper than {MAX_DEPTH} levels"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    return obj, None


def _decode(stream: _Stream, start: int, end: int) -> tuple[Any, str | None]:
    """The value of ``stream.buf[start:end]`` (one whole value), or why there is none."""
    return parse_json(stream.buf[start:end])


def iter_values(handle: TextIO, limit: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[JsonItem]:
    """Every record of a JSON text, arrays and lines in any mix (see the module docstring).

    Objects outside arrays are numbered by their first line; array elements by their position among all
    array elements of the file (as ConvertTo-Json output is usually cited).
    """
    stream = _Stream(handle)
    element = 0
    while True:
        stream.compact()
        # Commas between top-level objects are separators, not records (the tail of an array whose "[" was
        # cut off reads as its objects, then one stray "]" line).
        char = stream.skip(_NOT_SPACE_OR_COMMA)
        if char is None:
            return
        start = stream.pos
        line = stream.line_at(start)
        if char == "[":
            stream.pos += 1
            element, closed = yield from _array(stream, element, limit)
            if not closed:
                return
            continue
        if char == "{":
            yield _top_object(stream, start, line, limit)
            continue
        end, excerpt, size = stream.line_end(start, limit)
        text = excerpt if excerpt is not None else stream.buf[start:end].rstrip("\r\n")
        stream.pos = end
        yield line, None, text, f"text outside any record ({size:,} characters up to the end of the line)"


def _top_object(stream: _Stream, start: int, line: int, limit: int) -> JsonItem:
    """One object outside an array: a JSON line, or a pretty-printed object over several lines."""
    stream.ensure(_LOOKAHEAD)
    try:
        obj, end = _DECODER.raw_decode(stream.buf, start)
    except (ValueError, RecursionError):
        obj, end = None, -1
    if end > 0 and end - start <= limit:
        line_end = stream.buf.find("\n", end)
        rest = stream.buf[end:line_end if line_end >= 0 else len(stream.buf)]
        if not rest.strip() or rest.lstrip()[:1] in "{[,]":
            stream.pos = end
            raw = stream.buf[start:end]
            checked, error = _checked(raw, obj)
            return line, checked, raw, error
    # Not one valid object on the buffered text: first take its line as the record (JSON lines).
    end, excerpt, _ = stream.line_end(start, limit)
    if excerpt is not None:
        stream.pos = end
        return line, None, excerpt, oversize_reason(limit)
    raw = stream.buf[start:end].rstrip("\r\n")
    if "\x00" in raw:
        stream.pos = end
        return line, None, raw, NUL_IN_RECORD
    try:
        value = json.loads(raw)
    except RecursionError:
        stream.pos = end
        return line, None, raw, f"nested deeper than {MAX_DEPTH} levels"
    except json.JSONDecodeError as exc:
        if exc.pos < len(raw.rstrip()) - 1 or (stream.eof and end >= len(stream.buf)):
            stream.pos = end  # broken within the line: this line is the bad record
            return line, None, raw, f"invalid JSON: {exc}"
        return _multi_line(stream, start, line, limit)  # the object goes on: pretty-printed
    stream.pos = end
    checked, error = _checked(raw, value)
    return line, checked, raw, error


def _multi_line(stream: _Stream, start: int, line: int, limit: int) -> JsonItem:
    """An object that starts at ``start`` and goes on past its line (pretty-printed), read to its closing
    bracket; when that is not one valid object, only its first line is the bad record (a truncated JSON line
    must not take the good lines after it along)."""
    end, _, _ = stream.value_end(start, limit, keep=True)
    if end is not None:
        raw = stream.buf[start:end]
        value, error = _decode(stream, start, end)
        if error is None:
            checked, error = _checked(raw, value)
            stream.pos = end
            return line, checked, raw, error
    end, _, _ = stream.line_end(start, limit)
    stream.pos = end
    raw = stream.buf[start:end].rstrip("\r\n")
    _, error = parse_json(raw)
    return line, None, raw, error or "invalid JSON"


def _array(stream: _Stream, element: int, limit: int) -> Generator[JsonItem, None, tuple[int, bool]]:
    """The elements of the array whose ``[`` was just read; returns ``(elements so far, closed)``."""
    while True:
        stream.compact()
        char = stream.skip(_NOT_SPACE_OR_COMMA)
        if char is None:
            yield element + 1, None, "", (f"JSON array is not closed (file truncated?) at character "
                                          f"{stream.offset + stream.pos:,}")
            return element + 1, False
        if char == "]":
            stream.pos += 1
            return element, True
        element += 1
        start = stream.pos
        stream.ensure(_LOOKAHEAD)
        try:
            obj, end = _DECODER.raw_decode(stream.buf, start)
        except (ValueError, RecursionError):
            obj, end = None, -1
        if end > 0 and end - start <= limit:
            stream.pos = end
            raw = stream.buf[start:end]
            checked, error = _checked(raw, obj)
            yield element, checked, raw, error
            continue
        where = f"array element {element} (line {stream.line_at(start)}, character {stream.offset + start:,})"
        end_or_none: int | None
        if char not in "[{\"":
            end_or_none, excerpt, _ = stream.line_end(start, limit)
            reason = "not a JSON value"
        else:
            end_or_none, excerpt, _ = stream.value_end(start, limit)
            reason = ""
        if excerpt is not None:
            stream.pos = len(stream.buf) if end_or_none is None else end_or_none
            yield element, None, excerpt, f"{where}: {oversize_reason(limit)}"
            if end_or_none is None:
                return element, False
            continue
        stop = len(stream.buf) if end_or_none is None else end_or_none
        value, error = (None, "its brackets never close (an unterminated string, or the file is truncated)") if (
            end_or_none is None) else (
            _decode(stream, start, stop))
        if error is None:
            stream.pos = stop
            raw = stream.buf[start:stop]
            value, error = _checked(raw, value)
            yield element, value, raw, error  # the whole element only arrived with more input
            continue
        # A broken element (an unterminated string throws its brackets off): the next line that starts an
        # element which parses is where reading resumes; else the element ends where its brackets say.
        resume = _resync(stream.buf, start, stop)
        stream.pos = stop if resume is None else resume
        raw = stream.buf[start:stream.pos]
        note = "" if resume is None else f"; reading resumed at line {stream.line_at(resume)}"
        yield element, None, raw[:100_000], (f"{where}: {reason or error}; {len(raw):,} characters "
                                             f"quarantined{note}")
        if end_or_none is None and resume is None:
            return element, False


def _resync(text: str, start: int, stop: int) -> int | None:
    """The start of a later line in ``text[start:stop]`` that begins an array element which parses: no
    more indented than the broken element's line, an optional comma, then an object."""
    indent = start - (text.rfind("\n", 0, start) + 1)
    for attempt, match in enumerate(_NEXT_ELEMENT.finditer(text, start, stop)):
        if attempt >= 1000:
            break
        if len(match.group(1)) > indent:
            continue
        try:
            obj, _ = _DECODER.raw_decode(text, match.end())
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            return match.start() + 1
    return None


def iter_json_objects(src: DecodedInput, sniff: Sniff) -> Iterator[JsonItem]:
    """Every record of a JSON input (lines, arrays, or a mix), quarantining what cannot be read."""
    del sniff  # the same loop reads every shape
    with src.open_text() as handle:
        yield from iter_values(handle, src.max_record_bytes)


def first_object(head: str) -> tuple[str | None, dict[str, Any] | None]:
    """Classify the start of a text as JSON lines or array and decode its first object if complete."""
    stripped = head.lstrip()
    if stripped.startswith("["):
        body = stripped[1:].lstrip()
        try:
            obj, _ = _DECODER.raw_decode(body)
        except (ValueError, RecursionError):
            return "array", None
        return "array", obj if isinstance(obj, dict) else None
    if stripped.startswith("{"):
        # The first object that parses decides the format, so one broken first line does not misroute a file.
        for line in stripped.splitlines()[:50]:
            obj, error = parse_json(line.strip())
            if error is None and isinstance(obj, dict):
                return "lines", obj
        try:
            obj, _ = _DECODER.raw_decode(stripped)  # one pretty-printed object
        except (ValueError, RecursionError):
            return "lines", None
        return "lines", obj if isinstance(obj, dict) else None
    # JSON lines whose first lines are junk (a stray text, a bare value): the first object decides.
    lines = stripped.splitlines()
    for line in lines[1:50]:
        text = line.strip()
        if text.startswith("{"):
            obj, error = parse_json(text)
            if error is None and isinstance(obj, dict):
                return "lines", obj
    return None, None
