"""Errors that carry the field at fault and the values it may take.

Every input problem a user can cause becomes a `RidgeplanError`; the CLI prints it as one line and exits 2,
the app shows it next to the widget. Nothing else should escape to a user as a traceback.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np


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
    ok_number = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
                 and math.isfinite(value))
    if not ok_number:
        raise RidgeplanError(field, f"must be a finite number, got {value!r}")
    if integer and int(value) != value:
        raise RidgeplanError(field, f"must be a whole number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise RidgeplanError(field, f"must be {bound}, got {value!r}")


# Sane upper bounds on sizes a user passes (far above any real deployment; they keep arithmetic finite and
# exact in float64, and turn a mistyped 1e12 into an error instead of an answer).
MAX_TOKENS = 100_000_000  # tokens in one sequence (context, input or output length)
MAX_SEQUENCES = 10_000_000  # sequences in one batch or in flight
MAX_PARALLEL = 1_000_000  # GPUs in one parallel dimension (TP, PP, EP, DP): far beyond any cluster built


def require_sizes(field: str, value, *, allow_zero: bool = True, upper: float | None = None):
    """A scalar or array of sizes as a float array: every element a finite number >= 0 (> 0 unless allow_zero)
    and at most `upper`; otherwise a RidgeplanError naming the field."""
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise RidgeplanError(field, f"must be a number or an array of numbers, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise RidgeplanError(field, f"must be a number or an array of numbers, got {value!r}") from None
    if arr.dtype == bool or arr.size == 0:
        raise RidgeplanError(field, f"must be a number or a non-empty array of numbers, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise RidgeplanError(field, f"must be finite, got {_show(arr)}")
    low = float(arr.min())
    if low < 0 or (low == 0 and not allow_zero):
        raise RidgeplanError(field, f"must be {'>= 0' if allow_zero else '> 0'}, got {low:g}")
    if upper is not None and float(arr.max()) > upper:
        raise RidgeplanError(field, f"must be at most {upper:,.0f}, got {float(arr.max()):g}")
    return arr


def require_fraction(field: str, value, *, low: float = 0.0, high: float = 1.0, low_open: bool = False,
                     high_open: bool = False) -> float:
    """A finite number in the interval [low, high] (ends open where asked)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise RidgeplanError(field, f"must be a number in {interval}, got {value!r}")
    return float(value)


def _show(arr: np.ndarray) -> str:
    """The offending value (the first non-finite element of an array)."""
    return f"{arr.item()!r}" if arr.size == 1 else f"an array containing {arr[~np.isfinite(arr)][0]!r}"
