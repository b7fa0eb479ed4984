"""Lead profiles: validation, normalisation and Identify's merge (with and without a mask)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow_ingest.domain.profile import (
    COUNTRY_CODES,
    Location,
    Profile,
    changed_fields,
    is_email,
    merge_profile,
    normalize_profile,
    same_json,
    validate_mask,
    validate_profile,
)

ANN = Profile(
    email="Ann.Lee@Example.COM",
    first_name="Ann",
    last_name="Lee",
    phone="+1 (512) 555-0100",
    location=Location(city="Austin", region="Texas", country="us"),
    company="Acme",
    industry="software",
    customer_type="enterprise",
    segment="enterprise",
    interests=("ai", "analytics", "ai"),
    home_brand_id="modumind",
    lead_source="referral",
    traits={"plan": "pro", "seats": 12.0},
)


def found(profile: Profile) -> set[tuple[str, str]]:
    return {(v.field, v.code.value) for v in validate_profile(profile)}


def test_a_good_profile_has_no_violation() -> None:
    assert validate_profile(ANN) == []
    assert validate_profile(Profile()) == []


@pytest.mark.parametrize(
    "email",
    [
        "ann@example.com", "ann.lee+tag@sub.example.co.uk", "o'brien@example.ie",
        "user@xn--bcher-kva.example", "josé@bücher.de", "a@b.io",
    ],
)  # fmt: skip
def test_valid_emails(email: str) -> None:
    assert is_email(email)
    assert validate_profile(Profile(email=email)) == []


@pytest.mark.parametrize(
    "email",
    [
        "ann", "ann@", "@example.com", "ann@example", "ann@@example.com", "ann..lee@example.com",
        ".ann@example.com", "ann.@example.com", "ann lee@example.com", "ann@exa mple.com",
        "ann@-example.com", "ann@example-.com", "ann@example.123", '"ann"@example.com',
        "ann@[192.0.2.1]", "a" * 65 + "@example.com", "ann@" + "a" * 250 + ".com",
        "ann@exam\tple.com",
    ],
)  # fmt: skip
def test_invalid_emails(email: str) -> None:
    assert not is_email(email)
    assert found(Profile(email=email)) == {("profile.email", "INVALID_VALUE")}


def test_surrounding_whitespace_is_trimmed_not_refused() -> None:
    assert not is_email(" ann@example.com\n")
    assert validate_profile(Profile(email=" ann@example.com\n")) == []
    assert merge_profile(None, Profile(email=" ann@Example.com\n"))[0].email == "ann@example.com"


def test_email_over_1000_characters_is_too_long() -> None:
    assert found(Profile(email="a" * 990 + "@example.com")) == {
        ("profile.email", "STRING_TOO_LONG")
    }


@pytest.mark.parametrize("phone", ["+15125550100", "+1 512-555-0100", "+44 (20) 7946.0958", "+12"])
def test_valid_phones(phone: str) -> None:
    assert validate_profile(Profile(phone=phone)) == []


@pytest.mark.parametrize(
    "phone",
    ["5125550100", "+0123456", "+1", "+1234567890123456", "+1 512 CALL NOW", "++15125550100"],
)
def test_invalid_phones(phone: str) -> None:
    assert found(Profile(phone=phone)) == {("profile.phone", "INVALID_VALUE")}


def test_country_codes() -> None:
    assert len(COUNTRY_CODES) == 250  # ISO 3166-1 alpha-2's 249 and XK
    assert {"US", "GB", "DE", "IN", "BR", "XK", "SS", "BQ"} <= COUNTRY_CODES
    assert validate_profile(Profile(location=Location(country=" de "))) == []
    for bad in ("USA", "UK", "XX", "EU", "U"):
        assert found(Profile(location=Location(country=bad))) == {
            ("profile.location.country", "INVALID_VALUE")
        }


def test_country_codes_match_the_tz_database_table() -> None:
    tzdata = pytest.importorskip("tzdata")
    from importlib import resources

    table = resources.files(tzdata).joinpath("zoneinfo", "iso3166.tab").read_text()
    codes = {line.split("\t")[0] for line in table.splitlines() if line and line[0] != "#"}
    assert codes | {"XK"} == COUNTRY_CODES


def test_location_names_may_have_200_characters() -> None:
    assert validate_profile(Profile(location=Location(city="c" * 200, region="r" * 200))) == []
    assert found(Profile(location=Location(city="c" * 201, region="r" * 201))) == {
        ("profile.location.city", "STRING_TOO_LONG"),
        ("profile.location.region", "STRING_TOO_LONG"),
    }


def test_segment() -> None:
    assert validate_profile(Profile(segment="SMB")) == []
    assert found(Profile(segment="midmarket")) == {("profile.segment", "INVALID_VALUE")}


def test_interests_limits() -> None:
    fifty = tuple(f"topic{i}" for i in range(50))
    assert validate_profile(Profile(interests=fifty + fifty)) == []  # 50 distinct
    assert found(Profile(interests=(*fifty, "one-more"))) == {
        ("profile.interests", "INVALID_VALUE")
    }
    assert validate_profile(Profile(interests=("i" * 100,))) == []
    assert found(Profile(interests=("ok", "i" * 101))) == {
        ("profile.interests[1]", "STRING_TOO_LONG")
    }


def test_text_fields_are_limited() -> None:
    assert validate_profile(Profile(company="c" * 1000)) == []
    assert found(Profile(company="c" * 1001, first_name="a\x00")) == {
        ("profile.company", "STRING_TOO_LONG"),
        ("profile.first_name", "INVALID_VALUE"),
    }


def test_home_brand_is_an_id() -> None:
    assert found(Profile(home_brand_id="b" * 101)) == {("profile.home_brand_id", "ID_TOO_LONG")}


def test_traits_have_the_property_limits() -> None:
    assert validate_profile(Profile(traits={"a": {"b": {"c": 1.0}}, "gone": None})) == []
    assert found(Profile(traits={"a": {"b": {"c": {"d": 1.0}}}})) == {
        ("profile.traits.a.b.c", "NESTING_TOO_DEEP")
    }
    assert found(Profile(traits={f"t{i}": 1.0 for i in range(257)})) == {
        ("profile.traits", "TOO_MANY_PROPERTIES")
    }
    assert found(Profile(traits={"x": "v" * 1001})) == {("profile.traits.x", "STRING_TOO_LONG")}


def test_normalisation() -> None:
    normal = normalize_profile(ANN)
    assert normal.email == "Ann.Lee@example.com"
    assert normal.phone == "+15125550100"
    assert normal.location == Location("Austin", "Texas", "US")
    assert normal.interests == ("ai", "analytics")
    assert normalize_profile(Profile(interests=(" ai ", "", "ml", "ai"))).interests == ("ai", "ml")
    assert normalize_profile(Profile(segment=" SMB ")).segment == "smb"


# --- merge ---------------------------------------------------------------------------


def test_a_new_lead_gets_every_field_sent() -> None:
    profile, changed = merge_profile(None, ANN)
    assert profile == normalize_profile(ANN)
    assert changed == [
        "email", "first_name", "last_name", "phone", "location.city", "location.region",
        "location.country", "company", "industry", "customer_type", "segment", "interests",
        "home_brand_id", "lead_source", "traits.plan", "traits.seats",
    ]  # fmt: skip


def test_without_a_mask_only_non_empty_fields_are_written() -> None:
    current, _ = merge_profile(None, ANN)
    update = Profile(
        first_name="Annie",
        location=Location(city="Dallas"),
        interests=("ml",),
        traits={"plan": "enterprise", "seats": None, "beta": True},
    )
    profile, changed = merge_profile(current, update)
    assert changed == [
        "first_name",
        "location.city",
        "interests",
        "traits.beta",
        "traits.plan",
        "traits.seats",
    ]
    assert profile.email == "Ann.Lee@example.com"
    assert profile.location == Location("Dallas", "Texas", "US")
    assert profile.interests == ("ml",)
    assert profile.traits == {"plan": "enterprise", "beta": True}


def test_the_same_update_twice_changes_nothing() -> None:
    current, _ = merge_profile(None, ANN)
    profile, changed = merge_profile(current, ANN)
    assert changed == []
    assert profile == current
    assert merge_profile(current, Profile()) == (current, [])


def test_removing_an_absent_trait_is_no_change() -> None:
    current, _ = merge_profile(None, ANN)
    assert merge_profile(current, Profile(traits={"never": None}))[1] == []


def test_a_mask_writes_exactly_the_named_fields_and_clears_empty_ones() -> None:
    current, _ = merge_profile(None, ANN)
    update = Profile(first_name="Annie", last_name="", company="NewCo")
    profile, changed = merge_profile(current, update, ["first_name", "last_name"])
    assert changed == ["first_name", "last_name"]
    assert profile.last_name == ""
    assert profile.company == "Acme"  # not named


def test_mask_location_paths() -> None:
    current, _ = merge_profile(None, ANN)
    update = Profile(location=Location(city="Paris", country="fr"))
    whole, changed = merge_profile(current, update, ["location"])
    assert whole.location == Location("Paris", "", "FR")
    assert changed == ["location.city", "location.region", "location.country"]
    city, changed = merge_profile(current, update, ["location.city"])
    assert city.location == Location("Paris", "Texas", "US")
    assert changed == ["location.city"]


def test_mask_traits_paths() -> None:
    current, _ = merge_profile(None, ANN)
    update = Profile(traits={"plan": "team", "beta": True, "gone": None})
    whole, changed = merge_profile(current, update, ["traits"])
    assert whole.traits == {"plan": "team", "beta": True}
    assert changed == ["traits.beta", "traits.plan", "traits.seats"]
    one, changed = merge_profile(current, update, ["traits.plan", "traits.seats"])
    assert one.traits == {"plan": "team"}
    assert changed == ["traits.plan", "traits.seats"]


def test_mask_interests_and_segment_can_be_cleared() -> None:
    current, _ = merge_profile(None, ANN)
    profile, changed = merge_profile(current, Profile(), ["interests", "segment"])
    assert profile.interests == () and profile.segment == ""
    assert changed == ["segment", "interests"]


def test_unknown_mask_paths() -> None:
    assert validate_mask(["email", "location.city", "traits.plan", "traits"]) == []
    violations = validate_mask(["email", "emails", "location.zip", "traits.", "profile.email"])
    assert [(v.field, v.code.value) for v in violations] == [
        ("update_mask.paths[1]", "INVALID_VALUE"),
        ("update_mask.paths[2]", "INVALID_VALUE"),
        ("update_mask.paths[3]", "INVALID_VALUE"),
        ("update_mask.paths[4]", "INVALID_VALUE"),
    ]
    with pytest.raises(ValueError):
        merge_profile(None, ANN, ["emails"])


def test_changed_fields_tell_true_from_one() -> None:
    before = Profile(traits={"flag": 1.0, "nested": {"a": [1.0]}})
    after = replace(before, traits={"flag": True, "nested": {"a": [True]}})
    assert before == after  # Python's == cannot see it
    assert changed_fields(before, after) == ["traits.flag", "traits.nested"]
    assert same_json({"a": [1.0, "x", None]}, {"a": [1.0, "x", None]})
    assert not same_json([1.0], [1.0, 2.0])


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)
traits = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4)


@given(traits, traits)
def test_trait_merge_key_by_key(old: dict[str, object], new: dict[str, object]) -> None:
    current = Profile(traits={k: v for k, v in old.items() if v is not None})
    profile, changed = merge_profile(current, Profile(traits=new))
    for key in "abcd":
        if key in new:
            assert (key in profile.traits) == (new[key] is not None)
        else:
            assert (key in profile.traits) == (key in current.traits)
    assert changed == changed_fields(current, profile)
    # Merging the same update again changes nothing.
    assert merge_profile(profile, Profile(traits=new))[1] == []
