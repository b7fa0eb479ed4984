"""Which protobuf message travels on which subject, read from the contracts themselves.

Every event message declares `option (leadflow.common.v1.event_subject) = "..."`; this
module imports the generated `events_pb2` modules and indexes them, so there is no second
list of subjects to keep in step with the protos.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from google.protobuf.message import Message

import leadflow
from leadflow.common.v1 import options_pb2


class UnknownSubject(LookupError):
    pass


@cache
def _index() -> dict[str, type[Message]]:
    index: dict[str, type[Message]] = {}
    for info in pkgutil.walk_packages(leadflow.__path__, prefix="leadflow."):
        if not info.name.endswith("events_pb2"):
            continue
        module = importlib.import_module(info.name)
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            subject = descriptor.GetOptions().Extensions[options_pb2.event_subject]
            if subject:
                index[subject] = getattr(module, descriptor.name)
    return index


def message_type(subject: str) -> type[Message]:
    try:
        return _index()[subject]
    except KeyError:
        raise UnknownSubject(f"no event message declares subject {subject!r}") from None


_SUBJECTS: dict[str, str] = {}


def subject_of(message: Message | type[Message]) -> str:
    descriptor = message.DESCRIPTOR
    subject = _SUBJECTS.get(descriptor.full_name)  # read once per type: options are costly
    if subject is None:
        subject = descriptor.GetOptions().Extensions[options_pb2.event_subject]
        if not subject:
            raise UnknownSubject(f"{descriptor.full_name} declares no event_subject")
        _SUBJECTS[descriptor.full_name] = subject
    return subject


def all_subjects() -> dict[str, type[Message]]:
    return dict(_index())


def register(message: type[Message]) -> None:
    """Add a message type declared outside the generated contracts (tests, extensions)."""
    _index()[subject_of(message)] = message
