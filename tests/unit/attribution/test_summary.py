from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from leadflow_attribution.domain.credit import Credit, allocate
from leadflow_attribution.domain.errors import InvalidInput
from leadflow_attribution.domain.heuristics import heuristic_shares
from leadflow_attribution.domain.journey import Conversion, Touchpoint
from leadflow_attribution.domain.models import AttributionModel, AttributionOptions
from leadflow_attribution.domain.summary import (
    Amount,
    AttributedConversion,
    Dimension,
    compare_models,
    compare_summaries,
    summarize,
    summarize_channel_weights,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M = AttributionModel


def touch(event_id: str, channel: str, source: str, campaign: str, brand: str) -> Touchpoint:
    return Touchpoint(
        event_id,
        AT - timedelta(hours=int(event_id[1:])),
        channel,
        source,
        campaign=campaign,
        brand_id=brand,
    )


JOURNEYS = {
    "c1": (
        touch("t9", "email", "google", "spring", "modumind"),
        touch("t8", "paid_search", "google", "", "stacksense"),
    ),
    "c2": (
        touch("t7", "email", "newsletter", "spring", "modumind"),
        touch("t6", "email", "newsletter", "", "modumind"),
        touch("t5", "direct", "", "", ""),
    ),
    "c3": (),
    "c4": (touch("t4", "organic_social", "twitter", "", "epicquest"),),
}
CONVERSIONS = {
    "c1": Conversion("c1", "lead-1", "purchase", AT, D("100.00"), "USD"),
    "c2": Conversion("c2", "lead-2", "purchase", AT, D("30"), "EUR"),
    "c3": Conversion("c3", "lead-3", "signup", AT, D("20"), "USD"),
    "c4": Conversion("c4", "lead-4", "signup", AT),  # no value
}


def attributed(model: AttributionModel) -> list[AttributedConversion]:
    items = []
    for key, conversion in CONVERSIONS.items():
        journey = JOURNEYS[key]
        shares = heuristic_shares(model, journey, conversion, AttributionOptions())
        items.append(
            AttributedConversion(conversion, journey, tuple(allocate(shares, conversion.value, 2)))
        )
    return items


def rows(summary) -> dict[str, tuple]:
    return {
        r.dimension_value: (
            r.credited_conversions,
            r.credited_values,
            r.conversion_count,
            r.touchpoint_count,
        )
        for r in summary.rows
    }


def test_linear_credit_by_channel_is_exact_per_currency():
    summary = summarize(attributed(M.LINEAR), Dimension.CHANNEL)
    assert summary.conversion_count == 4
    assert summary.total_values == (Amount("EUR", D("30")), Amount("USD", D("120.00")))
    assert rows(summary) == {
        "email": (
            D("1.166666666666666667"),
            (Amount("EUR", D("20.00")), Amount("USD", D("50.00"))),
            2,
            3,
        ),
        "(unattributed)": (D(1), (Amount("USD", D("20")),), 1, 0),
        "organic_social": (D(1), (), 1, 1),
        "paid_search": (D("0.5"), (Amount("USD", D("50.00")),), 1, 1),
        "direct": (D("0.333333333333333333"), (Amount("EUR", D("10.00")),), 1, 1),
    }
    # ordered by credit, descending, then by dimension value
    assert [r.dimension_value for r in summary.rows] == [
        "email",
        "(unattributed)",
        "organic_social",
        "paid_search",
        "direct",
    ]
    email = summary.rows[0]
    assert email.share_of_conversions == pytest.approx(1.166666666666666667 / 4)


@pytest.mark.parametrize("model", [M.FIRST_TOUCH, M.LINEAR, M.TIME_DECAY, M.U_SHAPED])
@pytest.mark.parametrize("dimension", list(Dimension))
def test_rows_add_up_exactly_to_the_conversions_and_each_currency(model, dimension):
    summary = summarize(attributed(model), dimension)
    assert sum(r.credited_conversions for r in summary.rows) == summary.conversion_count
    for total in summary.total_values:
        credited = [
            a.value for r in summary.rows for a in r.credited_values if a.currency == total.currency
        ]
        assert sum(credited) == total.value


def test_missing_dimension_values_are_none_and_brand_is_the_touchpoint_brand():
    campaign = rows(summarize(attributed(M.LINEAR), Dimension.CAMPAIGN))
    assert campaign["spring"][0] == D("0.833333333333333334")
    assert campaign["(none)"][0] == D("2.166666666666666666")
    assert campaign["(none)"][3] == 4
    brand = rows(summarize(attributed(M.FIRST_TOUCH), Dimension.BRAND))
    assert brand["modumind"][0] == D(2)
    assert brand["stacksense"][0] == D(0)  # present, credited nothing
    assert brand["stacksense"][2] == 0  # so no conversion counts for it
    assert brand["(none)"][3] == 1


def test_compare_models_side_by_side():
    comparison = compare_models(
        {M.LINEAR: attributed(M.LINEAR), M.FIRST_TOUCH: attributed(M.FIRST_TOUCH)},
        Dimension.CHANNEL,
    )
    assert comparison.models == (M.LINEAR, M.FIRST_TOUCH)
    assert comparison.conversion_count == 4
    table = {
        row.dimension_value: [credit.credited_conversions for credit in row.credits]
        for row in comparison.rows
    }
    assert table == {
        "email": [D("1.166666666666666667"), D(2)],
        "(unattributed)": [D(1), D(1)],
        "organic_social": [D(1), D(1)],
        "paid_search": [D("0.5"), D(0)],
        "direct": [D("0.333333333333333333"), D(0)],
    }
    assert comparison.rows[0].dimension_value == "email"
    paid = next(r for r in comparison.rows if r.dimension_value == "paid_search")
    assert [c.model for c in paid.credits] == [M.LINEAR, M.FIRST_TOUCH]
    # present but credited nothing under first touch: a zero amount, not a missing one
    assert paid.credits[1].credited_values == (Amount("USD", D("0.00")),)


def test_comparing_summaries_of_different_conversions_is_refused():
    linear = summarize(attributed(M.LINEAR), Dimension.CHANNEL)
    fewer = summarize(attributed(M.FIRST_TOUCH)[:2], Dimension.CHANNEL)
    with pytest.raises(ValueError, match="FIRST_TOUCH"):
        compare_summaries({M.LINEAR: linear, M.FIRST_TOUCH: fewer})
    with pytest.raises(ValueError):
        compare_summaries({})


def test_data_driven_channel_credit_is_the_fit_total():
    summary = summarize_channel_weights(
        attributed(M.LINEAR), {"email": 0.75, "paid_search": 0.25}, {"EUR": 2, "USD": 2}
    )
    assert rows(summary) == {
        "email": (
            D("2.250000000000000000"),
            (Amount("EUR", D("22.50")), Amount("USD", D("75.00"))),
            2,
            3,
        ),
        "paid_search": (
            D("0.750000000000000000"),
            (Amount("EUR", D("7.50")), Amount("USD", D("25.00"))),
            1,
            1,
        ),
        "(unattributed)": (D(1), (Amount("USD", D("20")),), 1, 0),
        "direct": (D(0), (), 0, 1),
        "organic_social": (D(0), (), 0, 1),
    }
    assert summary.conversion_count == 4
    assert summary.total_values == (Amount("EUR", D("30")), Amount("USD", D("120.00")))


def test_data_driven_channel_credit_without_weights_is_linear():
    fallback = summarize_channel_weights(attributed(M.LINEAR), {"email": 0.0})
    linear = summarize(attributed(M.LINEAR), Dimension.CHANNEL)
    assert [(r.dimension_value, r.credited_conversions) for r in fallback.rows] == [
        (r.dimension_value, r.credited_conversions) for r in linear.rows
    ]


def test_credits_must_match_the_journey():
    with pytest.raises(InvalidInput) as caught:
        AttributedConversion(CONVERSIONS["c1"], JOURNEYS["c1"], (Credit(D(1), D(0)),))
    assert caught.value.violations[0].field == "credits"
