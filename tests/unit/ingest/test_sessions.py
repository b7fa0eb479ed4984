"""Sessionisation per subject: client ids kept, otherwise 30 minutes of inactivity."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_ingest.domain.sessions import (
    SessionEvent,
    SessionState,
    assign_sessions,
    session_id_for,
)

KEY = "lead:L1"
T0 = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def view(event_id: str, minutes: float, session_id: str = "") -> SessionEvent:
    return SessionEvent(event_id, at(minutes), "page_view", session_id)


def test_session_ids_are_deterministic() -> None:
    sid = session_id_for(KEY, "e1")
    assert sid == session_id_for(KEY, "e1")
    assert sid.startswith("s_") and len(sid) == 22
    assert sid != session_id_for("lead:L2", "e1")
    assert sid != session_id_for(KEY, "e2")


def test_a_gap_over_30_minutes_starts_a_new_session() -> None:
    events = [
        view("e1", 0),
        SessionEvent("e2", at(20), "click"),
        view("e3", 55),  # 35 minutes after e2
    ]
    result = assign_sessions(KEY, events)
    s1, s3 = session_id_for(KEY, "e1"), session_id_for(KEY, "e3")
    assert result.session_ids == (s1, s1, s3)
    assert result.sessions == (
        SessionState(s1, at(0), at(20), event_count=2, page_views=1),
        SessionState(s3, at(55), at(55), event_count=1, page_views=1),
    )
    assert result.open_session == result.sessions[1]


def test_exactly_30_minutes_continues_the_session() -> None:
    result = assign_sessions(KEY, [view("e1", 0), view("e2", 30)])
    assert len(set(result.session_ids)) == 1
    late = [view("e1", 0), SessionEvent("e2", at(30) + timedelta(seconds=1), "page_view")]
    assert len(set(assign_sessions(KEY, late).session_ids)) == 2


def test_input_order_does_not_matter() -> None:
    events = [view("e3", 55), view("e1", 0), view("e2", 20)]
    s1, s3 = session_id_for(KEY, "e1"), session_id_for(KEY, "e3")
    assert assign_sessions(KEY, events).session_ids == (s3, s1, s1)


def test_the_open_session_continues() -> None:
    open_session = SessionState("s_open", at(0), at(10), event_count=4, page_views=2)
    result = assign_sessions(KEY, [view("e5", 35), view("e6", 80)], open_session=open_session)
    s6 = session_id_for(KEY, "e6")
    assert result.session_ids == ("s_open", s6)
    assert result.sessions == (
        SessionState("s_open", at(0), at(35), event_count=5, page_views=3),
        SessionState(s6, at(80), at(80), event_count=1, page_views=1),
    )
    assert result.open_session is not None and result.open_session.session_id == s6


def test_an_event_just_before_the_open_session_joins_it() -> None:
    open_session = SessionState("s_open", at(60), at(70), event_count=2, page_views=2)
    result = assign_sessions(KEY, [view("late1", 40), view("late2", 15)], open_session=open_session)
    # late1 is 20 min before the start and joins; late2 is 25 min before late1 and joins too.
    assert result.session_ids == ("s_open", "s_open")
    assert result.sessions == (SessionState("s_open", at(15), at(70), 4, 4),)


def test_an_old_event_does_not_reopen_an_old_session() -> None:
    open_session = SessionState("s_open", at(600), at(610), event_count=2, page_views=2)
    result = assign_sessions(
        KEY, [view("old1", 0), view("old2", 10), view("new", 615)], open_session=open_session
    )
    s_old = session_id_for(KEY, "old1")
    assert result.session_ids == (s_old, s_old, "s_open")
    assert result.sessions == (
        SessionState(s_old, at(0), at(10), 2, 2),
        SessionState("s_open", at(600), at(615), 3, 3),
    )
    assert result.open_session == SessionState("s_open", at(600), at(615), 3, 3)


def test_an_untouched_open_session_is_not_rewritten() -> None:
    open_session = SessionState("s_open", at(600), at(610), 2, 2)
    result = assign_sessions(KEY, [view("old", 0)], open_session=open_session)
    assert [s.session_id for s in result.sessions] == [session_id_for(KEY, "old")]
    assert result.open_session == open_session


def test_client_session_ids_are_kept_and_counted() -> None:
    stored = SessionState("web-42", at(0), at(5), 3, 1, generated=False)
    events = [
        view("c1", 10, "web-42"),
        SessionEvent("c2", at(300), "click", "web-42"),  # a client id ignores the timeout
        view("n1", 20, "app-7"),
        view("srv", 400),
    ]
    result = assign_sessions(KEY, events, client_sessions={"web-42": stored})
    s_srv = session_id_for(KEY, "srv")
    assert result.session_ids == ("web-42", "web-42", "app-7", s_srv)
    assert result.sessions == (
        SessionState("web-42", at(0), at(300), 5, 2, generated=False),
        SessionState("app-7", at(20), at(20), 1, 1, generated=False),
        SessionState(s_srv, at(400), at(400), 1, 1, generated=True),
    )
    assert result.open_session is not None and result.open_session.session_id == s_srv


def test_a_client_echoing_the_server_session_id_updates_that_session() -> None:
    open_session = SessionState("s_abc", at(0), at(10), 2, 2)
    result = assign_sessions(
        KEY, [view("e1", 15, "s_abc"), view("e2", 20)], open_session=open_session
    )
    assert result.session_ids == ("s_abc", "s_abc")
    assert result.sessions == (SessionState("s_abc", at(0), at(20), 4, 4),)


def test_custom_timeout() -> None:
    result = assign_sessions(KEY, [view("e1", 0), view("e2", 6)], timeout=timedelta(minutes=5))
    assert len(set(result.session_ids)) == 2


def test_duration_and_bounce() -> None:
    state = SessionState("s", at(0), at(12.5), event_count=3, page_views=1)
    assert state.duration == timedelta(minutes=12, seconds=30)
    assert state.bounce
    assert not SessionState("s", at(0), at(1), 2, 2).bounce
    assert not SessionState("s", at(0), at(0), 1, 0).bounce  # an email open only


def test_no_events() -> None:
    assert assign_sessions(KEY, []).sessions == ()
    assert assign_sessions(KEY, []).open_session is None


# --- properties ------------------------------------------------------------------------

minutes = st.integers(0, 600)
kinds = st.sampled_from(["page_view", "click", "email_opened"])
client_ids = st.sampled_from(["", "", "", "c1", "c2"])  # mostly server-assigned
batches = st.lists(st.tuples(minutes, kinds, client_ids), max_size=25)
open_sessions = st.none() | st.tuples(st.integers(0, 600), st.integers(0, 60)).map(
    lambda t: SessionState("s_stored", at(t[0]), at(t[0] + t[1]), 3, 1)
)


def as_events(spec: list[tuple[int, str, str]]) -> list[SessionEvent]:
    return [SessionEvent(f"e{i}", at(m), kind, sid) for i, (m, kind, sid) in enumerate(spec)]


@settings(max_examples=200)
@given(batches, open_sessions, st.randoms(use_true_random=False))
def test_every_event_gets_one_session_whatever_the_order(
    spec: list[tuple[int, str, str]], open_session: SessionState | None, rnd: random.Random
) -> None:
    events = as_events(spec)
    result = assign_sessions(KEY, events, open_session=open_session)
    assert len(result.session_ids) == len(events)
    by_event = dict(zip((e.event_id for e in events), result.session_ids, strict=True))

    touched = {s.session_id: s for s in result.sessions}
    assert set(result.session_ids) == set(touched)
    before = open_session.event_count if open_session and open_session.session_id in touched else 0
    assert sum(s.event_count for s in result.sessions) == len(events) + before
    for event in events:
        session = touched[by_event[event.event_id]]
        assert session.started_at <= event.occurred_at <= session.last_seen_at

    shuffled = list(events)
    rnd.shuffle(shuffled)
    again = assign_sessions(KEY, shuffled, open_session=open_session)
    assert dict(zip((e.event_id for e in shuffled), again.session_ids, strict=True)) == by_event
    assert again.sessions == result.sessions
    assert again.open_session == result.open_session


@given(st.lists(minutes, max_size=30, unique=True))
def test_generated_sessions_split_exactly_at_gaps_over_the_timeout(times: list[int]) -> None:
    events = [view(f"e{m:04d}", m) for m in times]
    result = assign_sessions(KEY, events)
    ordered = sorted(zip(times, result.session_ids, strict=True))
    for (m1, s1), (m2, s2) in itertools.pairwise(ordered):
        assert (s1 == s2) == (m2 - m1 <= 30)
    for state in result.sessions:
        first = min(m for m, s in ordered if s == state.session_id)
        assert state.session_id == session_id_for(KEY, f"e{first:04d}")


@given(
    st.integers(-120, 120),
    st.sampled_from(["page_view", "click"]),
    st.one_of(st.none(), st.tuples(st.integers(0, 60), st.integers(0, 5))),
)
def test_the_one_event_fast_path_agrees_with_the_general_rules(minute, kind, open_spec):
    from leadflow_ingest.domain.sessions import _assign, _one_event

    base = datetime(2025, 1, 1, 12, tzinfo=UTC)
    open_session = None
    if open_spec is not None:
        length, views = open_spec
        open_session = SessionState(
            "s_open", base - timedelta(minutes=length), base, views + 1, views, True
        )
    event = SessionEvent("e1", base + timedelta(minutes=minute), kind)
    quick = _one_event("anon:v", event, open_session, timedelta(minutes=30))
    general = _assign("anon:v", [event], open_session, None, timedelta(minutes=30))
    if quick is not None:
        assert quick == general
    else:
        assert minute < 0  # only events before the open session's end take the long way
