"""Adaptive time windows: which slice of the period to fetch next, and how.

Times are integer epoch seconds (audit records have one-second resolution); a window is
``[start, end)``. A window is *complete* only when a validated ``ReturnLargeSet`` session on it ran
dry below the 50,000 cap (collect/ual.py); a plain call proves nothing, since plain calls may be
silently capped far below ``ResultSize`` (sim/quirks.py), and ``ResultCount`` and sort order are not
trusted either. Density observations only size windows, so a wrong guess costs calls, never records.

Without an honest ``ResultCount``, a session that hits the 50,000 cap says only that its window holds
more: its rows are a random sample of the window, which gives the shape but not the scale. The first
piece after it is therefore small in sample points (``UNKNOWN_SCALE_POINTS``); its true count then
scales the sample for the rest of the capped window.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum

PLAIN_CAP = 5000  # Search-UnifiedAuditLog -ResultSize maximum
SESSION_CAP = 50000  # ReturnLargeSet: at most 50,000 rows per session
UNKNOWN_SCALE_POINTS = 1000  # sample points in the first piece of a capped window of unknown total
SPLIT_AFTER_FAILURES = 2  # a window whose session failed this often is fetched in halves
GIVE_UP_FAILURES = 6  # ... and, when it still fails at the floor, fetched alone after a quiet pause
ALONE_TRIES = 2  # fetches alone before the window is reported as a gap


class Mode(StrEnum):
    PLAIN = "plain"  # one call, -ResultSize 5000, no session
    SESSION = "session"  # -SessionCommand ReturnLargeSet, paged 5000 at a time


class SessionPolicy(StrEnum):
    AUTO = "auto"  # every window in a session (the only evidence of completeness)
    NEVER = "never"  # plain calls only: nothing can be proven complete (every window is reported unverified)
    ALWAYS = "always"  # the same as auto since plain calls prove nothing; kept for existing command lines


@dataclass(frozen=True, order=True)
class Window:
    start: int
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start

    def contains(self, ts: int) -> bool:
        return self.start <= ts < self.end

    def describe(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}


@dataclass
class _Region:
    """A stretch still to fetch, with what earlier capped fetches taught about it."""

    start: int
    end: int
    max_len: int  # windows inside a capped window are at most half its length (guarantees progress)
    density: float | None = None  # records/second lower-bound estimate from a capped sample
    session_ok: bool = True  # False once a session on a window containing it hit the 50,000 cap
    force_session: bool = False  # a plain call on this exact window hit the cap: page it instead
    sample: list[int] = field(default_factory=list)  # sorted CreationTimes a capped fetch returned here
    weight: float = 1.0  # records each sample point stands for (> 1 when the service announced a total)
    origin: int | None = None  # start of the capped window this stretch came from
    proven: float = 0.0  # records/second its capped window held at least, on average (cap / its length)
    weight_known: bool = True  # False: the sample's scale is unknown (capped session, ResultCount not honest)
    origin_end: int | None = None  # end of the capped window the sample came from
    failures: int = 0  # sessions on this window that failed (restart, foreign rows)
    alone_tries: int = 0  # > 0: the window is fetched with no other search running (see failed_session)

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = self.start
        if self.origin_end is None:
            self.origin_end = self.end

    def piece(self, start: int, end: int) -> _Region:
        """The same knowledge for a part of this stretch."""
        return _Region(start, end, self.max_len, self.density, self.session_ok, sample=self.sample,
                       weight=self.weight, origin=self.origin, proven=self.proven, weight_known=self.weight_known,
                       origin_end=self.origin_end, failures=self.failures, alone_tries=self.alone_tries)


@dataclass(frozen=True)
class Planned:
    window: Window
    mode: Mode
    session_ok: bool
    failures: int = 0  # earlier failed sessions on this window
    alone_tries: int = 0  # > 0: fetch it only after a quiet pause, with no other search running
    probe: bool = False  # sized without any density: the fetch may estimate the window's total


@dataclass
class WindowPlanner:
    """Plans windows left to right for one stream; results may come back in any order.

    ``plain_target``/``session_target``: how many records a window should be predicted to hold.
    Both stay well below the caps because density is only known from neighbouring windows and
    tenants are bursty; a miss costs one capped call (plain) or ten (session).
    """

    start: int
    end: int
    policy: SessionPolicy = SessionPolicy.AUTO
    plain_target: int = 3500
    session_target: int = 25000
    floor: int = 1
    _todo: list[_Region] = field(default_factory=list, init=False)
    _known: list[tuple[int, int, float]] = field(default_factory=list, init=False)  # (start, end, density)
    in_flight: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.end > self.start:
            self._todo.append(_Region(self.start, self.end, max_len=self.end - self.start))

    # --- planning -----------------------------------------------------------------------------

    def finished(self) -> bool:
        return not self._todo and self.in_flight == 0

    def exclude(self, window: Window) -> None:
        """Mark a window as already covered (resume)."""
        out: list[_Region] = []
        for r in self._todo:
            if window.end <= r.start or window.start >= r.end:
                out.append(r)
                continue
            if r.start < window.start:
                out.append(r.piece(r.start, window.start))
            if window.end < r.end:
                out.append(r.piece(window.end, r.end))
        self._todo = sorted(out, key=lambda r: r.start)

    def next(self) -> Planned | None:
        """The next window to fetch, or None when everything left is in flight or done."""
        if not self._todo:
            return None
        region = self._todo[0]
        density, measured = self._density_at(region)
        scale = 1.0
        if density is not None and not measured and not region.force_session:
            # Only a capped sample or a guess so far: one modest window, then size from its count.
            if self.in_flight:
                return None
            scale = 0.4
        use_session = self.policy is not SessionPolicy.NEVER and region.session_ok
        if density is None or region.force_session:
            length = region.max_len  # probe: one session over as much as allowed
        else:
            target = self.session_target if use_session else self.plain_target
            length = max(1, int(scale * target / density))
        if region.sample and not region.force_session:
            # Never plan past the point where the capped sample alone would fill the window; while the
            # sample's scale is unknown, take a small piece whose true count will tell it.
            target = self.session_target if use_session else self.plain_target
            i = bisect.bisect_left(region.sample, region.start)
            k = max(1, int(target / region.weight)) if region.weight_known else UNKNOWN_SCALE_POINTS
            if i + k < len(region.sample):
                length = min(length, max(1, region.sample[i + k] - region.start))
        length = max(self.floor, min(length, region.max_len, region.end - region.start))
        window = Window(region.start, region.start + length)
        if window.end >= region.end:
            self._todo.pop(0)
        else:
            region.start = window.end
        self.in_flight += 1
        return Planned(window, Mode.SESSION if use_session else Mode.PLAIN, region.session_ok, region.failures,
                       alone_tries=region.alone_tries, probe=density is None)

    def _density_at(self, region: _Region) -> tuple[float | None, bool]:
        """Density for sizing, and whether it was measured on finished windows.

        Preference: the finished window ending right here; the capped-sample hint for this stretch
        (not measured); the densest of the last finished windows before here; the nearest after. Windows still
        in flight teach nothing yet, so with several in flight the freshest measurement is used
        rather than whatever the previous window was sized with (which may be a burst long passed).
        """
        if not self._known:
            return region.density, False
        # A neighbour's density never undercuts the average this stretch's own capped window is known to
        # exceed: sized from an empty window next door, a capped stretch was re-fetched in plain calls that
        # each brought ~1,500 new records (500,000 records: 527 calls instead of 118).
        own = region.proven if region.session_ok and self.policy is not SessionPolicy.NEVER else 0.0
        i = bisect.bisect_right(self._known, (region.start, float("inf"), float("inf")))
        if i > 0 and self._known[i - 1][1] == region.start:
            return max(self._known[i - 1][2], own), True
        # Several windows are in flight, so the nearest finished one may lie a few windows back (in a
        # quiet night, say): take the densest of the last three. An oversized window costs a failed
        # session; an undersized one only a partial page.
        recent = max(k[2] for k in self._known[max(0, i - 3) : i]) if i > 0 else None
        if recent is not None and region.origin is not None and self._known[i - 1][1] > region.origin:
            return max(recent, own), True  # a piece of this stretch has been measured already
        if region.density is not None:
            return region.density, False
        if recent is not None:
            return recent, True
        return self._known[i][2], True

    # --- feedback -----------------------------------------------------------------------------

    def complete(self, planned: Planned, count: int) -> None:
        """The window is fully fetched; ``count`` records fell inside it."""
        self.in_flight -= 1
        self.observe(planned.window, count)
        self._learn_scale(planned.window, count)

    def _learn_scale(self, window: Window, count: int) -> None:
        """A finished piece of a capped window tells how many records each of its sample points stands for."""
        for region in self._todo:
            if region.weight_known or not region.sample or region.origin is None or region.origin_end is None:
                continue
            if not region.origin <= window.start < window.end <= region.origin_end:
                continue
            points = bisect.bisect_left(region.sample, window.end) - bisect.bisect_left(region.sample, window.start)
            if points >= 20:  # fewer say too little about the scale
                weight = max(1.0, count / points)
                for other in self._todo:  # every piece of the same capped window shares the sample
                    if other.sample is region.sample:
                        other.weight, other.weight_known = weight, True

    def observe(self, window: Window, count: int) -> None:
        """Remember the density of a finished window (also for windows finished by an earlier run)."""
        # A window with nothing in it still bounds the density (< 1 record over its length).
        density = max(count, 0.5) / window.seconds
        bisect.insort(self._known, (window.start, window.end, density))

    def incomplete(
        self, planned: Planned, sample_times: list[int], cap: int, announced: int | None = None
    ) -> Window | None:
        """The fetch hit ``cap`` (or a session failed): refetch the window in smaller pieces.

        Returns the window as a gap when it is already at the floor and nothing else can be tried.
        """
        self.in_flight -= 1
        w = planned.window
        # The halves of a window whose session hit 50,000 may still use sessions: they are sized from
        # its (random, unsorted) 50,000-row sample, and halving guarantees progress down to the floor.
        session_ok = planned.session_ok and self.policy is not SessionPolicy.NEVER
        can_session_retry = planned.mode is Mode.PLAIN and session_ok
        if w.seconds <= self.floor and not can_session_retry:
            return w
        inside = sorted(t for t in sample_times if w.contains(t))
        span = (max(inside) - min(inside) + 1) if inside else w.seconds
        density = max(cap / max(span, 1), cap / w.seconds)
        weight = 1.0
        if announced and inside and announced > len(inside):
            # A session page is a random sample of the window; the announced total scales it. A hint
            # for sizing only: whatever the total really is, each piece is still checked for the cap.
            weight = announced / len(inside)
            density = announced / w.seconds
        proven = max(cap, announced or 0) / w.seconds
        if can_session_retry:
            # Now known to need more than one call: page it in sessions sized from the sample.
            region = _Region(w.start, w.end, max_len=w.seconds, density=density, session_ok=True, sample=inside,
                             proven=proven)
            region.force_session = w.seconds <= self.floor or density * w.seconds <= self.session_target
        else:
            # Without an honest total, a session's 50,000 rows give the window's shape, not its scale.
            known = bool(announced) or planned.mode is Mode.PLAIN
            region = _Region(w.start, w.end, max_len=max(self.floor, w.seconds // 2), density=density,
                             session_ok=session_ok, sample=inside, weight=weight, proven=proven, weight_known=known)
        self._insert(region)
        return None

    def failed_session(self, planned: Planned) -> Window | None:
        """A session restarted, lost rows or carried another search's rows: fetch the window again in a
        new session, in halves after repeated failures. When it keeps failing at the floor, it is fetched
        alone (``Planned.alone_tries``): another search's rows can only reach a page while other searches
        are being paged (quirk session-crosstalk), so the caller lets every other fetch finish, waits, and
        runs it by itself. Returns the window as a gap when that fails too."""
        self.in_flight -= 1
        w = planned.window
        failures = planned.failures + 1
        alone_tries = 0
        if w.seconds <= self.floor and failures >= GIVE_UP_FAILURES:
            if planned.alone_tries >= ALONE_TRIES:
                return w
            alone_tries = planned.alone_tries + 1
        max_len = max(self.floor, w.seconds // 2) if failures >= SPLIT_AFTER_FAILURES else w.seconds
        session_ok = self.policy is not SessionPolicy.NEVER
        self._insert(_Region(w.start, w.end, max_len=max_len, density=None, session_ok=session_ok,
                             failures=failures, alone_tries=alone_tries))
        return None

    def _insert(self, region: _Region) -> None:
        keys = [r.start for r in self._todo]
        self._todo.insert(bisect.bisect_left(keys, region.start), region)
