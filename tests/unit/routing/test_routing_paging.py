"""Page tokens and request checks of ListAssignments / ListEnrollments (api/servicer.py): a
token resumes after the last item of its own query only; sizes and ranges are checked."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

from leadflow.common.v1 import pagination_pb2
from leadflow.routing.v1 import routing_service_pb2 as pb
from leadflow_platform.errors import FieldViolation
from leadflow_routing.api import servicer

AT = datetime(2025, 4, 5, 6, 7, 8, 123456, tzinfo=UTC)
QUERY = {"brand": "modumind", "owner": "", "states": [1, 2], "lead": "", "start": "None"}


def after(token: str, query: dict = QUERY) -> tuple[object, list[FieldViolation]]:  # type: ignore[type-arg]
    violations: list[FieldViolation] = []
    found = servicer._after(pagination_pb2.PageRequest(page_token=token), query, violations)
    return found, violations


def test_a_token_resumes_after_its_last_item_exactly():
    token = servicer._token(QUERY, AT, "assignment-9")
    assert "=" not in token  # URL-safe, unpadded
    assert after(token) == ((AT, "assignment-9"), [])
    # the same instant written in another zone is the same position
    local = AT.astimezone(timezone(timedelta(hours=-5)))
    assert after(servicer._token(QUERY, local, "a")) == ((AT, "a"), [])
    assert after("") == (None, [])


def test_a_token_of_another_query_or_garbage_names_the_field():
    token = servicer._token(QUERY, AT, "a")
    other = {**QUERY, "brand": "stacksense"}
    forged = base64.urlsafe_b64encode(json.dumps({"q": "x"}).encode()).decode()
    for bad, query in ((token, other), ("%%%", QUERY), ("bm90IGpzb24", QUERY), (forged, QUERY)):
        found, violations = after(bad, query)
        assert found is None
        assert [(v.field, v.reason) for v in violations] == [
            ("page.page_token", "not a token of this query")
        ]


def test_page_size_defaults_and_bounds():
    def size(n: int) -> tuple[int, list[str]]:
        violations: list[FieldViolation] = []
        got = servicer._page_size(pagination_pb2.PageRequest(page_size=n), violations)
        return got, [v.field for v in violations]

    assert size(0) == (servicer.DEFAULT_PAGE_SIZE, [])
    assert size(7) == (7, [])
    assert size(servicer.MAX_PAGE_SIZE) == (servicer.MAX_PAGE_SIZE, [])
    assert size(servicer.MAX_PAGE_SIZE + 1) == (servicer.DEFAULT_PAGE_SIZE, ["page.page_size"])
    assert size(-1)[1] == ["page.page_size"]


def test_a_range_must_end_after_it_starts():
    request = pb.ListAssignmentsRequest()
    violations: list[FieldViolation] = []
    assert servicer._range(request, "range", violations) == (None, None)
    request.range.start_time.FromDatetime(AT)
    assert servicer._range(request, "range", violations) == (AT.replace(microsecond=123456), None)
    request.range.end_time.FromDatetime(AT)
    servicer._range(request, "range", violations)
    assert [(v.field, v.reason) for v in violations] == [
        ("range.end_time", "must be after start_time")
    ]
