"""The window planner: probes, splits, sessions for dense windows, the one-second floor."""

from __future__ import annotations

import itertools

from mia_bridge.collect.windows import PLAIN_CAP, SESSION_CAP, Mode, SessionPolicy, Window, WindowPlanner


def test_first_window_probes_the_whole_period_with_one_plain_call() -> None:
    planner = WindowPlanner(0, 86400)
    first = planner.next()
    assert first is not None and first.window == Window(0, 86400) and first.mode is Mode.PLAIN
    assert planner.next() is None  # nothing to plan until the probe reports back
    planner.complete(first, 42)
    assert planner.finished()


def test_capped_plain_window_is_paged_in_a_session_when_sessions_allowed() -> None:
    planner = WindowPlanner(0, 1000)
    probe = planner.next()
    assert probe is not None
    assert planner.incomplete(probe, list(range(500, 1000)) * 10, PLAIN_CAP) is None
    nxt = planner.next()
    assert nxt is not None and nxt.mode is Mode.SESSION and nxt.window.start == 0


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


def test_one_second_window_gets_a_session_before_it_is_called_a_gap() -> None:
    planner = WindowPlanner(0, 1)
    probe = planner.next()
    assert probe is not None
    assert planner.incomplete(probe, [0] * PLAIN_CAP, PLAIN_CAP) is None
    session = planner.next()
    assert session is not None and session.mode is Mode.SESSION and session.window == Window(0, 1)
    assert planner.incomplete(session, [0] * SESSION_CAP, SESSION_CAP) == Window(0, 1)


def test_failed_session_falls_back_to_plain_calls() -> None:
    planner = WindowPlanner(0, 100, policy=SessionPolicy.ALWAYS)
    first = planner.next()
    assert first is not None and first.mode is Mode.SESSION
    planner.failed_session(first)
    again = planner.next()
    assert again is not None and again.mode is Mode.PLAIN and again.window == Window(0, 100)


def test_density_sizes_following_windows_and_resume_exclusion() -> None:
    planner = WindowPlanner(0, 100_000, plain_target=1000)
    planner.exclude(Window(0, 1000))
    probe = planner.next()
    assert probe is not None and probe.window.start == 1000
    planner.incomplete(probe, [t for t in range(95_000, 100_000)], PLAIN_CAP)
    planner.observe(Window(0, 1000), 100)  # 0.1 records/s just before the region
    nxt = planner.next()
    assert nxt is not None and nxt.window.start == 1000
    # A session sized for 25,000 at 0.1/s would be 250,000 s; the sample bounds it instead.
    assert nxt.window.end <= 100_000


def test_an_empty_neighbour_does_not_undercut_a_stretch_known_to_be_capped() -> None:
    """A quiet window just before a busy stretch must not size the stretch as quiet once the stretch's own
    plain call came back capped (it used to be re-fetched in plain calls netting ~1,500 records each)."""
    planner = WindowPlanner(0, 2_000_000)
    planner.observe(Window(-100_000, 0), 0)  # finished, empty, ending where the stretch starts
    probe = planner.next()
    assert probe is not None and probe.mode is Mode.PLAIN and probe.window == Window(0, 2_000_000)
    newest = [*range(1_996_000, 2_000_000), *range(1_999_000, 2_000_000)]  # a plain page: the newest 5,000
    assert planner.incomplete(probe, newest, PLAIN_CAP) is None
    nxt = planner.next()  # the stretch holds more than a call returns: page it in a session
    assert nxt is not None and nxt.mode is Mode.SESSION and nxt.window.start == 0
