"""A reason a value was refused, naming the field (mapped to INVALID_ARGUMENT or
FAILED_PRECONDITION details by the API layer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """`field` is a path as in the proto request, e.g. "model.grade_thresholds.a"."""

    field: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
