"""Progress on stderr, for ``mia collect`` and ``mia investigate`` alike: rich bars for people, JSON lines
with ``--json``.

With ``--json`` every progress line on stderr is one JSON object with an ``event`` and the fields below
(README "Progress events on `--json`"); stdout keeps the final summary. Lines that do not start with ``{``
are messages for people (errors, warnings).

==============  ==========================================================================================
event           fields
==============  ==========================================================================================
query_started   ``query`` (the search's name), ``total_seconds`` (its period), ``done_seconds`` (already
                collected by an earlier run of the case)
window_done     ``query``, ``seconds`` (of the period this window covered), ``records`` (rows received),
                ``calls``, ``retries``
query_finished  ``query``, ``records`` (unique records kept), ``calls``, ``retries``, ``gaps`` (windows not
                proven complete)
step            (``mia investigate``) ``name``, ``status`` (done, skipped, failed), ``reason``, ``attention``,
                ``details``
note            (``mia investigate``) ``text``: what the human output prints between steps
==============  ==========================================================================================
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from mia_bridge.cli.console import Console, safe

if TYPE_CHECKING:
    from mia_bridge.collect.engine import QueryResult

EVENTS: dict[str, tuple[str, ...]] = {
    "query_started": ("query", "total_seconds", "done_seconds"),
    "window_done": ("query", "seconds", "records", "calls", "retries"),
    "query_finished": ("query", "records", "calls", "retries", "gaps"),
    "step": ("name", "status", "reason", "attention", "details"),
    "note": ("text",),
}


class JsonEvents:
    """Writes the events of ``EVENTS`` as JSON lines on stderr (never wrapped; json.dumps escapes every
    control character), refusing any event or field the vocabulary does not document."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def emit(self, event: str, **fields: Any) -> None:
        expected = EVENTS.get(event)
        if expected is None or tuple(fields) != expected:
            raise ValueError(f"progress event {event!r} with fields {sorted(fields)} is not in the vocabulary")
        self.console.err.write_line(json.dumps({"event": event, **fields}, default=str))


class CollectionProgress:
    """The collector's ``Progress``: a rich bar per query on stderr, started with the first query and stopped
    by ``close()`` (a later query starts a new one), or the ``query_*``/``window_done`` events with ``--json``.

    ``detailed`` bars (``mia collect``) also show the rate, calls and retries; ``mia investigate``'s show
    the records only."""

    def __init__(self, console: Console, *, as_json: bool = False, detailed: bool = False) -> None:
        self.console = console
        self.events = JsonEvents(console) if as_json else None
        self.detailed = detailed
        self._bar: RichBar | None = None
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}
        self._totals: dict[str, dict[str, int]] = {}

    def __enter__(self) -> CollectionProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _columns(self) -> list[ProgressColumn]:
        columns: list[ProgressColumn] = [TextColumn("{task.description}", markup=False), BarColumn(),
                                         TextColumn("{task.percentage:>5.1f}%"),
                                         TextColumn("{task.fields[records]} records")]
        if self.detailed:
            columns += [TextColumn("{task.fields[rate]:.0f}/s"), TextColumn("{task.fields[calls]} calls"),
                        TextColumn("{task.fields[retries]} retries")]
        return [*columns, TimeElapsedColumn()]

    def query_started(self, name: str, total_seconds: int, done_seconds: int) -> None:
        self._started[name] = time.monotonic()
        self._totals[name] = {"records": 0, "calls": 0, "retries": 0}
        if self.events is not None:
            self.events.emit("query_started", query=name, total_seconds=total_seconds, done_seconds=done_seconds)
            return
        if self._bar is None:
            self._bar = RichBar(*self._columns(), console=self.console.err.rich, transient=False)
            self._bar.start()
        self._tasks[name] = self._bar.add_task(safe(name), total=max(total_seconds, 1), completed=done_seconds,
                                               records=0, rate=0.0, calls=0, retries=0)

    def window_done(self, name: str, seconds: int, records: int, calls: int, retries: int) -> None:
        if self.events is not None:
            self.events.emit("window_done", query=name, seconds=seconds, records=records, calls=calls,
                             retries=retries)
            return
        totals = self._totals.setdefault(name, {"records": 0, "calls": 0, "retries": 0})
        totals["records"] += records
        totals["calls"] += calls
        totals["retries"] += retries
        if self._bar is not None and name in self._tasks:
            elapsed = max(time.monotonic() - self._started.get(name, time.monotonic()), 1e-6)
            self._bar.update(self._tasks[name], advance=seconds, rate=totals["records"] / elapsed,
                             records=totals["records"], calls=totals["calls"], retries=totals["retries"])

    def query_finished(self, name: str, result: QueryResult) -> None:
        if self.events is not None:
            self.events.emit("query_finished", query=name, records=result.counts.unique, calls=result.calls,
                             retries=result.retries, gaps=len(result.gaps))
            return
        if self._bar is not None and name in self._tasks:
            task = self._tasks[name]
            self._bar.update(task, completed=self._bar.tasks[task].total, records=result.counts.unique,
                             calls=result.calls, retries=result.retries)

    def close(self) -> None:
        """Stop the bars (before other output, so that it is not drawn over)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._tasks.clear()
