"""Consent per purpose: the newest decision wins; what it means for an incoming event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

ConsentStatus = Literal["granted", "withdrawn"]
TrackingVerdict = Literal["allowed", "withdrawn", "missing"]

# leadflow.ingest.v1.ConsentPurpose short names, in proto order.
PURPOSES: tuple[str, ...] = ("tracking", "email", "sms", "portfolio_sharing")
_STATUSES = ("granted", "withdrawn")


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    status: ConsentStatus
    # Where it was collected, e.g. "signup_form" (at most 100 characters in the API).
    source: str
    decided_at: datetime

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"consent status must be granted or withdrawn, not {self.status!r}")
        if self.decided_at.utcoffset() is None:
            raise ValueError("decided_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A subject's consent; None = no decision recorded for that purpose."""

    tracking: ConsentDecision | None = None
    email: ConsentDecision | None = None
    sms: ConsentDecision | None = None
    portfolio_sharing: ConsentDecision | None = None

    def get(self, purpose: str) -> ConsentDecision | None:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown consent purpose {purpose!r}")
        decision: ConsentDecision | None = getattr(self, purpose)
        return decision

    def status(self, purpose: str) -> ConsentStatus | None:
        decision = self.get(purpose)
        return decision.status if decision is not None else None


NO_CONSENT = ConsentState()


def newer(candidate: ConsentDecision, stored: ConsentDecision | None) -> bool:
    """Whether `candidate` replaces `stored`: a later decided_at wins, an earlier one is
    ignored. At the same instant "withdrawn" beats "granted" (the privacy-safe reading),
    then the greater source string wins, so the outcome never depends on arrival order."""
    if stored is None:
        return True
    if candidate.decided_at != stored.decided_at:
        return candidate.decided_at > stored.decided_at
    if candidate.status != stored.status:
        return candidate.status == "withdrawn"
    return candidate.source > stored.source


def apply_decisions(
    state: ConsentState | None,
    decisions: Mapping[str, ConsentDecision] | Iterable[tuple[str, ConsentDecision]],
) -> tuple[ConsentState, list[str]]:
    """The state after the decisions, and the purposes whose status changed (proto order).

    A decision replaces the stored one of its purpose only when `newer`; a newer decision
    with the same status replaces it too (new source and time) without counting as a change.
    Unknown purposes raise ValueError.
    """
    before = state if state is not None else NO_CONSENT
    items = decisions.items() if isinstance(decisions, Mapping) else decisions
    current = {purpose: before.get(purpose) for purpose in PURPOSES}
    for purpose, decision in items:
        if purpose not in current:
            raise ValueError(f"unknown consent purpose {purpose!r}")
        if newer(decision, current[purpose]):
            current[purpose] = decision
    after = replace(before, **current)
    changed = [purpose for purpose in PURPOSES if after.status(purpose) != before.status(purpose)]
    return after, changed


def tracking_verdict(state: ConsentState | None, require_consent: bool) -> TrackingVerdict:
    """What tracking consent means for an event of the subject.

    "withdrawn": the event is rejected (CONSENT_WITHDRAWN), whatever the tenant requires;
    "missing": no decision and the tenant requires consent: accepted, flagged consent_missing;
    "allowed": granted, or no decision and the tenant does not require consent.
    """
    decision = state.tracking if state is not None else None
    if decision is None:
        return "missing" if require_consent else "allowed"
    return "withdrawn" if decision.status == "withdrawn" else "allowed"
