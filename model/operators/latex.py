"""Operator formulas as LaTeX: the symbolic form, and the same with a scenario's numbers substituted."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.operators.graph import build_graph
from model.operators.symbols import DEFAULTS, DESCRIPTIONS, SCENARIO_SYMBOLS

FORMULA_QUANTITIES = ("flops", "weight_bytes", "act_bytes", "kv_read_bytes", "kv_write_bytes", "comm_bytes",
                      "cache_bytes", "params")


def operator_names(arch: Architecture) -> list[str]:
    seen: list[str] = []
    for op in build_graph(arch):
        if op.name not in seen:
            seen.append(op.name)
    return seen


def operator_expression(arch: Architecture, name: str, quantity: str = "flops", group: int | None = None) -> sp.Expr:
    if quantity not in FORMULA_QUANTITIES:
        raise RidgeplanError("quantity", f"unknown quantity {quantity!r}", FORMULA_QUANTITIES)
    matches = [op for op in build_graph(arch) if op.name == name and (group is None or op.group == group)]
    if not matches:
        raise RidgeplanError("operator", f"{arch.name} has no operator {name!r}", operator_names(arch))
    return sp.sympify(getattr(matches[0], quantity))


def formula_latex(arch: Architecture, name: str, quantity: str = "flops", *, group: int | None = None,
                  values: Mapping[str, float] | None = None) -> str:
    """LaTeX of an operator's formula (per layer, per rank). With `values`, also the substituted number."""
    expr = operator_expression(arch, name, quantity, group)
    text = sp.latex(sp.simplify(expr))
    if values:
        subs = {s: values[s.name] for s in SCENARIO_SYMBOLS if s.name in values}
        number = float(expr.subs(subs).evalf()) if expr.free_symbols <= set(subs) else None
        if number is not None:
            text += r" = " + _latex_number(number)
    return text


def formula_value(arch: Architecture, name: str, quantity: str = "flops", values: Mapping[str, float] | None = None,
                  *, group: int | None = None) -> float:
    """The number an operator's formula gives (per layer, per rank) for scenario `values` (symbol name -> value);
    symbols not given take their defaults (`symbols.DEFAULTS`: one decode token, single GPU, 16-bit)."""
    expr = operator_expression(arch, name, quantity, group)
    given = {**DEFAULTS, **(values or {})}
    return float(expr.subs({s: given[s.name] for s in SCENARIO_SYMBOLS}).evalf())


def _latex_number(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        mant, exp = f"{x:.4e}".split("e")
        return rf"{float(mant):.4g} \times 10^{{{int(exp)}}}"
    return f"{x:.6g}"


def symbol_legend() -> dict[str, str]:
    return dict(DESCRIPTIONS)
