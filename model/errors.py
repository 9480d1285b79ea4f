"""Errors that carry the field at fault and the values it may take.

Every input problem a user can cause becomes a `RidgeplanError`; the CLI prints it as one line and exits 2,
the app shows it next to the widget. Nothing else should escape to a user as a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class RidgeplanError(ValueError):
    """A user-facing error: `field` names the input at fault, `allowed` what it may be."""

    def __init__(self, field: str, message: str, allowed: Iterable[object] | str | None = None, hint: str = ""):
        self.field = field
        self.message = message
        if allowed is None or isinstance(allowed, str):
            self.allowed = allowed
        else:
            self.allowed = ", ".join(str(a) for a in allowed)
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.field}: {self.message}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        if self.hint:
            text += f". {self.hint}"
        return text


class UnknownNameError(RidgeplanError):
    """An id that is not in a catalogue (GPU, model, link, scenario)."""



class DoesNotFitError(RidgeplanError):
    """A configuration asked for a latency (simulation, a disaggregated instance) that does not fit in memory."""


def require_positive(field: str, value: float, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Reject negative, zero (unless allowed), non-finite or non-integer sizes with a clear message."""
    import math

    ok_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok_number:
        raise RidgeplanError(field, f"must be a finite number, got {value!r}")
    if integer and int(value) != value:
        raise RidgeplanError(field, f"must be a whole number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise RidgeplanError(field, f"must be {bound}, got {value!r}")
