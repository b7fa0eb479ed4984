"""The configuration API over gRPC (validation errors name the rule and the CEL error,
versions, optimistic concurrency), manual routes and erasure."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from harness import eventually
from routing_support import example_config, routing_env, routing_suite

from leadflow.common.v1 import lead_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow.routing.v1 import routing_types_pb2 as tpb
from leadflow_routing.api.mapping import config_to_proto

pytestmark = pytest.mark.integration


def _violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return [(v.field, v.description) for v in bad.field_violations]
    return []


async def test_config_validation_versions_and_manual_routes(settings, monkeypatch, tmp_path):
    routing_env(monkeypatch, tmp_path)
    async with routing_suite(settings) as s:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await s.routing.GetRoutingConfig(pb.GetRoutingConfigRequest(), metadata=s.metadata)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        config = example_config()
        rules = list(config.rules)
        rules[2] = replace(rules[2], condition="lead.scor.total > 1")
        rules[3] = replace(
            rules[3], target_brand_id="nobrand", nurture_sequence_id="vip", nurture_by_segment=False
        )
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await s.put_config(replace(config, rules=tuple(rules)))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            "config.rules[2] (id \"modumind-home\").condition: undeclared reference to 'lead.scor'"
            in bad.value.details()
        )
        assert _violations(bad.value) == [
            (
                'config.rules[2] (id "modumind-home").condition',
                "undeclared reference to 'lead.scor'",
            ),
            ('config.rules[3] (id "stacksense-home").target_brand_id', "unknown brand 'nobrand'"),
            (
                'config.rules[3] (id "stacksense-home").nurture_sequence_id',
                "unknown nurture sequence 'vip'",
            ),
        ]

        checked = await s.routing.PutRoutingConfig(
            pb.PutRoutingConfigRequest(config=config_to_proto(config), validate_only=True),
            metadata=s.metadata,
        )
        assert checked.version == 0
        first = await s.put_config(config)
        second = await s.put_config(replace(config, description="second"))
        assert (first.version, second.version) == (1, 2)
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await s.routing.PutRoutingConfig(
                pb.PutRoutingConfigRequest(
                    config=config_to_proto(config), expected_active_version=1
                ),
                metadata=s.metadata,
            )
        assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        got = await s.routing.GetRoutingConfig(
            pb.GetRoutingConfigRequest(version=1), metadata=s.metadata
        )
        assert (got.config.version, got.active_version, got.config.description) == (
            1,
            2,
            config.description,
        )
        assert got.config.rules[0].id == "hot-enterprise-to-stacksense"

        # a hypothetical enterprise lead without sharing consent: StackSense is blocked
        hypothetical = tpb.LeadSnapshot(
            home_brand_id="modumind",
            segment=lead_pb2.SEGMENT_ENTERPRISE,
            temperature=lead_pb2.TEMPERATURE_HOT,
        )
        explained = await s.routing.ExplainRoute(
            pb.ExplainRouteRequest(
                hypothetical_lead=hypothetical, trigger=tpb.ROUTING_TRIGGER_THRESHOLD_CROSSED
            ),
            metadata=s.metadata,
        )
        first_rule = explained.decision.evaluations[0]
        assert first_rule.outcome == tpb.RULE_OUTCOME_BLOCKED_BY_CONSENT
        assert first_rule.consent.explanation == (
            "stacksense is not the home brand modumind; portfolio_sharing consent never given"
        )
        assert [r.brand_id for r in explained.decision.routes] == ["modumind"]
        assert await s.pool.fetchval("SELECT count(*) FROM decisions") == 0  # dry run

        await s.base.identify("lead-man", email="man@example.com", home_brand_id="epicquest")
        await eventually(lambda: s.pool.fetchval("SELECT count(*) FROM decisions"), timeout=15)
        manual = await s.routing.RouteLead(
            pb.RouteLeadRequest(lead_id="lead-man", reason="sales call", request_id="req-1"),
            metadata=s.metadata,
        )
        again = await s.routing.RouteLead(
            pb.RouteLeadRequest(lead_id="lead-man", reason="sales call", request_id="req-1"),
            metadata=s.metadata,
        )
        assert manual.decision == again.decision  # idempotent on request_id
        assert [(r.rule_id, r.brand_id) for r in manual.decision.routes] == [
            ("epicquest-home", "epicquest")
        ]
        assert manual.decision.trigger == tpb.ROUTING_TRIGGER_MANUAL

        await s.base.erase("lead-man")

        async def erased():  # type: ignore[no-untyped-def]
            names = await s.pool.fetchval(
                "SELECT (SELECT count(*) FROM leads) + (SELECT count(*) FROM decisions)"
                " + (SELECT count(*) FROM assignments WHERE lead_id = 'lead-man')"
                " + (SELECT count(*) FROM enrollments WHERE lead_id = 'lead-man')"
            )
            return names == 0

        await eventually(erased, timeout=15)
        reply = await s.routing.ListEnrollments(
            pb.ListEnrollmentsRequest(stop_reasons=[tpb.ENROLLMENT_STOP_REASON_ERASED]),
            metadata=s.metadata,
        )
        assert len(reply.enrollments) == 1 and reply.enrollments[0].lead_id.startswith("erased-")
