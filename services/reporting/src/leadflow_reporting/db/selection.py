"""SQL predicates for event selectors and property filters, with their parameters.

Column names come only from the fixed EVENT_FIELDS list; every value is a $n parameter.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

from leadflow_reporting.domain.query import (
    EVENT_FIELDS,
    NUMERIC_OPERATORS,
    Breakdown,
    Operator,
    PropertyFilter,
    Scalar,
    Selector,
)

CUSTOM = 24  # EVENT_TYPE_CUSTOM
_NUMBER = r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"


@dataclass
class Params:
    """Collects parameter values and hands out their $n placeholders."""

    values: list[object] = field(default_factory=list)

    def add(self, value: object, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


class Literals(Params):
    """Inlines each value as a quoted SQL literal instead of a $n parameter, for COPY
    queries: asyncpg sends a COPY with parameters only after two extra round trips (a
    prepare and a query that renders them as text). Strings become E'' literals with
    backslashes and quotes escaped, so no value can end its literal."""

    def add(self, value: object, cast: str) -> str:
        if cast.endswith("[]"):
            assert isinstance(value, list | tuple)
            element = cast[:-2]
            items = ", ".join(f"{_literal(v, element)}::{element}" for v in value)
            return f"(ARRAY[{items}]::{cast})" if items else f"('{{}}'::{cast})"
        return f"({_literal(value, cast)}::{cast})"


def _quote(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a NUL character cannot reach PostgreSQL")
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _literal(value: object, cast: str) -> str:
    if value is None:
        return "NULL"
    if cast == "jsonb":
        return _quote(json.dumps(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return repr(value)
    if isinstance(value, datetime):
        return _quote(value.isoformat())
    return _quote(str(value))


def _like(value: Scalar) -> str:
    text = _text(value)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text(value: Scalar) -> str:
    """A value's string form, as a text column holds it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _field_filter(f: PropertyFilter, p: Params) -> str:
    if f.key not in EVENT_FIELDS:
        raise ValueError(f"not an event field: {f.key}")
    col = f.key
    op = f.operator
    if op is Operator.IS_SET:
        return f"{col} <> ''"
    if op is Operator.IS_NOT_SET:
        return f"{col} = ''"
    if op in NUMERIC_OPERATORS:
        sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op.value]
        bound = p.add(f.values[0], "numeric")
        number = p.add(_NUMBER, "text")
        return f"(CASE WHEN {col} ~ {number} THEN {col}::numeric {sign} {bound} ELSE false END)"
    if op in (Operator.REGEX, Operator.NOT_REGEX):
        match = f"{col} ~ {p.add(f.values[0], 'text')}"
        return match if op is Operator.REGEX else f"NOT ({match})"
    if op in (Operator.CONTAINS, Operator.NOT_CONTAINS):
        like = f"{col} ILIKE ANY({p.add([_like(v) for v in f.values], 'text[]')})"
        return like if op is Operator.CONTAINS else f"NOT ({like})"
    equal = f"{col} = ANY({p.add([_text(v) for v in f.values], 'text[]')})"
    return equal if op is Operator.EQUALS else f"({col} <> '' AND NOT ({equal}))"


def _event_filter(f: PropertyFilter, p: Params) -> str:
    path = p.add(f.key.split("."), "text[]")
    value = f"(properties #> {path})"
    text = f"(properties #>> {path})"
    is_set = f"({value} IS NOT NULL AND {value} <> 'null'::jsonb)"
    op = f.operator
    if op is Operator.IS_SET:
        return is_set
    if op is Operator.IS_NOT_SET:
        return f"NOT {is_set}"
    if op in NUMERIC_OPERATORS:
        sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op.value]
        bound = p.add(f.values[0], "numeric")
        return (
            f"(CASE WHEN jsonb_typeof({value}) = 'number'"
            f" THEN ({value})::numeric {sign} {bound} ELSE false END)"
        )
    if op in (Operator.REGEX, Operator.NOT_REGEX):
        match = f"COALESCE({text} ~ {p.add(f.values[0], 'text')}, false)"
        return match if op is Operator.REGEX else f"NOT {match}"
    if op in (Operator.CONTAINS, Operator.NOT_CONTAINS):
        like = f"COALESCE({text} ILIKE ANY({p.add([_like(v) for v in f.values], 'text[]')}), false)"
        return like if op is Operator.CONTAINS else f"NOT {like}"
    # JSON equality: strings exactly, numbers numerically.
    # (The pool's jsonb codec encodes each value.)
    equal = f"COALESCE({value} = ANY({p.add(list(f.values), 'jsonb[]')}), false)"
    return equal if op is Operator.EQUALS else f"({is_set} AND NOT {equal})"


def selector_sql(selector: Selector, p: Params) -> str:
    """A predicate true for the events the selector matches."""
    parts = [f"event_type = {int(selector.event_type)}"]
    if selector.event_type == CUSTOM:
        parts.append(f"custom_name = {p.add(selector.custom_name, 'text')}")
    for f in selector.filters:
        parts.append(_field_filter(f, p) if f.scope == "field" else _event_filter(f, p))
    return "(" + " AND ".join(parts) + ")"


def breakdown_sql(breakdown: Breakdown, p: Params) -> str:
    """The breakdown value of an event as text ('' when not set)."""
    if breakdown.scope == "field":
        if breakdown.key not in EVENT_FIELDS:
            raise ValueError(f"not an event field: {breakdown.key}")
        return breakdown.key
    if breakdown.scope == "event_type":
        # Tagged, so a custom name never reads as a type number: "c<name>" or "t<number>".
        return f"CASE WHEN event_type = {CUSTOM} THEN 'c' || custom_name ELSE 't' || event_type END"
    return f"COALESCE(properties #>> {p.add(breakdown.key.split('.'), 'text[]')}, '')"
