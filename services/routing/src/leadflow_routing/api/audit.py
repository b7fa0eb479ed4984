"""The audit record a decision stores, and the full trace rebuilt from it.

A decision evaluates hundreds of rules; writing each one's condition, explanation and
consent text into every stored record would cost more than deciding. The stored record is a
`RouteDecision` that keeps what cannot be derived: the lead snapshot the decision saw, the
trigger, the configuration version, the summary, the routes, and, for the notable rules only
(matched or errored), the outcome, the error, the earlier decision a duplicate repeats and
the owner selection. Everything else (which rules were evaluated, their ids, conditions,
explanations, the consent explanations, the duplicate keys) is a pure function of that
configuration version and that snapshot, so `full_record` rebuilds the trace exactly as
`mapping.decision_to_proto` gave it when the decision was made.
"""

from __future__ import annotations

from datetime import UTC

from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.api import mapping
from leadflow_routing.domain.decision import (
    CompiledConfig,
    Decision,
    DedupCheck,
    Evaluations,
    Explainer,
    RuleEvaluation,
    RuleOutcome,
    Trigger,
    check_consent,
    dedup_key,
    evaluated_count,
)

COMPACT = 2
"""decisions.record_format of a compact record (1: the whole trace, as written before)."""


def compact_record(decision: Decision, lead: tpb.LeadSnapshot | None = None) -> tpb.RouteDecision:
    """The record to store; `lead` is the decision's snapshot already in proto form."""
    out = mapping.decision_header(decision)
    out.lead.CopyFrom(lead if lead is not None else mapping.snapshot_to_proto(decision.lead))
    for e in decision.evaluations.notable.values():
        stored = out.evaluations.add(
            rule_index=e.rule_index,
            matched=e.matched,
            error=e.error,
            outcome=e.outcome.value,
        )
        if e.dedup is not None and e.dedup.previous_decision_id:
            stored.dedup.previous_decision_id = e.dedup.previous_decision_id
            mapping.set_timestamp(stored.dedup.previous_routed_at, e.dedup.previous_routed_at)
        if e.owner_selection is not None:
            mapping.fill_selection(stored.owner_selection, e.owner_selection)
    out.routes.extend(mapping.route_to_proto(r) for r in decision.routes)
    return out


def full_record(record: tpb.RouteDecision, compiled: CompiledConfig) -> tpb.RouteDecision:
    """The whole trace of a compact record, with `compiled` its configuration version."""
    config = compiled.config
    lead = mapping.snapshot_from_proto(record.lead)
    trigger = Trigger(record.trigger)
    explainer = Explainer(lead, trigger.short_name, record.trigger_detail)
    notable: dict[int, RuleEvaluation] = {}
    for stored in record.evaluations:
        index = stored.rule_index
        rule = config.rules[index]
        outcome = RuleOutcome(stored.outcome)
        dedup = None
        if outcome in (RuleOutcome.ROUTED, RuleOutcome.DUPLICATE):
            dedup = DedupCheck(
                duplicate=outcome is RuleOutcome.DUPLICATE,
                key=dedup_key(rule.target_brand_id, trigger, record.trigger_detail),
                previous_decision_id=stored.dedup.previous_decision_id,
                previous_routed_at=mapping.get_timestamp(stored.dedup, "previous_routed_at"),
            )
        notable[index] = RuleEvaluation(
            index,
            rule,
            stored.matched,
            outcome,
            stored.error,
            condition=compiled.conditions[index],
            explainer=explainer,
            consent=check_consent(lead, rule.target_brand_id, config.require_tracking_consent)
            if stored.matched
            else None,
            dedup=dedup,
        )
    decision = Decision(
        lead=lead,
        trigger=trigger,
        trigger_detail=record.trigger_detail,
        config_version=record.config_version,
        decided_at=record.decided_at.ToDatetime(tzinfo=UTC),
        evaluations=Evaluations(compiled, explainer, evaluated_count(compiled, notable), notable),
        routes=(),
        summary=record.summary,
        dry_run=record.dry_run,
        decision_id=record.decision_id,
        trigger_event_id=record.trigger_event_id,
        reason=record.reason,
    )
    out = mapping.decision_to_proto(decision)
    out.lead.CopyFrom(record.lead)
    out.routes.extend(record.routes)
    for stored in record.evaluations:
        if stored.HasField("owner_selection"):
            out.evaluations[stored.rule_index].owner_selection.CopyFrom(stored.owner_selection)
    return out
