"""Proto <-> domain mapping (api/mapping.py): configurations, sinks and lead snapshots round
trip; unknown enum numbers fall back to "unspecified"; a decision maps with its trace."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from leadflow.routing.v1 import routing_config_pb2 as cpb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.api import mapping
from leadflow_routing.domain.config import (
    MauticSink,
    Owner,
    RetryPolicy,
    Sink,
    SinkKind,
    Strategy,
    TimeRange,
    WebhookSink,
    with_defaults,
)
from leadflow_routing.domain.decision import (
    ConsentOutcome,
    PriorRoute,
    RuleOutcome,
    Trigger,
    compile_config,
    decide,
)
from leadflow_routing.domain.document import load_yaml
from leadflow_routing.domain.snapshot import (
    Grade,
    LeadConsents,
    LeadScore,
    LeadSnapshot,
    LifecycleStage,
    Segment,
    Temperature,
)

EXAMPLE = Path(__file__).parents[3] / "examples" / "portfolio-371minds.yaml"
AT = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


def example():  # type: ignore[no-untyped-def]
    return with_defaults(replace(load_yaml(EXAMPLE.read_text()), version=3, created_at=AT))


def test_the_example_configuration_round_trips_through_its_proto():
    config = example()
    brands = list(config.brands)
    owner = replace(
        brands[0].owners[0],
        out_of_office=True,
        out_of_office_periods=(TimeRange(start=AT, end=AT + timedelta(days=2)),),
    )
    brands[0] = replace(brands[0], owners=(owner, *brands[0].owners[1:]))
    config = replace(config, brands=tuple(brands), created_by="key-1", description="d")
    message = mapping.config_to_proto(config)
    again = mapping.config_from_proto(cpb.RoutingConfig.FromString(message.SerializeToString()))
    assert again == config
    assert message.rules[0].WhichOneof("nurture") == "nurture_sequence_id"
    assert message.rules[2].WhichOneof("nurture") == "nurture_by_segment"


def test_sinks_round_trip_each_kind_with_retry_and_timeout():
    retry = RetryPolicy(
        max_attempts=7, initial_backoff=timedelta(seconds=2), max_backoff=timedelta(minutes=5)
    )
    sinks = [
        Sink(
            webhook=WebhookSink(
                url="https://x/h",
                secret_ref="s",
                headers={"X-A": "1"},
                timeout=timedelta(seconds=3),
            ),
            retry=retry,
        ),
        Sink(
            mautic=MauticSink(
                base_url="https://m", credentials_ref="c", segment_id="12", campaign_id="4"
            ),
            retry=retry,
        ),
        Sink(retry=retry),
    ]
    for sink in sinks:
        message = mapping.sink_to_proto(sink)
        assert mapping.sink_from_proto(cpb.Sink.FromString(message.SerializeToString())) == sink
    assert mapping.sink_to_proto(sinks[2]).WhichOneof("kind") == "log"
    assert mapping.sink_from_proto(cpb.Sink()).kind is SinkKind.LOG


def test_unknown_enum_numbers_read_as_unspecified():
    message = cpb.RoutingConfig()
    rule = message.rules.add(id="r", target_brand_id="b", strategy=99, continuation=42)
    rule.condition = "true"
    message.nurture_sequences.add(id="s", segment=77).steps.add(day_offset=1, channel=55)
    message.sla.breach_action = 9
    config = mapping.config_from_proto(message)
    assert config.rules[0].strategy is Strategy.UNSPECIFIED
    assert config.rules[0].continuation.short_name == "stop"
    assert config.nurture_sequences[0].segment is Segment.UNSPECIFIED
    assert config.nurture_sequences[0].steps[0].channel.short_name == "email"
    assert config.sla.breach_action.short_name == "unspecified"
    snapshot = mapping.snapshot_from_proto(tpb.LeadSnapshot(grade=99, stage=99))
    assert (snapshot.grade, snapshot.stage) == (Grade.UNSPECIFIED, LifecycleStage.UNSPECIFIED)


def snapshot() -> LeadSnapshot:
    return LeadSnapshot(
        lead_id="lead-1",
        home_brand_id="modumind",
        traits={"email": "a@example.com", "interests": ["strategy"], "size": 40.0},
        segment=Segment.ENTERPRISE,
        score=LeadScore(total=72.5, intent=10.0, model_version=2, scored_at=AT),
        grade=Grade.B_PLUS,
        temperature=Temperature.HOT,
        stage=LifecycleStage.ENGAGED,
        consents=LeadConsents(tracking=True, portfolio_sharing=False),
        recent_event_counts={"page_view": 3, "webinar": 1},
        first_seen_at=AT - timedelta(days=3),
        last_activity_at=AT,
        as_of=AT,
    )


def test_a_snapshot_round_trips_and_unset_facts_stay_unset():
    lead = snapshot()
    message = mapping.snapshot_to_proto(lead)
    assert (
        mapping.snapshot_from_proto(tpb.LeadSnapshot.FromString(message.SerializeToString()))
        == lead
    )
    assert not message.consents.HasField("email")
    bare = mapping.snapshot_from_proto(mapping.snapshot_to_proto(LeadSnapshot(lead_id="x")))
    assert bare == LeadSnapshot(lead_id="x")
    assert not mapping.snapshot_to_proto(lead, with_traits=False).HasField("traits")


def test_a_decision_maps_with_its_trace_and_routes():
    compiled = compile_config(example())
    history = {
        "stacksense|identified|": PriorRoute("decision-0", AT - timedelta(days=1)),
    }
    lead = replace(snapshot(), consents=LeadConsents(tracking=True, portfolio_sharing=True))
    decision, _ = decide(compiled, lead, Trigger.IDENTIFIED, AT, history=history)
    decision = replace(decision, decision_id="decision-1", trigger_event_id="evt-1", reason="r")
    message = mapping.decision_to_proto(decision)
    assert (message.decision_id, message.lead_id, message.config_version) == (
        "decision-1",
        "lead-1",
        3,
    )
    assert (
        message.trigger == Trigger.IDENTIFIED.value
        and message.decided_at.ToDatetime(tzinfo=UTC) == AT
    )
    assert message.summary == decision.summary
    assert message.lead == mapping.snapshot_to_proto(decision.lead)
    first = message.evaluations[0]  # hot enterprise -> stacksense, already routed for this
    assert (first.rule_id, first.outcome, first.matched) == (
        "hot-enterprise-to-stacksense",
        RuleOutcome.DUPLICATE.value,
        True,
    )
    assert first.consent.outcome == ConsentOutcome.ALLOWED_PORTFOLIO_SHARING.value
    assert (first.dedup.previous_decision_id, first.dedup.key) == (
        "decision-0",
        "stacksense|identified|",
    )
    assert first.explanation == 'lead.segment = "enterprise"; lead.temperature = "hot"'
    routed = [e for e in message.evaluations if e.outcome == RuleOutcome.ROUTED.value]
    assert [e.rule_id for e in routed] == [r.rule_id for r in message.routes]
    for evaluation, route in zip(routed, message.routes, strict=True):
        selection = evaluation.owner_selection
        assert selection.owner == route.owner and route.owner.owner_id
        assert sum(c.chosen for c in selection.candidates) == 1
    assert mapping.owner_ref("b", None) is None
    assert mapping.owner_ref("b", Owner(id="o", name="O")) == tpb.OwnerRef(
        brand_id="b", owner_id="o", name="O"
    )
