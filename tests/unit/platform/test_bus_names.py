from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leadflow_platform.nats.consumer import ConsumerSpec
from leadflow_platform.nats.streams import BusNames


def test_without_a_namespace_names_are_unchanged():
    names = BusNames()
    assert names.subject("ingest.event.recorded") == "ingest.event.recorded"
    assert names.stream("INGEST") == "INGEST"
    assert names.consumer("scoring-ingest-events") == "scoring-ingest-events"


def test_a_namespace_prefixes_every_name():
    names = BusNames("staging-eu")
    assert names.subject("ingest.event.recorded") == "staging-eu.ingest.event.recorded"
    assert names.stream("INGEST") == "STAGING_EU_INGEST"
    assert names.consumer("scoring-ingest-events") == "staging-eu-scoring-ingest-events"
    assert names.logical_subject("staging-eu.ingest.event.recorded") == "ingest.event.recorded"
    assert names.logical_subject("other.ingest.event.recorded") == "other.ingest.event.recorded"


@given(
    st.sampled_from(["", "t1", "prod"]),
    st.from_regex(r"[a-z]{1,8}(\.[a-z_]{1,8}){2}", fullmatch=True),
)
def test_logical_subject_inverts_subject(namespace, subject):
    names = BusNames(namespace)
    assert names.logical_subject(names.subject(subject)) == subject


def test_retry_delays_grow_then_hold():
    spec = ConsumerSpec("d", "S", ("s",), backoff_seconds=(1.0, 5.0, 30.0))
    assert [spec.delay_after(n) for n in (1, 2, 3, 4, 9)] == [1.0, 5.0, 30.0, 30.0, 30.0]
