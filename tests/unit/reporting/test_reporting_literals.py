"""COPY queries inline their values as literals: each renders as its own closed literal, so
no value can change the statement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadflow_reporting.db.selection import Literals


def unescape(literal: str) -> str:
    """The text of an E'...' literal, failing if a quote inside is not escaped."""
    assert literal.startswith("E'") and literal.endswith("'")
    body, out, i = literal[2:-1], [], 0
    while i < len(body):
        if body[i] == "\\":
            out.append(body[i + 1])
            i += 2
            continue
        assert body[i] != "'", "an unescaped quote ends the literal early"
        out.append(body[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize(
    "text", ["it's", "a\\'); DROP TABLE events; --", "\\\\'", "''", "plain", "é ✓"]
)
def test_strings_cannot_end_their_literal(text: str) -> None:
    p = Literals()
    rendered = p.add(text, "text")
    assert rendered.startswith("(") and rendered.endswith("::text)")
    assert unescape(rendered[1 : -len("::text)")]) == text
    assert p.values == []


def test_arrays_numbers_times_and_json() -> None:
    p = Literals()
    assert p.add([1, 2], "int2[]") == "(ARRAY[1::int2, 2::int2]::int2[])"
    assert p.add([], "text[]") == "('{}'::text[])"
    assert p.add(2.5, "numeric") == "(2.5::numeric)"
    assert p.add(datetime(2025, 3, 1, tzinfo=UTC), "timestamptz") == (
        "(E'2025-03-01T00:00:00+00:00'::timestamptz)"
    )
    assert p.add(["pro", None], "jsonb[]") == ("""(ARRAY[E'"pro"'::jsonb, NULL::jsonb]::jsonb[])""")
    with pytest.raises(ValueError):
        p.add("a\x00b", "text")
    with pytest.raises(ValueError):
        p.add(float("nan"), "numeric")
