"""Alert requests checked and turned into domain values: the configuration of
PutAlertConfig (every violation named, e.g. "config.rules[2].threshold: ..."), the version of
GetAlertConfig and the filters and page of ListAlerts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from leadflow.common.v1 import money_pb2, pagination_pb2
from leadflow.reporting.v1 import alerts_pb2
from leadflow.reporting.v1 import report_types_pb2 as rt
from leadflow.reporting.v1 import reporting_service_pb2 as pb
from leadflow_platform.errors import FieldViolation, InvalidArgument
from leadflow_reporting.api.requests import zone
from leadflow_reporting.api.validation import ID_MAX, time_range
from leadflow_reporting.domain import kpis
from leadflow_reporting.domain.alerts import ABOVE, BELOW, DAY, MONTH, WEEK, AlertConfig, Rule

MAX_RULES = 200
RULE_ID = re.compile(r"[a-z0-9_-]{1,100}")
DESCRIPTION_MAX = 500
CURRENCY = re.compile(r"[A-Z]{3}")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
PERIODS = {
    alerts_pb2.ALERT_PERIOD_UNSPECIFIED: DAY,
    alerts_pb2.ALERT_PERIOD_DAY: DAY,
    alerts_pb2.ALERT_PERIOD_WEEK: WEEK,
    alerts_pb2.ALERT_PERIOD_MONTH: MONTH,
}
DIRECTIONS = {
    alerts_pb2.THRESHOLD_DIRECTION_UNSPECIFIED: BELOW,
    alerts_pb2.THRESHOLD_DIRECTION_BELOW: BELOW,
    alerts_pb2.THRESHOLD_DIRECTION_ABOVE: ABOVE,
}


def _fail(bad: list[FieldViolation]) -> None:
    if bad:
        raise InvalidArgument(*bad)


def _money(m: money_pb2.Money, field: str, bad: list[FieldViolation]) -> Decimal:
    if not CURRENCY.fullmatch(m.currency_code):
        bad.append(
            FieldViolation(f"{field}.currency_code", "an ISO 4217 code of three capital letters")
        )
    if not -999_999_999 <= m.nanos <= 999_999_999:
        bad.append(FieldViolation(f"{field}.nanos", "must be in -999,999,999..999,999,999"))
    elif (m.units > 0 and m.nanos < 0) or (m.units < 0 and m.nanos > 0):
        bad.append(FieldViolation(f"{field}.nanos", "must have the sign of units"))
    amount = Decimal(m.units) + Decimal(m.nanos) / Decimal(1_000_000_000)
    if amount < 0:
        bad.append(FieldViolation(field, "must not be negative"))
    return amount


def _threshold(
    kpi: int, value: rt.KpiValue, present: bool, field: str, bad: list[FieldViolation]
) -> tuple[float | Decimal, str]:
    """The threshold and its currency ('' for numbers); its kind must suit the KPI."""
    kind = value.WhichOneof("value") if present else None
    if kind is None:
        bad.append(FieldViolation(field, "is required"))
        return 0.0, ""
    if kpi in kpis.MONEY:
        if kind != "money":
            bad.append(FieldViolation(field, "must be money for revenue, MRR and ARR"))
            return 0.0, ""
        return _money(value.money, f"{field}.money", bad), value.money.currency_code
    if kind != "number":
        bad.append(
            FieldViolation(
                field, "must be a number for this KPI (money is for revenue, MRR and ARR)"
            )
        )
        return 0.0, ""
    number = value.number
    if not math.isfinite(number) or number < 0:
        bad.append(FieldViolation(f"{field}.number", "must be a finite number, 0 or more"))
    elif kpi in kpis.RATES and number > 1:
        bad.append(FieldViolation(f"{field}.number", "a rate is in 0..1"))
    return number, ""


def _rule(r: alerts_pb2.KpiAlertRule, field: str, bad: list[FieldViolation]) -> Rule:
    if not RULE_ID.fullmatch(r.rule_id):
        bad.append(FieldViolation(f"{field}.rule_id", "1 to 100 characters of a-z, 0-9, _ and -"))
    kpi = int(r.kpi)
    if kpi not in kpis.ALL:
        bad.append(FieldViolation(f"{field}.kpi", "is required (a known KPI)"))
    if len(r.brand_id) > ID_MAX:
        bad.append(FieldViolation(f"{field}.brand_id", f"at most {ID_MAX} characters"))
    period = PERIODS.get(r.period)
    if period is None:
        bad.append(FieldViolation(f"{field}.period", "unknown period"))
    direction = DIRECTIONS.get(r.direction)
    if direction is None:
        bad.append(FieldViolation(f"{field}.direction", "unknown direction"))
    if len(r.description) > DESCRIPTION_MAX:
        bad.append(FieldViolation(f"{field}.description", f"at most {DESCRIPTION_MAX} characters"))
    threshold: float | Decimal = 0.0
    currency = ""
    if kpi in kpis.ALL:
        threshold, currency = _threshold(
            kpi, r.threshold, r.HasField("threshold"), f"{field}.threshold", bad
        )
    return Rule(
        rule_id=r.rule_id,
        kpi=kpi,
        threshold=threshold,
        brand_id=r.brand_id,
        period=period or DAY,
        currency=currency,
        direction=direction or BELOW,
        disabled=r.disabled,
        description=r.description,
    )


def put_config(request: pb.PutAlertConfigRequest) -> tuple[AlertConfig, int | None]:
    """The configuration to save (version 0: the server assigns it) and expected_version."""
    bad: list[FieldViolation] = []
    if not request.HasField("config"):
        bad.append(FieldViolation("config", "is required"))
    config = request.config
    if len(config.rules) > MAX_RULES:
        bad.append(FieldViolation("config.rules", f"at most {MAX_RULES} rules"))
    rules = []
    seen: set[str] = set()
    for i, r in enumerate(config.rules):
        field = f"config.rules[{i}]"
        rules.append(_rule(r, field, bad))
        if r.rule_id in seen:
            bad.append(FieldViolation(f"{field}.rule_id", f"{r.rule_id!r} is used by another rule"))
        seen.add(r.rule_id)
    time_zone = zone(config.time_zone, "config.time_zone", bad)
    expected = request.expected_version if request.HasField("expected_version") else None
    if expected is not None and expected < 0:
        bad.append(FieldViolation("expected_version", "must be 0 or more"))
    _fail(bad)
    return AlertConfig(0, tuple(rules), time_zone), expected


def get_config(request: pb.GetAlertConfigRequest) -> int | None:
    if not request.HasField("version"):
        return None
    if request.version < 1:
        raise InvalidArgument.field("version", "must be 1 or more")
    return request.version


@dataclass(frozen=True)
class AlertsQuery:
    start_us: int | None
    end_us: int | None
    kpis: tuple[int, ...]
    brand_ids: tuple[str, ...] | None
    page_size: int
    after: tuple[int, str] | None
    fingerprint: str


def _fingerprint(request: pb.ListAlertsRequest) -> str:
    """What a page token is tied to: the request without its page."""
    query = pb.ListAlertsRequest()
    query.CopyFrom(request)
    query.ClearField("page")
    return hashlib.sha256(query.SerializeToString(deterministic=True)).hexdigest()[:16]


def page_token(fingerprint: str, raised_at_us: int, alert_id: str) -> str:
    raw = json.dumps({"q": fingerprint, "t": raised_at_us, "i": alert_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(
    page: pagination_pb2.PageRequest, fingerprint: str, bad: list[FieldViolation]
) -> tuple[int, str] | None:
    token = page.page_token
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["q"] != fingerprint or not isinstance(data["t"], int):
            raise ValueError("another query")
        return data["t"], str(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        bad.append(FieldViolation("page.page_token", "not a token of this query"))
        return None


def list_alerts(request: pb.ListAlertsRequest, *, paged: bool = True) -> AlertsQuery:
    """The filters (and, unless `paged` is False as in exports, the page) of ListAlerts."""
    bad: list[FieldViolation] = []
    start = end = None
    if request.HasField("range"):
        # Any length: of time_range's answers, the 366-day cap of reports is dropped.
        found: list[FieldViolation] = []
        start, end = time_range(request.range, "range", found, required=True)
        if start >= end:
            bad += found
    wanted: list[int] = []
    for i, k in enumerate(request.kpis):
        if k not in kpis.ALL:
            bad.append(FieldViolation(f"kpis[{i}]", "unknown KPI"))
        wanted.append(int(k))
    for i, brand in enumerate(request.brand_ids):
        if len(brand) > ID_MAX:
            bad.append(FieldViolation(f"brand_ids[{i}]", f"at most {ID_MAX} characters"))
    size = DEFAULT_PAGE_SIZE
    after = None
    fingerprint = _fingerprint(request)
    if paged:
        size = request.page.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            bad.append(FieldViolation("page.page_size", f"must be in 0..{MAX_PAGE_SIZE}"))
        after = _after(request.page, fingerprint, bad)
    _fail(bad)
    return AlertsQuery(
        start,
        end,
        tuple(sorted(set(wanted))),
        tuple(sorted(set(request.brand_ids))) if request.brand_ids else None,
        size,
        after,
        fingerprint,
    )
