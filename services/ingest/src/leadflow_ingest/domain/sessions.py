"""Sessions per subject: the client's session id when sent, else 30 minutes of inactivity.

Rules of `assign_sessions`:

- an event with a client session id belongs to that session; the session's row (start,
  last seen, counts) is maintained like any other (generated=False);
- the others are sorted by (occurred_at, event_id) and chained: an event joins the current
  session when it is at most `timeout` after the session's last event (or inside its span);
  a longer gap starts a new session. The current session at the start is the subject's open
  session (its latest generated one), if any;
- an event older than the open session's start joins it when it is at most `timeout`
  before the start (late delivery; the start moves back). Older ones do not reopen any
  earlier session: they are chained among themselves into sessions of their own;
- a new session's id is "s_" + 20 hex digits of BLAKE2b(subject key, first event id), so
  the same events give the same ids in any order and on replay.

The result depends on the set of events of the batch, never on their order in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadflow_ingest.domain.model import PAGE_VIEW

SESSION_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """What sessionisation needs of an accepted event. event_id is final (generated or not)."""

    event_id: str
    occurred_at: datetime
    type: str = ""
    # The client's session id; "" lets the server assign one.
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionState:
    """One session's row. last_seen_at is its end (the time of its latest event)."""

    session_id: str
    started_at: datetime
    last_seen_at: datetime
    event_count: int = 0
    page_views: int = 0
    # True for a session the server assigned, False for a client's session id.
    generated: bool = True

    @property
    def duration(self) -> timedelta:
        return self.last_seen_at - self.started_at

    @property
    def bounce(self) -> bool:
        """A session with exactly one page view (DESIGN.md: "bounce rate (sessions with one
        page view)"); sessions without page views (email, sms...) are not bounces."""
        return self.page_views == 1


@dataclass(frozen=True, slots=True)
class SessionAssignment:
    """The outcome of one subject's batch."""

    # The session of each event, in the order of the events given.
    session_ids: tuple[str, ...]
    # Every session created or changed, ordered by (started_at, session_id): rows to upsert.
    sessions: tuple[SessionState, ...]
    # The subject's latest generated session after the batch (the next batch's open session).
    open_session: SessionState | None


def session_id_for(subject_key: str, first_event_id: str) -> str:
    """The id of a generated session that starts with `first_event_id`."""
    digest = hashlib.blake2b(
        f"{subject_key}\x1f{first_event_id}".encode(), digest_size=10
    ).hexdigest()
    return "s_" + digest


class _Session:
    __slots__ = (
        "event_count",
        "generated",
        "last_seen_at",
        "page_views",
        "session_id",
        "started_at",
    )

    def __init__(
        self,
        session_id: str,
        started_at: datetime,
        last_seen_at: datetime,
        event_count: int,
        page_views: int,
        generated: bool,
    ) -> None:
        self.session_id = session_id
        self.started_at = started_at
        self.last_seen_at = last_seen_at
        self.event_count = event_count
        self.page_views = page_views
        self.generated = generated

    @classmethod
    def of(cls, state: SessionState) -> _Session:
        return cls(
            state.session_id,
            state.started_at,
            state.last_seen_at,
            state.event_count,
            state.page_views,
            state.generated,
        )

    def add(self, event: SessionEvent) -> None:
        at = event.occurred_at
        if at < self.started_at:
            self.started_at = at
        if at > self.last_seen_at:
            self.last_seen_at = at
        self.event_count += 1
        if event.type == PAGE_VIEW:
            self.page_views += 1

    def state(self) -> SessionState:
        return SessionState(
            self.session_id,
            self.started_at,
            self.last_seen_at,
            self.event_count,
            self.page_views,
            self.generated,
        )


def assign_sessions(
    subject_key: str,
    events: Sequence[SessionEvent],
    *,
    open_session: SessionState | None = None,
    client_sessions: Mapping[str, SessionState] | None = None,
    timeout: timedelta = SESSION_TIMEOUT,
) -> SessionAssignment:
    """Assign one subject's new events to sessions (rules in the module docstring).

    subject_key: a stable key of the subject (e.g. "lead:<id>" or "anon:<id>").
    events: the subject's accepted, non-duplicate events of the batch (each counted once).
    open_session: the subject's latest generated session as stored, if any.
    client_sessions: stored rows of the client session ids that occur in `events`; an id not
        in it starts a new row.
    """
    if len(events) == 1 and not events[0].session_id:
        quick = _one_event(subject_key, events[0], open_session, timeout)
        if quick is not None:
            return quick
    return _assign(subject_key, events, open_session, client_sessions, timeout)


def _one_event(
    subject_key: str, event: SessionEvent, open_session: SessionState | None, timeout: timedelta
) -> SessionAssignment | None:
    """The common case, without the general machinery: one server-sessioned event that is
    not older than the open session's last event. None when the general rules are needed."""
    if open_session is not None and event.occurred_at < open_session.last_seen_at:
        return None
    page = 1 if event.type == PAGE_VIEW else 0
    if open_session is not None and event.occurred_at - open_session.last_seen_at <= timeout:
        state = SessionState(
            open_session.session_id,
            open_session.started_at,
            event.occurred_at,
            open_session.event_count + 1,
            open_session.page_views + page,
            open_session.generated,
        )
    else:
        at = event.occurred_at
        state = SessionState(session_id_for(subject_key, event.event_id), at, at, 1, page, True)
    return SessionAssignment((state.session_id,), (state,), state)


def _assign(
    subject_key: str,
    events: Sequence[SessionEvent],
    open_session: SessionState | None,
    client_sessions: Mapping[str, SessionState] | None,
    timeout: timedelta,
) -> SessionAssignment:
    touched: dict[str, _Session] = {}
    known = client_sessions or {}
    ids = [""] * len(events)
    server: list[int] = []

    for position, event in enumerate(events):
        sid = event.session_id
        if not sid:
            server.append(position)
            continue
        session = touched.get(sid)
        if session is None:
            stored = known.get(sid)
            if stored is None and open_session is not None and open_session.session_id == sid:
                stored = open_session
            if stored is not None:
                session = _Session.of(stored)
            else:
                at = event.occurred_at
                session = _Session(sid, at, at, 0, 0, False)
            touched[sid] = session
        session.add(event)
        ids[position] = sid

    current: _Session | None = None
    if open_session is not None:
        current = touched.get(open_session.session_id) or _Session.of(open_session)

    server.sort(key=lambda i: (events[i].occurred_at, events[i].event_id))
    if current is not None:
        split = 0
        start = current.started_at
        while split < len(server) and events[server[split]].occurred_at < start:
            split += 1
        late, later = server[:split], server[split:]
        # Late events adjacent to the open session's start join it, newest first.
        k = len(late) - 1
        while k >= 0 and current.started_at - events[late[k]].occurred_at <= timeout:
            _join(current, events[late[k]], late[k], ids, touched)
            k -= 1
        # Older ones form their own sessions; they never touch the open one.
        _chain(subject_key, events, late[: k + 1], None, timeout, ids, touched)
        current = _chain(subject_key, events, later, current, timeout, ids, touched)
    else:
        current = _chain(subject_key, events, server, None, timeout, ids, touched)

    sessions = sorted(
        (session.state() for session in touched.values()),
        key=lambda s: (s.started_at, s.session_id),
    )
    return SessionAssignment(
        session_ids=tuple(ids),
        sessions=tuple(sessions),
        open_session=current.state() if current is not None else None,
    )


def _join(
    session: _Session,
    event: SessionEvent,
    position: int,
    ids: list[str],
    touched: dict[str, _Session],
) -> None:
    session.add(event)
    ids[position] = session.session_id
    touched[session.session_id] = session


def _chain(
    subject_key: str,
    events: Sequence[SessionEvent],
    positions: list[int],
    current: _Session | None,
    timeout: timedelta,
    ids: list[str],
    touched: dict[str, _Session],
) -> _Session | None:
    """Chain events (sorted, none before current's start) into sessions; the last one."""
    for position in positions:
        event = events[position]
        if current is None or event.occurred_at - current.last_seen_at > timeout:
            sid = session_id_for(subject_key, event.event_id)
            current = touched.get(sid) or _Session(
                sid, event.occurred_at, event.occurred_at, 0, 0, True
            )
        _join(current, event, position, ids, touched)
    return current
