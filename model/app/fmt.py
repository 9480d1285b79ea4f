"""Number formatting for display (unit conversion for humans; no physics)."""

from __future__ import annotations

import math

DASH = "–"


def _bad(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def seconds(x_s: float | None) -> str:
    """0.0123 -> '12.3 ms'; inf -> '∞'."""
    if _bad(x_s):
        return DASH
    if math.isinf(x_s):
        return "∞"
    if x_s >= 1:
        return f"{x_s:.2f} s"
    if x_s >= 1e-3:
        return f"{x_s * 1e3:.3g} ms"
    return f"{x_s * 1e6:.3g} µs"


def rate(x_per_s: float | None, unit: str = "tok/s") -> str:
    if _bad(x_per_s):
        return DASH
    text = f"{x_per_s:,.0f}" if x_per_s >= 100 else f"{x_per_s:.3g}"
    return f"{text} {unit}".strip()


def usd(x: float | None, suffix: str = "") -> str:
    if _bad(x):
        return DASH
    return f"${x:,.2f}{suffix}" if x >= 0.1 else f"${x:.3g}{suffix}"


def gigabytes(x_bytes: float | None) -> str:
    if _bad(x_bytes):
        return DASH
    return f"{x_bytes / 1e9:,.1f} GB"


def si(x: float | None, unit: str = "") -> str:
    """1.9789e15 -> '1.98 P' + unit."""
    if _bad(x):
        return DASH
    if x == 0:
        return f"0 {unit}".strip()
    prefixes = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
    for scale, p in prefixes:
        if abs(x) >= scale:
            return f"{x / scale:.3g} {p}{unit}"
    return f"{x:.3g} {unit}".strip()


def count(x: float | None) -> str:
    if _bad(x):
        return DASH
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.3g}"
