"""Rule conditions: CEL expressions over `lead`, `trigger` and `trigger_detail`, checked when a
configuration is saved and evaluated on every decision.

The CEL library parses and evaluates but has no type checker, so saving a condition checks it
in three steps: it must parse; every `lead.<field>` (and `lead.score.<f>`,
`lead.consents.<f>`) must exist and enum fields may only be compared with their spellings;
and it must evaluate to a bool on probe leads (an empty one and a full one), where a missing
map key (an absent trait or custom event count) is allowed because at run time it only means
"not matched".

For speed a condition is rewritten before compiling: `lead.<container>` becomes the variable
`_lead_<container>` (snapshot.container_variable), and the `ContextPlan` records which scalar
fields and which container keys it reads, so a decision builds one small context for all its
rules (snapshot.py explains the costs). The rewrite works on CEL tokens, never inside string
literals.

Conjuncts of a top-level `&&` that compare one fact with a literal become `guards`, decided
in Python before any CEL runs: a string field of the lead or the trigger with strings
(`lead.home_brand_id == "modumind"`, `trigger != "manual"`, `lead.temperature in ["warm",
"hot"]`), a score, an event count or a trait with a number (`lead.score.total >= 40`), a
consent or a trait with a bool (`lead.consents.portfolio_sharing`), `has(lead.traits.x)`, a
trait with strings. In CEL `false && x` is false whatever `x` gives (an error included), so a
failed guard means "not matched" exactly, and most rules of a large configuration fail one;
a condition that is nothing but guards holds when they all do. A guard answers only where
Python and CEL agree by construction (a value of the literal's type, no NaN, integers within
2^53); otherwise it leaves the rule to CEL.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cel

from leadflow_routing.domain.snapshot import (
    CONSENT_FIELDS,
    CONTAINER_FIELDS,
    CONTAINER_VARIABLE_PREFIX,
    ENUM_FIELDS,
    EVENT_TYPES,
    LEAD_FIELDS,
    SCORE_FIELDS,
    ContextPlan,
    Grade,
    LeadConsents,
    LeadScore,
    LeadSnapshot,
    LifecycleStage,
    Segment,
    Temperature,
    cel_context,
    container_value,
)

MAX_CONDITION_LENGTH = 4000
VARIABLES = frozenset({"lead", "trigger", "trigger_detail"})
TRIGGERS: tuple[str, ...] = ("identified", "threshold_crossed", "stage_changed", "manual")
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_FIXED_KEYS: Mapping[str, tuple[str, ...]] = {"score": SCORE_FIELDS, "consents": CONSENT_FIELDS}


class ConditionError(ValueError):
    """The condition is invalid; the message says why (without the rule's name)."""


# --- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
        |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "string", "number", "ident", "op"
    text: str


def _tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:  # the parser reports it with a position
            raise ConditionError(f"unexpected character {source[pos]!r} at offset {pos}")
        kind = m.lastgroup or "op"
        if kind != "ws":
            out.append(_Token(kind, m.group()))
        pos = m.end()
    return out


def _string_value(text: str) -> str | None:
    """The value of a plain (non-raw, non-bytes, escape-free) string literal, else None."""
    if text[0] not in "'\"" or "\\" in text or text.startswith(("'''", '"""')):
        return None
    return text[1:-1]


# --- analysis -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Access:
    """One `lead...` access: `field`, the container `key` read (None: dynamic or the
    container itself), tokens [start, end) it spans up to the field, inside `has()`."""

    field: str
    key: str | None
    start: int
    end: int
    in_has: bool
    whole: bool


def _bound_names(tokens: list[_Token]) -> set[str]:
    """Names bound by comprehension macros (`x` in `list.exists(x, ...)`)."""
    names: set[str] = set()
    for i in range(len(tokens) - 4):
        if (
            tokens[i].text == "."
            and tokens[i + 1].text in _MACROS
            and tokens[i + 2].text == "("
            and tokens[i + 3].kind == "ident"
            and tokens[i + 4].text == ","
        ):
            names.add(tokens[i + 3].text)
    return names


def _accesses(tokens: list[_Token], errors: list[str]) -> tuple[list[_Access], bool]:
    """Every `lead.<field>` access; second value True when `lead` is used otherwise (then the
    whole lead goes into the context and nothing is rewritten)."""
    accesses: list[_Access] = []
    bare = False
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text != "lead" or (i > 0 and tokens[i - 1].text == "."):
            continue
        if not (i + 2 < n and tokens[i + 1].text == "." and tokens[i + 2].kind == "ident"):
            bare = True
            continue
        name = tokens[i + 2].text
        if name not in LEAD_FIELDS:
            errors.append(f"undeclared reference to 'lead.{name}'")
            continue
        in_has = i >= 2 and tokens[i - 1].text == "(" and tokens[i - 2].text == "has"
        key: str | None = None
        whole = True
        j = i + 3
        if name in CONTAINER_FIELDS and j < n:
            if (
                tokens[j].text == "."
                and j + 1 < n
                and tokens[j + 1].kind == "ident"
                and not (j + 2 < n and tokens[j + 2].text == "(")
            ):
                key, whole = tokens[j + 1].text, False
            elif (
                tokens[j].text == "["
                and j + 2 < n
                and tokens[j + 1].kind == "string"
                and tokens[j + 2].text == "]"
            ):
                literal = _string_value(tokens[j + 1].text)
                if literal is not None:
                    key, whole = literal, False
        if key is not None and name in _FIXED_KEYS and key not in _FIXED_KEYS[name]:
            errors.append(
                f"undeclared reference to 'lead.{name}.{key}' (fields: "
                + ", ".join(_FIXED_KEYS[name])
                + ")"
            )
        accesses.append(_Access(name, key, i, i + 3, in_has, whole))
    return accesses, bare


def _check_enum_literals(tokens: list[_Token], errors: list[str]) -> None:
    """`lead.grade == "A+"` can never hold: name the spellings instead."""
    for i in range(len(tokens) - 2):
        if (
            tokens[i].text != "lead"
            or tokens[i + 1].text != "."
            or (i > 0 and tokens[i - 1].text == ".")
        ):
            continue
        name = tokens[i + 2].text
        allowed = ENUM_FIELDS.get(name)
        if allowed is None:
            continue
        literals: list[str] = []
        after = i + 3
        if after + 1 < len(tokens) and tokens[after].text in ("==", "!="):
            literals.append(tokens[after + 1].text)
        if i >= 2 and tokens[i - 1].text in ("==", "!="):
            literals.append(tokens[i - 2].text)
        for text in literals:
            value = _string_value(text) if text[:1] in "'\"" else None
            if value is not None and value not in allowed:
                errors.append(f"{text} is not a {name}; one of " + ", ".join(sorted(allowed)))


def _plan(accesses: list[_Access], idents: set[str], bare: bool) -> ContextPlan:
    if bare:
        return ContextPlan(
            full_lead=True,
            trigger="trigger" in idents,
            trigger_detail="trigger_detail" in idents,
        )
    scalars: set[str] = set()
    placeholders: set[str] = set()
    containers: dict[str, frozenset[str] | None] = {}
    for access in accesses:
        if access.field not in CONTAINER_FIELDS:
            scalars.add(access.field)
        elif access.in_has and access.whole:
            placeholders.add(access.field)
        else:
            keys = None if access.key is None else frozenset({access.key})
            if access.field in containers:
                mine = containers[access.field]
                keys = None if mine is None or keys is None else mine | keys
            containers[access.field] = keys
    return ContextPlan(
        scalars=frozenset(scalars),
        placeholders=frozenset(placeholders),
        containers=containers,
        trigger="trigger" in idents,
        trigger_detail="trigger_detail" in idents,
    )


def _rewrite(source_tokens: list[_Token], accesses: list[_Access]) -> str:
    rewritten = {a.start: a for a in accesses if a.field in CONTAINER_FIELDS and not a.in_has}
    rewritten.update(
        {a.start: a for a in accesses if a.field in CONTAINER_FIELDS and a.in_has and not a.whole}
    )
    parts: list[str] = []
    i = 0
    while i < len(source_tokens):
        access = rewritten.get(i)
        if access is not None:
            parts.append(CONTAINER_VARIABLE_PREFIX + access.field)
            i = access.end
            continue
        parts.append(source_tokens[i].text)
        i += 1
    return " ".join(parts)


# --- guards ---------------------------------------------------------------------------------

GUARD_FIELDS: tuple[str, ...] = (
    "lead_id",
    "home_brand_id",
    "segment",
    "grade",
    "temperature",
    "stage",
    "trigger",
    "trigger_detail",
)
"""String-valued names a guard can test (always present in a context: never a CEL error)."""

Fact = tuple[str, str]
"""What a guard reads: (a GUARD_FIELDS name, "") or (a container field, a key of it)."""


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Any = _Marker("MISSING")
"""A container key the lead's CEL form does not hold (an absent trait, a custom count)."""
UNDECIDED: Any = _Marker("UNDECIDED")
"""A value only CEL can judge (see the event counts' reader)."""

_NO_SCORE = LeadScore()

_EXACT = 2**53
"""Integers up to this compare with doubles exactly, in Python as in CEL."""

_COMPARE: Mapping[str, Any] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True, slots=True)
class Guard:
    """A conjunct of the condition's top-level `&&` chain that Python decides: `kind` "str"
    (`fact in operand`, a frozenset of strings, or `not in` when `negated`), "num" (`fact op
    operand`, an int or double), "bool" (`fact op operand`, == or != a bool) or "has"
    (the key is present)."""

    fact: Fact
    kind: str
    op: str
    operand: Any
    negated: bool = False

    def decide(self, value: Any) -> bool | None:
        """The conjunct's CEL value on the fact's value, or None when only CEL can tell: an
        absent key (CEL errors), a value of another type than the literal's (CEL may error
        or compare across types), a NaN (CEL errors on ordering), an integer too large to
        compare with a double exactly."""
        kind = self.kind
        if kind == "has":
            return None if value is UNDECIDED else value is not MISSING
        cls = type(value)  # MISSING and UNDECIDED are of none of the types below
        if kind == "str":
            return (value in self.operand) is not self.negated if cls is str else None
        if kind == "bool":
            return _COMPARE[self.op](value, self.operand) if cls is bool else None
        if cls is float:
            if value != value:
                return None
        elif cls is not int or not -_EXACT <= value <= _EXACT:
            return None
        return bool(_COMPARE[self.op](value, self.operand))


def _conjuncts(tokens: list[_Token]) -> list[list[_Token]]:
    """The operands of a top-level `&&` chain; [] when the top level holds `||` or `?:`."""
    out: list[list[_Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.kind == "op" and tok.text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and tok.text in ("||", "?", ":"):
            return []
        elif depth == 0 and tok.text == "&&":
            out.append([])
            continue
        out[-1].append(tok)
    return out


def _fact(tokens: list[_Token]) -> Fact | None:
    """The fact a whole operand reads: `trigger`, `lead.<string field>`,
    `lead.<container>.<key>` or `lead.<container>["<key>"]`."""
    texts = [t.text for t in tokens]
    if len(texts) == 1 and texts[0] in ("trigger", "trigger_detail"):
        return texts[0], ""
    if len(texts) < 3 or texts[:2] != ["lead", "."]:
        return None
    name = texts[2]
    if len(texts) == 3:
        return (name, "") if name in GUARD_FIELDS[:6] else None
    if name not in CONTAINER_FIELDS:
        return None
    if len(texts) == 5 and texts[3] == "." and tokens[4].kind == "ident":
        key: str | None = texts[4]
    elif len(texts) == 6 and texts[3] == "[" and tokens[4].kind == "string" and texts[5] == "]":
        key = _string_value(texts[4])
    else:
        return None
    if key is None or (name in _FIXED_KEYS and key not in _FIXED_KEYS[name]):
        return None
    return name, key


def _literal(tokens: list[_Token]) -> tuple[str, Any] | None:
    """(kind, value) of a plain string, number (a leading `-` allowed) or bool literal."""
    if len(tokens) == 1 and tokens[0].kind == "string":
        value = _string_value(tokens[0].text)
        return None if value is None else ("str", value)
    if len(tokens) == 1 and tokens[0].text in ("true", "false"):
        return "bool", tokens[0].text == "true"
    sign = 1
    if len(tokens) == 2 and tokens[0].text == "-":
        sign, tokens = -1, tokens[1:]
    if len(tokens) != 1 or tokens[0].kind != "number":
        return None
    text = tokens[0].text
    if text[-1] in "uU":  # unsigned: left to CEL
        return None
    number: float | int
    if text[:2] in ("0x", "0X"):
        number = int(text, 16)
    elif any(c in text for c in ".eE"):
        number = float(text)
        if not math.isfinite(number):
            return None
    else:
        number = int(text)
    if isinstance(number, int) and not -_EXACT <= number <= _EXACT:
        return None
    return "num", sign * number


def _guard(tokens: list[_Token]) -> Guard | None:
    """The guard a conjunct is, if it is one."""
    texts = [t.text for t in tokens]
    if len(texts) > 3 and texts[:2] == ["has", "("] and texts[-1] == ")":
        fact = _fact(tokens[2:-1])
        return None if fact is None or not fact[1] else Guard(fact, "has", "has", None)
    fact = _fact(tokens)
    if fact is not None:  # a bool read alone
        return Guard(fact, "bool", "==", True) if fact[1] else None
    if texts[:1] == ["!"]:
        fact = _fact(tokens[1:])
        return Guard(fact, "bool", "==", False) if fact is not None and fact[1] else None
    for i, text in enumerate(texts):
        if text == "in":
            fact = _fact(tokens[:i])
            items = tokens[i + 1 :]
            if fact is None or len(items) < 3 or items[0].text != "[" or items[-1].text != "]":
                return None
            values: set[str] = set()
            for j, item in enumerate(items[1:-1]):
                if j % 2 == 1:
                    if item.text != ",":
                        return None
                    continue
                value = _string_value(item.text) if item.kind == "string" else None
                if value is None:
                    return None
                values.add(value)
            return Guard(fact, "str", "in", frozenset(values))
        if text in _COMPARE:
            left, right = tokens[:i], tokens[i + 1 :]
            op = text
            fact = _fact(left)
            if fact is None:  # literal op name
                left, right, op = right, left, _FLIPPED[text]
                fact = _fact(left)
            literal = _literal(right)
            if fact is None or literal is None:
                return None
            kind, value = literal
            if not fact[1] and kind != "str":  # the string fields are never anything else
                return None
            if kind != "num" and op not in ("==", "!="):
                return None
            if kind == "str":
                return Guard(fact, "str", "in", frozenset({value}), negated=op == "!=")
            return Guard(fact, kind, op, value)
    return None


def _guards(tokens: list[_Token]) -> tuple[tuple[Guard, ...], bool]:
    """The guards of a condition, and whether it is nothing but guards (then it holds, with
    no CEL run, when every guard holds)."""
    conjuncts = _conjuncts(tokens)
    found = [_guard(c) for c in conjuncts]
    guards = tuple(g for g in found if g is not None)
    return guards, bool(conjuncts) and len(guards) == len(conjuncts)


_SHORT_NAMES: Mapping[Any, str] = {
    member: member.short_name
    for enum in (Segment, Grade, Temperature, LifecycleStage)
    for member in enum
}


def fact_reader(fact: Fact) -> Callable[[LeadSnapshot, str, str], Any]:
    """How to read a fact of a lead (with the trigger and its detail) as CEL sees it;
    MISSING for a container key CEL would not find."""
    name, key = fact
    if name == "trigger":
        return lambda s, trigger, detail: trigger
    if name == "trigger_detail":
        return lambda s, trigger, detail: detail
    if name in ("lead_id", "home_brand_id"):
        return lambda s, trigger, detail: getattr(s, name)
    if name in GUARD_FIELDS:  # an enum: its short name
        return lambda s, trigger, detail: _SHORT_NAMES[getattr(s, name)]
    if name == "score":

        def score(s: LeadSnapshot, trigger: str, detail: str) -> Any:
            value = getattr(s.score or _NO_SCORE, key, None)  # as snapshot._score_map
            return MISSING if value is None else value

        return score
    if name == "consents":
        return lambda s, trigger, detail: getattr(s.consents, key) is True
    if name == "recent_event_counts":
        default = 0 if key in EVENT_TYPES else MISSING

        def count(s: LeadSnapshot, trigger: str, detail: str) -> Any:
            counts = s.recent_event_counts
            value = counts.get(key)
            if value is None:
                # a count stored as None (never so from the database) reads differently in
                # the small context and in the whole `lead`: left to CEL
                return UNDECIDED if key in counts else default
            return value

        return count
    if name == "traits":
        return lambda s, trigger, detail: s.traits.get(key, MISSING)
    raise ValueError(f"not a fact a guard reads: {fact!r}")


# --- compiled conditions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """A checked, compiled condition. `program` is None for the empty condition (always
    true); `reads` are the paths it reads, for explanations."""

    source: str
    program: Any
    plan: ContextPlan
    reads: tuple[str, ...] = field(default=())
    guards: tuple[Guard, ...] = field(default=())
    only_guards: bool = False
    """Every conjunct is a guard: the condition holds when they all hold."""
    reads_key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        # "\n" never occurs in a path: the key of the whole explanation in a decision's cache
        object.__setattr__(self, "reads_key", "\n".join(self.reads) + "\n")

    def evaluate(self, ctx: Any) -> tuple[bool, str]:
        """(matched, error) in a context built with a plan that covers this one's."""
        if self.program is None:
            return True, ""
        try:
            result = self.program.execute(ctx)
        except KeyError as exc:
            return False, f"no such key: {exc.args[0] if exc.args else exc}"
        except Exception as exc:  # the CEL runtime raises several types; all mean "error"
            return False, _error_text(exc)
        if result is True:
            return True, ""
        if result is False:
            return False, ""
        return False, f"condition evaluated to {_cel_type(result)}, not bool"

    def explain(
        self,
        snapshot: LeadSnapshot,
        trigger: str,
        trigger_detail: str,
        cache: dict[str, str] | None = None,
    ) -> str:
        """The values the condition read, e.g. 'lead.score.total = 72.5; lead.grade = "b"'.
        `cache` (one per decision) keeps each path's text, as rules share most paths."""
        if self.program is None:
            return "empty condition: matches every lead"
        if cache is None:
            cache = {}
        whole = cache.get(self.reads_key)
        if whole is not None:
            return whole
        parts = []
        for path in self.reads:
            text = cache.get(path)
            if text is None:
                text = cache[path] = f"{path} = {_read(path, snapshot, trigger, trigger_detail)}"
            parts.append(text)
        whole = cache[self.reads_key] = "; ".join(parts)
        return whole


def _error_text(exc: Exception) -> str:
    text = str(exc).split(". ")[0].strip()
    return text or type(exc).__name__


def _cel_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        int: "int",
        float: "double",
        str: "string",
        bytes: "bytes",
        list: "list",
        dict: "map",
    }.get(type(value), type(value).__name__)


def _format(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


_ABSENT = "<absent>"


def _read(path: str, snapshot: LeadSnapshot, trigger: str, trigger_detail: str) -> str:
    if path == "trigger":
        return _format(trigger)
    if path == "trigger_detail":
        return _format(trigger_detail)
    parts = path.split(".", 2)
    name = parts[1]
    if name in CONTAINER_FIELDS:
        if len(parts) == 2:
            return f"<{name}: {len(container_value(snapshot, name))} keys>"
        key = parts[2]
        if key.startswith('["'):
            key = key[2:-2]
        values = container_value(snapshot, name, (key,))
        if name == "traits":
            # traits hold personal data: explanations show only whether they are present
            return "<set>" if key in values else _ABSENT
        return _format(values[key]) if key in values else _ABSENT
    value = getattr(snapshot, name)
    if value is None:
        return _ABSENT
    return _format(value.name.lower() if hasattr(value, "name") else value)


def _reads(accesses: list[_Access], idents: set[str]) -> tuple[str, ...]:
    paths: list[str] = []
    for access in accesses:
        if access.field in CONTAINER_FIELDS and access.key is not None:
            key = access.key
            path = (
                f"lead.{access.field}.{key}"
                if re.fullmatch(r"[_a-zA-Z][_a-zA-Z0-9]*", key)
                else f'lead.{access.field}["{key}"]'
            )
        else:
            path = f"lead.{access.field}"
        if path not in paths:
            paths.append(path)
    for name in ("trigger", "trigger_detail"):
        if name in idents:
            paths.append(name)
    return tuple(paths)


ALWAYS = Condition(source="", program=None, plan=ContextPlan())


def compile_condition(source: str) -> Condition:
    """Parse, check and compile; raises ConditionError naming the problem."""
    source = source.strip()
    if not source:
        return ALWAYS
    if len(source) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"must be at most {MAX_CONDITION_LENGTH} characters")
    try:
        cel.compile(source)
    except Exception as exc:
        raise ConditionError(_parse_error(source, exc)) from None
    tokens = _tokens(source)
    errors: list[str] = []
    bound = _bound_names(tokens)
    idents = {
        t.text
        for i, t in enumerate(tokens)
        if t.kind == "ident" and not (i > 0 and tokens[i - 1].text == ".")
    }
    for name in sorted(_variables(source) - bound):
        if name not in VARIABLES:
            errors.append(f"undeclared reference to '{name}'")
    if "lead" in bound:
        errors.append("'lead' cannot be used as a comprehension variable")
    accesses, bare = _accesses(tokens, errors)
    _check_enum_literals(tokens, errors)
    if errors:
        raise ConditionError("; ".join(errors))
    plan = _plan(accesses, idents, bare)
    program = cel.compile(source if bare else _rewrite(tokens, accesses))
    guards, only_guards = _guards(tokens)
    condition = Condition(
        source=source,
        program=program,
        plan=plan,
        reads=_reads(accesses, idents),
        guards=guards,
        only_guards=only_guards,
    )
    _probe(condition)
    return condition


def _variables(source: str) -> set[str]:
    return set(cel.compile(source).variables())


def _parse_error(source: str, exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"ERROR: <input>:(\d+):(\d+): (.*?)(?:\n|$)", text)
    if m:
        return f"syntax error at line {m.group(1)} column {m.group(2)}: {m.group(3).strip()}"
    return text.split("\n")[0]


def probe_snapshots() -> tuple[LeadSnapshot, ...]:
    """Leads a new condition must evaluate to a bool on: one with nothing known, one with
    every fact set (traits empty: their keys are free-form)."""
    at = datetime(2025, 1, 1, tzinfo=UTC)
    full = LeadSnapshot(
        lead_id="probe",
        home_brand_id="probe",
        segment=Segment.ENTERPRISE,
        score=LeadScore(
            total=100.0,
            demographic=100.0,
            behavioural=100.0,
            firmographic=100.0,
            engagement=100.0,
            intent=100.0,
            model_version=1,
            scored_at=at,
        ),
        grade=Grade.A_PLUS,
        temperature=Temperature.HOT,
        stage=LifecycleStage.OPPORTUNITY,
        consents=LeadConsents(tracking=True, email=True, sms=True, portfolio_sharing=True),
        recent_event_counts=dict.fromkeys(EVENT_TYPES, 1),
        first_seen_at=at,
        last_activity_at=at,
        as_of=at,
    )
    return (LeadSnapshot(), full)


_PROBES = probe_snapshots()


def _probe(condition: Condition) -> None:
    for snapshot in _PROBES:
        for trigger in ("identified", "threshold_crossed"):
            ctx = cel_context(snapshot, trigger, "", condition.plan)
            try:
                result = condition.program.execute(ctx)
            except KeyError:
                continue  # a missing trait or custom count: "not matched" at run time
            except Exception as exc:
                raise ConditionError(_error_text(exc)) from None
            if not isinstance(result, bool):
                raise ConditionError(f"must evaluate to bool, not {_cel_type(result)}")
