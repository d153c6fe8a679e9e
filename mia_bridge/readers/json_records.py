"""Iterating JSON objects in JSON-lines or JSON-array inputs, with per-record error positions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mia_bridge.readers.base import Sniff
from mia_bridge.readers.decoding import DecodedInput

_DECODER = json.JSONDecoder()

JsonItem = tuple[int, dict[str, Any] | None, str, str | None]  # (line or record number, object, raw, error)


def iter_json_objects(src: DecodedInput, sniff: Sniff) -> Iterator[JsonItem]:
    if sniff.json_kind == "array":
        yield from _iter_array(src)
    else:
        yield from _iter_lines(src)


def _iter_lines(src: DecodedInput) -> Iterator[JsonItem]:
    with src.open_text() as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                yield number, None, text, f"invalid JSON: {exc}"
                continue
            if not isinstance(obj, dict):
                yield number, None, text, f"expected a JSON object, got {type(obj).__name__}"
                continue
            yield number, obj, text, None


def _iter_array(src: DecodedInput) -> Iterator[JsonItem]:
    """Elements of a top-level array; a truncated or broken tail is quarantined, the rest kept."""
    with src.open_text() as handle:
        text = handle.read()
    pos = text.index("[") + 1
    number = 0
    end = len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end:
            yield number + 1, None, "", "JSON array is not closed (file truncated?)"
            return
        if text[pos] == "]":
            return
        number += 1
        try:
            obj, stop = _DECODER.raw_decode(text, pos)
        except ValueError as exc:
            yield number, None, text[pos : pos + 100_000], f"invalid JSON in array element: {exc}; rest of file skipped"
            return
        raw = text[pos:stop]
        pos = stop
        if not isinstance(obj, dict):
            yield number, None, raw, f"expected a JSON object, got {type(obj).__name__}"
            continue
        yield number, obj, raw, None


def first_object(head: str) -> tuple[str | None, dict[str, Any] | None]:
    """Classify the start of a text as JSON lines or array and decode its first object if complete."""
    stripped = head.lstrip()
    if stripped.startswith("["):
        body = stripped[1:].lstrip()
        try:
            obj, _ = _DECODER.raw_decode(body)
        except ValueError:
            return "array", None
        return "array", obj if isinstance(obj, dict) else None
    if stripped.startswith("{"):
        # The first object that parses decides the format, so one broken first line does not misroute a file.
        for line in stripped.splitlines()[:50]:
            try:
                obj = json.loads(line.strip())
            except ValueError:
                continue
            if isinstance(obj, dict):
                return "lines", obj
        try:
            obj, _ = _DECODER.raw_decode(stripped)  # one pretty-printed object
        except ValueError:
            return "lines", None
        return "lines", obj if isinstance(obj, dict) else None
    return None, None
