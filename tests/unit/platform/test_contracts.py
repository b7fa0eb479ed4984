"""The contracts hold the promises the platform relies on."""

from __future__ import annotations

import importlib
import pkgutil

from google.protobuf import descriptor_pool

import leadflow
from leadflow.common.v1 import event_metadata_pb2, options_pb2
from leadflow_platform.grpc.interceptors import required_scope
from leadflow_platform.nats.registry import all_subjects
from leadflow_platform.nats.streams import producer_of, stream_for
from leadflow_platform.service import SUITE

# DESIGN.md section 2, "publishes".
DESIGN_SUBJECTS = {
    "ingest.event.recorded", "ingest.subject.identified", "ingest.subject.aliased",
    "ingest.consent.changed", "ingest.subject.erased",
    "scoring.score.changed", "scoring.threshold.crossed", "scoring.stage.changed",
    "attribution.conversion.attributed",
    "routing.lead.routed", "routing.assignment.breached", "routing.nurture.step_due",
    "reporting.alert.raised",
}  # fmt: skip


def _service_modules():
    for info in pkgutil.walk_packages(leadflow.__path__, prefix="leadflow."):
        if info.name.endswith("_service_pb2"):
            yield importlib.import_module(info.name)


def _contract_events():
    """Events of the generated contracts (tests may register others of their own)."""
    return {
        subject: message
        for subject, message in all_subjects().items()
        if message.DESCRIPTOR.full_name.startswith("leadflow.")
    }


def test_every_design_subject_has_exactly_one_message_and_no_other_exists():
    assert set(_contract_events()) == DESIGN_SUBJECTS


def test_every_event_starts_with_the_common_metadata():
    for subject, message in _contract_events().items():
        first = message.DESCRIPTOR.fields_by_number[1]
        assert first.name == "metadata", subject
        assert first.message_type is event_metadata_pb2.EventMetadata.DESCRIPTOR, subject
        assert producer_of(subject) in SUITE, subject
        assert len(subject.split(".")) == 3, subject


def test_every_rpc_of_every_service_declares_its_scope():
    services = [svc for module in _service_modules()
                for svc in module.DESCRIPTOR.services_by_name.values()]  # fmt: skip
    assert {s.full_name for s in services} == {
        f"leadflow.{name}.v1.{name.capitalize()}Service" for name in SUITE
    }
    for service in services:
        for method in service.methods:
            scope = method.GetOptions().Extensions[options_pb2.required_scope]
            assert scope != 0, f"{service.full_name}.{method.name} declares no required_scope"
            assert required_scope(f"/{service.full_name}/{method.name}") is not None


def test_scope_lookup_of_unknown_methods_is_none():
    assert required_scope("/no.such.Service/Call") is None
    assert required_scope("garbage") is None
    pool = descriptor_pool.Default()
    assert pool.FindServiceByName("leadflow.ingest.v1.IngestService") is not None


def test_one_stream_per_producer():
    assert stream_for("ingest").name == "INGEST"
    assert stream_for("ingest").subjects == ("ingest.>",)
