"""The collected records as views that read the evidence files again on every pass, never held whole.

A MailItemsAccessed search returns millions of records on a large tenant (about 1.5 KB of JSON each, several
KB as a Python dict): ``EvidenceRecords`` is such a search's records, parsed one line at a time each time
they are iterated, so what holds them in memory is one record. ``UniqueRecords`` is every search's records
together, each Id once, in the searches' order (what ``searches.all_records`` gave as a list). Both can be
iterated any number of times and give the same records in the same order each time.

What is still proportional to the number of records: ``UniqueRecords`` keeps the Ids it has seen during one
pass (a set of short strings, freed when the pass ends); the counts (``len``) are kept once counted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mia_bridge.records import fields as af
from mia_bridge.records.fields import operation_of

Record = Mapping[str, Any]

MAIL_ITEMS = "mailitemsaccessed"


class EvidenceRecords:
    """The records of one evidence file (JSON lines, plain or .gz), parsed afresh on every pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._count: int | None = None

    def _lines(self) -> Iterator[str]:
        opener: Any = gzip.open if self.path.name.endswith(".gz") else open
        with opener(self.path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield line

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for line in self._lines():
            yield json.loads(line)

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self._lines())
        return self._count

    def __bool__(self) -> bool:
        return next(iter(self._lines()), None) is not None

    def __repr__(self) -> str:
        return f"EvidenceRecords({str(self.path)!r})"


class MappedRecords:
    """``records`` with ``change`` applied to each as it is read (redacted copies for the derived exports)."""

    def __init__(self, records: Iterable[Record], change: Callable[[Record], Record]) -> None:
        self.records = records
        self.change = change

    def __iter__(self) -> Iterator[Record]:
        for record in self.records:
            yield self.change(record)

    def __len__(self) -> int:
        return len(self.records)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return bool(self.records)


class UniqueRecords:
    """Several searches' records, each Id once (the first search's copy; records without an Id all kept)."""

    def __init__(self, sources: Sequence[Iterable[Record]]) -> None:
        self.sources = list(sources)
        self._count: int | None = None

    def __iter__(self) -> Iterator[Record]:
        seen: set[str] = set()
        count = 0
        for source in self.sources:
            for record in source:
                rid = af.record_id(record)
                if rid and rid in seen:
                    continue
                seen.add(rid)
                count += 1
                yield record
        self._count = count

    def __len__(self) -> int:
        if self._count is None:
            for _ in self:
                pass
        assert self._count is not None
        return self._count

    def __bool__(self) -> bool:
        return any(bool(source) for source in self.sources)


def is_streamed(records: Iterable[Any]) -> bool:
    """Whether ``records`` are read from files on each pass (rather than held in memory)."""
    return isinstance(records, (EvidenceRecords, MappedRecords, UniqueRecords))


def without_mail_items(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records other than MailItemsAccessed, held (the few thousand the other findings read), in order."""
    return [r for r in records if operation_of(r) != MAIL_ITEMS]


class Records(Protocol):
    """What a search's records are: a list, or a view read from the evidence file on each pass."""

    def __iter__(self) -> Iterator[Record]: ...

    def __len__(self) -> int: ...
