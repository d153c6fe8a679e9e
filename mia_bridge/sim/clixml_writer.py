"""CLIXML for simulated output objects, written directly (the server's hot path).

psrpcore builds a PSObject per value and serializes it through its type registry, which costs more
than the rest of a Search-UnifiedAuditLog call together. ``object_clixml`` writes the same XML
(same RefIds, TN/TNRef, escapes via psrpcore's own string and date encoders) straight from a
SimObject; tests check that both serializations read back identically. Values it does not know
(SecureString, dicts, …) make it return None so the caller uses psrpcore.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from psrpcore.types._serializer import _serialize_datetime, _serialize_string

from mia_bridge.sim.registry import SimObject

MULTI_VALUED_TYPE = "Microsoft.Exchange.Data.MultiValuedProperty`1[[System.String, mscorlib]]"
_INT32 = range(-(2**31), 2**31)


class _Unsupported(Exception):
    pass


# What psrpcore's string encoder would change: control characters, surrogates, characters beyond the
# BMP (UTF-16 surrogate pairs) and a literal "_x" that would read as an escape.
_NEEDS_ENCODING = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\U00010000-\U0010ffff]|_[xX]")


def _text(value: str) -> str:
    if _NEEDS_ENCODING.search(value):
        value = _serialize_string(value)
    if "&" in value or "<" in value or ">" in value:
        value = escape(value)
    return value


@functools.lru_cache(maxsize=4096)
def _name(name: str) -> str:
    """The N="…" attribute of a property (property names repeat: cached)."""
    return " N=" + quoteattr(_serialize_string(name))


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.obj_ids = 0
        self.type_ids: dict[tuple[str, ...], int] = {}

    def types(self, names: tuple[str, ...]) -> None:
        ref = self.type_ids.get(names)
        if ref is not None:
            self.parts.append(f'<TNRef RefId="{ref}" />')
            return
        ref = self.type_ids[names] = len(self.type_ids)
        self.parts.append(f'<TN RefId="{ref}">' + "".join(f"<T>{_text(n)}</T>" for n in names) + "</TN>")

    def obj(self, obj: SimObject, attr: str = "") -> None:
        names = tuple(obj.type_names)
        if "System.Object" not in names:
            names += ("System.Object",)
        self.parts.append(f'<Obj RefId="{self.obj_ids}"{attr}>')
        self.obj_ids += 1
        self.types(names)
        self.parts.append("<Props>")
        for key, value in obj.properties.items():
            self.value(value, _name(key))
        self.parts.append("</Props></Obj>")

    def value(self, value: Any, attr: str = "") -> None:
        parts = self.parts
        if value is None:
            parts.append(f"<Nil{attr} />")
        elif isinstance(value, bool):
            parts.append(f"<B{attr}>{'true' if value else 'false'}</B>")
        elif isinstance(value, int):
            tag = "I32" if value in _INT32 else "I64"
            parts.append(f"<{tag}{attr}>{value}</{tag}>")
        elif isinstance(value, str):
            parts.append(f"<S{attr}>{_text(value)}</S>" if value else f"<S{attr} />")
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise _Unsupported("non-finite float")
            parts.append(f"<Db{attr}>{value!r}</Db>")
        elif isinstance(value, dt.datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            parts.append(f"<DT{attr}>{_serialize_datetime(aware.astimezone(dt.UTC))}</DT>")
        elif isinstance(value, list | tuple):
            parts.append(f'<Obj RefId="{self.obj_ids}"{attr}>')
            self.obj_ids += 1
            self.types((MULTI_VALUED_TYPE, "System.Object"))
            if value:
                parts.append("<LST>")
                for item in value:
                    self.value(item)
                parts.append("</LST></Obj>")
            else:
                parts.append("<LST /></Obj>")
        elif isinstance(value, SimObject):
            self.obj(value, attr)
        else:
            raise _Unsupported(type(value).__name__)


def object_clixml(obj: SimObject) -> bytes | None:
    """The CLIXML of one output object, or None when psrpcore must serialize it."""
    writer = _Writer()
    try:
        writer.obj(obj)
    except _Unsupported:
        return None
    return "".join(writer.parts).encode("utf-8")
