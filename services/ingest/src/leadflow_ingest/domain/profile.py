"""Lead profiles (leadflow.ingest.v1.LeadProfile): validation, normalisation, Identify's merge.

Normalisation (`normalize_profile`, applied by `merge_profile`): text fields trimmed; email
domain lower case (the local part is kept: it may be case-sensitive); phone separators
(spaces, "-", ".", "(", ")") removed; country upper case; segment lower case; interests
trimmed, empty ones dropped, duplicates removed keeping the first. Ids and traits are kept
as sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leadflow_ingest.domain.model import DEFAULT_LIMITS, Limits, Violation, ViolationCode
from leadflow_ingest.domain.validation import check_id, check_properties, check_text

SEGMENTS = frozenset({"enterprise", "smb", "startup"})
MAX_INTERESTS = 50
MAX_INTEREST_CHARS = 100
MAX_LOCATION_CHARS = 200
MAX_EMAIL_CHARS = 254  # RFC 5321 path limit
MAX_EMAIL_LOCAL_CHARS = 64

# ISO 3166-1 alpha-2 (the 249 officially assigned codes) plus XK (Kosovo), the user-assigned
# code that CLDR, the EU and geo databases use.
_COUNTRIES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW XK
"""
COUNTRY_CODES: frozenset[str] = frozenset(_COUNTRIES.split())

# RFC 5322 dot-atom local part (UTF-8 allowed, RFC 6531); quoted local parts and address
# literals ("[192.0.2.1]") are refused. Domain: at least two labels of letters, digits and
# inner hyphens, the last not all digits.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
_LABEL_CHAR = r"A-Za-z0-9\u0080-\U0010ffff"
_LABEL = rf"[{_LABEL_CHAR}](?:[{_LABEL_CHAR}\-]{{0,61}}[{_LABEL_CHAR}])?"
_EMAIL = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+{_LABEL})")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_PHONE_SEPARATORS = str.maketrans("", "", " -.()\u00a0")

_TEXT_FIELDS = ("first_name", "last_name", "company", "industry", "customer_type", "lead_source")
_SCALAR_FIELDS = (
    "email", "first_name", "last_name", "phone", "company", "industry", "customer_type",
    "segment", "home_brand_id", "lead_source",
)  # fmt: skip
_LOCATION_FIELDS = ("city", "region", "country")
# Paths an update mask may name (besides "traits.<key>").
MASK_PATHS = frozenset(
    {*_SCALAR_FIELDS, "location", "interests", "traits"}
    | {f"location.{name}" for name in _LOCATION_FIELDS}
)
# Order of changed_fields: LeadProfile's field order.
_FIELD_ORDER = (
    "email", "first_name", "last_name", "phone", "location", "company", "industry",
    "customer_type", "segment", "interests", "home_brand_id", "lead_source", "traits",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Location:
    city: str = ""
    region: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    """A lead's profile; "" / () / {} mean unknown. segment is "", "enterprise", "smb" or
    "startup". traits hold JSON values; in an update, a None trait means "remove"."""

    email: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    location: Location = Location()
    company: str = ""
    industry: str = ""
    customer_type: str = ""
    segment: str = ""
    interests: tuple[str, ...] = ()
    home_brand_id: str = ""
    lead_source: str = ""
    traits: dict[str, Any] = field(default_factory=dict)


def normalize_email(email: str) -> str:
    """Trimmed, domain in lower case: "Ann@Example.COM " -> "Ann@example.com"."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}" if at else email


def normalize_phone(phone: str) -> str:
    """Separators removed: "+1 (512) 555-0100" -> "+15125550100" (E.164 is then checked)."""
    return phone.strip().translate(_PHONE_SEPARATORS)


def normalize_interests(interests: Sequence[str]) -> tuple[str, ...]:
    """Trimmed, empty ones dropped, duplicates removed keeping the first occurrence."""
    return tuple(dict.fromkeys(item.strip() for item in interests if item.strip()))


def normalize_profile(profile: Profile) -> Profile:
    location = profile.location
    return Profile(
        email=normalize_email(profile.email),
        first_name=profile.first_name.strip(),
        last_name=profile.last_name.strip(),
        phone=normalize_phone(profile.phone),
        location=Location(
            city=location.city.strip(),
            region=location.region.strip(),
            country=location.country.strip().upper(),
        ),
        company=profile.company.strip(),
        industry=profile.industry.strip(),
        customer_type=profile.customer_type.strip(),
        segment=profile.segment.strip().lower(),
        interests=normalize_interests(profile.interests),
        home_brand_id=profile.home_brand_id,
        lead_source=profile.lead_source.strip(),
        traits=profile.traits,
    )


def is_email(email: str) -> bool:
    """Syntax check of an addr-spec (see _EMAIL); at most 254 characters, local part 64."""
    if len(email) > MAX_EMAIL_CHARS or not email.isprintable() or " " in email:
        return False
    match = _EMAIL.fullmatch(email)
    if match is None or len(match.group(1)) > MAX_EMAIL_LOCAL_CHARS:
        return False
    return not match.group(2).rpartition(".")[2].isdigit()


def validate_profile(
    profile: Profile, limits: Limits = DEFAULT_LIMITS, *, field: str = "profile"
) -> list[Violation]:
    """Every violation of a profile as sent (checked in its normalised form), with paths
    like "profile.email", "profile.location.country", "profile.interests[3]",
    "profile.traits.plan"."""
    out: list[Violation] = []
    max_str = limits.max_string_chars

    email = profile.email.strip()
    if email:
        check_text(email, f"{field}.email", max_str, out)
        if len(email) <= max_str and not is_email(normalize_email(email)):
            out.append(
                Violation(f"{field}.email", ViolationCode.INVALID_VALUE, "not an email address")
            )
    for name in _TEXT_FIELDS:
        check_text(getattr(profile, name), f"{field}.{name}", max_str, out)

    phone = normalize_phone(profile.phone)
    if phone:
        check_text(profile.phone, f"{field}.phone", max_str, out)
        if _E164.fullmatch(phone) is None:
            out.append(
                Violation(
                    f"{field}.phone",
                    ViolationCode.INVALID_VALUE,
                    "phone must be in E.164 form, e.g. +15125550100",
                )
            )

    location = profile.location
    check_text(location.city, f"{field}.location.city", MAX_LOCATION_CHARS, out)
    check_text(location.region, f"{field}.location.region", MAX_LOCATION_CHARS, out)
    country = location.country.strip()
    if country and country.upper() not in COUNTRY_CODES:
        out.append(
            Violation(
                f"{field}.location.country",
                ViolationCode.INVALID_VALUE,
                f"{country[:20]!r} is not an ISO 3166-1 alpha-2 country code",
            )
        )

    segment = profile.segment.strip().lower()
    if segment and segment not in SEGMENTS:
        out.append(
            Violation(
                f"{field}.segment",
                ViolationCode.INVALID_VALUE,
                "segment must be enterprise, smb or startup",
            )
        )

    for index, interest in enumerate(profile.interests):
        check_text(interest.strip(), f"{field}.interests[{index}]", MAX_INTEREST_CHARS, out)
    distinct = len(normalize_interests(profile.interests))
    if distinct > MAX_INTERESTS:
        out.append(
            Violation(
                f"{field}.interests",
                ViolationCode.INVALID_VALUE,
                f"{distinct} distinct interests, the limit is {MAX_INTERESTS}",
            )
        )

    check_id(profile.home_brand_id, f"{field}.home_brand_id", limits.max_id_chars, False, out)
    if profile.traits:
        check_properties(profile.traits, f"{field}.traits", limits, out)
    if len(out) > limits.max_violations:
        del out[limits.max_violations :]
    return out


def validate_mask(paths: Sequence[str], field: str = "update_mask") -> list[Violation]:
    """INVALID_VALUE for each path that names no LeadProfile field (`MASK_PATHS` or
    "traits.<key>"), at "update_mask.paths[i]"."""
    return [
        Violation(
            f"{field}.paths[{index}]",
            ViolationCode.INVALID_VALUE,
            f"unknown profile field {path[:100]!r}",
        )
        for index, path in enumerate(paths)
        if not _is_mask_path(path)
    ]


def merge_profile(
    current: Profile | None, update: Profile, mask: Sequence[str] | None = None
) -> tuple[Profile, list[str]]:
    """Identify's write: the new profile and the paths whose value changed.

    Without a mask (None or empty): every field non-empty in `update` is written (interests
    replace the stored list), location field by field, traits key by key (a None value
    removes the key); the rest is unchanged. With a mask: exactly the named paths are
    written, an empty value clearing the field: "location" writes all three location
    fields, "traits" replaces all traits, "traits.<key>" writes (or, when absent or None in
    `update`, removes) one key. `update` is normalised first; validate it and the mask
    before (an unknown path raises ValueError).

    changed_fields: "email", "location.city", "interests", "traits.plan"..., in LeadProfile
    field order (trait keys sorted); empty when nothing changed.
    """
    base = current if current is not None else Profile()
    new = normalize_profile(update)
    values: dict[str, Any] = {name: getattr(base, name) for name in _SCALAR_FIELDS}
    location = {name: getattr(base.location, name) for name in _LOCATION_FIELDS}
    interests = base.interests
    traits = dict(base.traits)

    if not mask:
        for name in _SCALAR_FIELDS:
            value = getattr(new, name)
            if value:
                values[name] = value
        for name in _LOCATION_FIELDS:
            value = getattr(new.location, name)
            if value:
                location[name] = value
        if new.interests:
            interests = new.interests
        for key, value in new.traits.items():
            if value is None:
                traits.pop(key, None)
            else:
                traits[key] = value
    else:
        unknown = [path for path in mask if not _is_mask_path(path)]
        if unknown:
            raise ValueError(f"unknown profile paths: {unknown}")
        for path in mask:
            if path in values:
                values[path] = getattr(new, path)
            elif path == "location":
                for name in _LOCATION_FIELDS:
                    location[name] = getattr(new.location, name)
            elif path.startswith("location."):
                name = path[len("location.") :]
                location[name] = getattr(new.location, name)
            elif path == "interests":
                interests = new.interests
            elif path == "traits":
                traits = {k: v for k, v in new.traits.items() if v is not None}
            else:
                key = path[len("traits.") :]
                value = new.traits.get(key)
                if value is None:
                    traits.pop(key, None)
                else:
                    traits[key] = value

    merged = Profile(location=Location(**location), interests=interests, traits=traits, **values)
    return merged, changed_fields(base, merged)


def changed_fields(before: Profile, after: Profile) -> list[str]:
    """Paths whose value differs, in LeadProfile field order (trait keys sorted)."""
    changed: list[str] = []
    for name in _FIELD_ORDER:
        if name == "location":
            for sub in _LOCATION_FIELDS:
                if getattr(before.location, sub) != getattr(after.location, sub):
                    changed.append(f"location.{sub}")
        elif name == "traits":
            old, new = before.traits, after.traits
            for key in sorted(old.keys() | new.keys()):
                if key not in old or key not in new or not same_json(old[key], new[key]):
                    changed.append(f"traits.{key}")
        elif getattr(before, name) != getattr(after, name):
            changed.append(name)
    return changed


def same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values that tells True from 1.0 (Python's == does not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _is_mask_path(path: str) -> bool:
    return path in MASK_PATHS or (path.startswith("traits.") and len(path) > len("traits."))
