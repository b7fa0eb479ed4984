"""The demo's generated portfolio: deterministic per seed, believable, and with the
differences between sources the reports are meant to find."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from leadflow.common.v1 import event_type_pb2
from leadflow_demo import dataset

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _wire(data: dataset.Dataset) -> list[bytes]:
    return [m.SerializeToString(deterministic=True) for m in (*data.identifies, *data.events)]


def test_the_same_seed_gives_the_same_portfolio_and_another_seed_another():
    assert _wire(dataset.generate(5, 300, NOW)) == _wire(dataset.generate(5, 300, NOW))
    assert _wire(dataset.generate(5, 300, NOW)) != _wire(dataset.generate(6, 300, NOW))


def test_events_are_unique_ordered_and_inside_the_history():
    data = dataset.generate(11, 500, NOW)
    ids = [e.event_id for e in data.events]
    assert len(ids) == len(set(ids))
    times = [e.occurred_at.ToDatetime(tzinfo=UTC) for e in data.events]
    assert times == sorted(times)
    assert min(times) >= NOW - timedelta(days=dataset.HISTORY_DAYS)
    assert max(times) <= NOW
    assert {e.brand_id for e in data.events} == {b.id for b in dataset.BRANDS}


def test_it_has_the_mix_a_marketer_expects():
    data = dataset.generate(371, 2000, NOW)
    types = Counter(event_type_pb2.EventType.Name(e.type) for e in data.events)
    for kind in ("PAGE_VIEW", "EMAIL_SENT", "EMAIL_OPENED", "EMAIL_CLICKED", "FORM_SUBMITTED",
                 "MEETING_SCHEDULED", "PURCHASE", "SOCIAL_INTERACTION"):  # fmt: skip
        assert types[f"EVENT_TYPE_{kind}"] > 0, kind
    proxied = [e for e in data.events if "GoogleImageProxy" in e.user_agent]
    assert proxied and all(e.type == event_type_pb2.EVENT_TYPE_EMAIL_OPENED for e in proxied)
    assert all(p.value.currency_code == "USD" and p.value.units > 0
               for p in data.events if p.type == event_type_pb2.EVENT_TYPE_PURCHASE)  # fmt: skip
    # About 70% of visitors are identified, each with a profile and a consent decision.
    assert 0.6 < len(data.identifies) / 2000 < 0.8
    assert len(data.consents) == len(data.identifies)


def test_sources_convert_at_their_own_rates():
    data = dataset.generate(371, 4000, NOW)
    leads = Counter()
    for request in data.identifies:
        leads[request.profile.lead_source] += 1
    bought = data.buyers_by_source
    # The newsletter and partners convert best, Twitter worst, as configured.
    assert bought.get("Newsletter", 0) > 4 * bought.get("Twitter", 0)
    assert bought.get("Partner referral", 0) > 2 * bought.get("Twitter", 0)
