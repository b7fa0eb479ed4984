"""Proto mapping, page tokens and the fit computation of the service layer (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from leadflow.attribution.v1 import attribution_service_pb2 as pb
from leadflow.attribution.v1 import attribution_types_pb2 as types
from leadflow.common.v1 import money_pb2
from leadflow_attribution.api import mapping
from leadflow_attribution.db.fits import FitKey
from leadflow_attribution.domain.columns import encode_touchpoints
from leadflow_attribution.domain.credit import allocate
from leadflow_attribution.domain.journey import Conversion, Touchpoint
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.jobs.fitting import compute_fit
from leadflow_attribution.service import fingerprint, page_offset, page_token
from leadflow_platform.errors import InvalidArgument

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("units", "nanos", "expected"),
    [
        (12, 500_000_000, "12.5"),
        (100, 0, "100"),
        (0, 1, "0.000000001"),
        (1000, 0, "1000"),
    ],
)
def test_money_becomes_an_exact_decimal_without_trailing_zeros(units, nanos, expected):
    value = mapping.to_decimal(money_pb2.Money(units=units, nanos=nanos, currency_code="USD"))
    assert value == Decimal(expected) and format(value, "f") == expected


def test_a_value_of_whole_units_is_still_split_in_cents():
    value = mapping.to_decimal(money_pb2.Money(units=100, currency_code="USD"))
    credits = allocate([1, 1, 1], value, 2)
    assert [c.value for c in credits] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]


@pytest.mark.parametrize("text", ["33.34", "0.000000001", "1234567.5", "0"])
def test_money_round_trips(text):
    m = mapping.money(Decimal(text), "EUR")
    assert m.currency_code == "EUR"
    assert mapping.to_decimal(m) == Decimal(text)


def test_request_options_override_the_tenant_defaults_field_by_field():
    defaults = AttributionOptions(timedelta(days=30), True, timedelta(days=3), 2)
    assert mapping.options_from_proto(types.AttributionOptions(), defaults) == defaults
    message = types.AttributionOptions(last_touch_ignore_direct=False, markov_order=1)
    message.lookback_window.seconds = 7 * 86400
    options = mapping.options_from_proto(message, defaults)
    assert options == AttributionOptions(timedelta(days=7), False, timedelta(days=3), 1)
    out = types.AttributionOptions()
    mapping.set_options(out, options)
    assert mapping.options_from_proto(out, AttributionOptions()) == options


def test_a_page_token_fits_only_the_query_it_came_from():
    request = pb.SummarizeRequest(dimension=1, model=3)
    other = pb.SummarizeRequest(dimension=2, model=3)
    token = page_token(20, fingerprint(request))
    assert page_offset(token, fingerprint(request)) == 20
    assert page_offset("", fingerprint(request)) == 0
    # The page itself is not part of the query.
    paged = pb.SummarizeRequest(dimension=1, model=3, page={"page_size": 5, "page_token": token})
    assert fingerprint(paged) == fingerprint(request)
    for bad in (page_token(20, fingerprint(other)), "not-a-token", page_token(-1, "x")):
        with pytest.raises(InvalidArgument) as err:
            page_offset(bad, fingerprint(request))
        assert "page.page_token" in str(err.value)


def _journey(subject: str, channels: str, start: datetime) -> list[Touchpoint]:
    return [
        Touchpoint(f"{subject}-{i}", start + timedelta(hours=i), channel)
        for i, channel in enumerate(channels.split())
    ]


def test_a_fit_learns_from_converting_and_non_converting_journeys():
    touchpoints = {
        "lead:a": _journey("a", "email search", T0),
        "lead:b": _journey("b", "email", T0),
        "lead:c": _journey("c", "display", T0),
        "lead:d": _journey("d", "display search", T0),
    }
    conversions = [
        Conversion("ca", "lead:a", "purchase", T0 + timedelta(hours=3)),
        Conversion("cb", "lead:b", "purchase", T0 + timedelta(hours=3)),
    ]
    end = T0 + timedelta(days=1)
    for model, order in ((AttributionModel.MARKOV, 1), (AttributionModel.SHAPLEY, 0)):
        key = FitKey(model, order, 90 * 86400, T0, end)
        fit = compute_fit(key, encode_touchpoints(touchpoints), conversions, T0, end, generation=7)
        assert (fit.journey_count, fit.converting_journey_count) == (4, 2)
        assert fit.channel_count == 3 and fit.generation == 7
        assert sum(fit.weights.values()) == pytest.approx(1.0)
        assert fit.weights["email"] > fit.weights["search"] > 0
        if model is AttributionModel.SHAPLEY:
            assert fit.weights.get("display", 0.0) == 0.0  # in no converting journey
        else:
            # A first-order chain forgets where "search" was reached from: display, which
            # leads to search, earns a little through it.
            assert 0 < fit.weights["display"] < fit.weights["search"]
        assert fit.data_through == T0 + timedelta(hours=3)
