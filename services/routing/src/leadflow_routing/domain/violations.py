"""A reason a value was refused, naming the field (mapped to INVALID_ARGUMENT details by the
API layer, or printed by `leadflow routing apply`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """`field` is a path as in the proto request ("config.rules[3].condition") or, for YAML
    input, the YAML path ("rules[3].condition")."""

    field: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
