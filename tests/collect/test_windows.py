"""The window planner: session probes, splits, the scale of a capped sample, failed sessions, the floor."""

from __future__ import annotations

import itertools
import random

from mia_bridge.collect.windows import (
    ALONE_TRIES,
    GIVE_UP_FAILURES,
    PLAIN_CAP,
    SESSION_CAP,
    UNKNOWN_SCALE_POINTS,
    Mode,
    SessionPolicy,
    Window,
    WindowPlanner,
)


def test_first_window_probes_the_whole_period_with_one_session() -> None:
    """Plain calls may be silently capped: only a session can prove a window complete."""
    planner = WindowPlanner(0, 86400)
    first = planner.next()
    assert first is not None and first.window == Window(0, 86400) and first.mode is Mode.SESSION
    assert planner.next() is None  # nothing to plan until the probe reports back
    planner.complete(first, 42)
    assert planner.finished()


def test_capped_session_of_unknown_total_is_scaled_by_a_small_first_piece() -> None:
    """ResultCount echoing: the 50,000 rows are a random sample of unknown scale. A small first piece
    (in sample points) measures it; the next pieces are then sized for the session target."""
    rng = random.Random(1)
    planner = WindowPlanner(0, 1_000_000)
    probe = planner.next()
    assert probe is not None
    sample = sorted(rng.randrange(1_000_000) for _ in range(SESSION_CAP))  # each point stands for 20 records
    assert planner.incomplete(probe, sample, SESSION_CAP) is None
    first = planner.next()
    assert first is not None and first.mode is Mode.SESSION and first.window.start == 0
    points = sum(1 for t in sample if first.window.contains(t))
    assert abs(points - UNKNOWN_SCALE_POINTS) <= 2
    assert planner.next() is None  # one piece at a time until the scale is known
    planner.complete(first, points * 20)
    second = planner.next()
    assert second is not None and second.window.start == first.window.end
    held = 20 * sum(1 for t in sample if second.window.contains(t))
    assert 20_000 <= held <= 26_000  # sized for the 25,000 target, not for 1,000 sample points


def test_never_policy_splits_capped_windows_in_halves_or_smaller() -> None:
    planner = WindowPlanner(0, 1000, policy=SessionPolicy.NEVER)
    probe = planner.next()
    assert probe is not None
    planner.incomplete(probe, [999] * PLAIN_CAP, PLAIN_CAP)
    covered = []
    while (p := planner.next()) is not None:
        assert p.mode is Mode.PLAIN and p.window.seconds <= 500
        covered.append(p.window)
        planner.complete(p, 10)
    assert covered[0].start == 0 and covered[-1].end == 1000
    assert all(a.end == b.start for a, b in itertools.pairwise(covered))


def test_capped_at_the_floor_without_sessions_is_a_gap() -> None:
    planner = WindowPlanner(0, 1, policy=SessionPolicy.NEVER)
    probe = planner.next()
    assert probe is not None
    assert planner.incomplete(probe, [0] * PLAIN_CAP, PLAIN_CAP) == Window(0, 1)
    assert planner.finished()


def test_one_second_window_whose_session_is_capped_is_a_gap() -> None:
    planner = WindowPlanner(0, 1)
    session = planner.next()
    assert session is not None and session.mode is Mode.SESSION and session.window == Window(0, 1)
    assert planner.incomplete(session, [0] * SESSION_CAP, SESSION_CAP) == Window(0, 1)


def test_failed_session_is_retried_in_a_new_session_then_halved_then_a_gap() -> None:
    planner = WindowPlanner(0, 100)
    first = planner.next()
    assert first is not None and first.mode is Mode.SESSION
    assert planner.failed_session(first) is None
    again = planner.next()
    assert again is not None and again.mode is Mode.SESSION and again.window == Window(0, 100)
    assert planner.failed_session(again) is None
    half = planner.next()
    assert half is not None and half.window == Window(0, 50) and half.failures == 2
    one = WindowPlanner(0, 1)
    tries = []
    for _ in range(GIVE_UP_FAILURES + ALONE_TRIES - 1):
        planned = one.next()
        assert planned is not None and planned.window == Window(0, 1)
        tries.append(planned.alone_tries)
        assert one.failed_session(planned) is None
    # at the floor: GIVE_UP_FAILURES failed sessions, then ALONE_TRIES fetches with nothing else running
    assert tries == [0] * GIVE_UP_FAILURES + list(range(1, ALONE_TRIES))
    last = one.next()
    assert last is not None and last.alone_tries == ALONE_TRIES
    assert one.failed_session(last) == Window(0, 1) and one.finished()


def test_density_sizes_following_windows_and_resume_exclusion() -> None:
    planner = WindowPlanner(0, 100_000, plain_target=1000)
    planner.exclude(Window(0, 1000))
    probe = planner.next()
    assert probe is not None and probe.window.start == 1000
    planner.incomplete(probe, [t for t in range(50_000, 100_000)], SESSION_CAP)
    planner.observe(Window(0, 1000), 100)  # 0.1 records/s just before the region
    nxt = planner.next()
    assert nxt is not None and nxt.window.start == 1000
    # A session sized for 25,000 at 0.1/s would be 250,000 s; the sample bounds it instead.
    assert nxt.window.end <= 100_000


def test_an_empty_neighbour_does_not_undercut_a_stretch_known_to_be_capped() -> None:
    """A quiet window just before a busy stretch must not size the stretch as quiet once the stretch's own
    own session came back capped."""
    planner = WindowPlanner(0, 2_000_000)
    planner.observe(Window(-100_000, 0), 0)  # finished, empty, ending where the stretch starts
    probe = planner.next()
    assert probe is not None and probe.mode is Mode.SESSION and probe.window == Window(0, 2_000_000)
    sample = list(range(0, 2_000_000, 40))  # 50,000 rows, evenly spread
    assert planner.incomplete(probe, sample, SESSION_CAP) is None
    nxt = planner.next()
    assert nxt is not None and nxt.mode is Mode.SESSION and nxt.window.start == 0
    assert nxt.window.seconds <= 40 * UNKNOWN_SCALE_POINTS + 40  # not sized as quiet from the empty neighbour
