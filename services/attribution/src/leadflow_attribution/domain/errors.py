"""Bad input, named by field, so the API layer can answer INVALID_ARGUMENT without guessing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One wrong field: `field` is the dotted path a caller knows (e.g. "value.currency_code")."""

    field: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason} ({self.code})"


class InvalidInput(ValueError):
    """Raised by domain functions whose input breaks a documented rule."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        if not violations:
            raise ValueError("InvalidInput needs at least one violation")
        self.violations = tuple(violations)
        super().__init__("; ".join(str(v) for v in self.violations))

    @classmethod
    def of(cls, field: str, code: str, reason: str) -> InvalidInput:
        return cls((Violation(field, code, reason),))
