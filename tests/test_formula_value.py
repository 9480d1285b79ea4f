"""formula_value: the number behind a rendered formula, tied to the breakdown table."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.operators.latex import formula_latex, formula_value
from model.serving.breakdown import op_table


def test_attention_flops_hand_formula_and_breakdown():
    d = deployment("llama-3.1-8b", "h100-sxm")
    values = {**d.symbols(), "B": 16, "T": 1, "C": 2048}
    # causal decode: 2 (QK^T) + 2 (PV) FLOPs x 32 heads x 128 dims = 8192 B T (2C - T + 2T + 1) / tp
    expected = 8192 * 16 * 1 * (2 * 2048 + 2)
    assert formula_value(d.arch, "attention", "flops", values) == pytest.approx(expected)
    row = op_table(d.step(16, 1, 2048)).set_index("operator").loc["attention"]
    assert row["flops"] == pytest.approx(expected * row["layers"])
    assert formula_latex(d.arch, "attention", "flops", values=values).endswith(r"\times 10^{8}")


def test_defaults_fill_missing_symbols_and_bad_names_are_reported():
    d = deployment("llama-3.1-8b", "h100-sxm")
    # one decode token of one sequence at empty context, 16-bit weights: qkv_proj reads its (4096 x 6144) weights
    assert formula_value(d.arch, "qkv_proj", "weight_bytes") == pytest.approx(4096 * 6144 * 2)
    with pytest.raises(RidgeplanError) as err:
        formula_value(d.arch, "no_such_op")
    assert err.value.field == "operator"
