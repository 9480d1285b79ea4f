"""Unstructured sparsity (model.techniques.weight_sparsity) and memory-fit helpers (model.techniques.device_fit)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.techniques.device_fit import fewest_devices, min_devices_for_bytes, widest_fitting_format
from model.techniques.weight_sparsity import (
    memory_bound_speedup_limit, sparse_bytes_per_weight, sparse_weight_bytes, sparse_weights,
)


def test_sparse_bytes():
    # OPT-175B at 80% sparsity, 2 B value + 2 B index per non-zero: 175e9 x 0.2 x 4 = 140 GB
    assert float(sparse_weight_bytes(175e9, 0.8)) == pytest.approx(140e9)
    assert float(sparse_bytes_per_weight(0.75, 0.5, 0.5)) == pytest.approx(0.25)
    assert float(memory_bound_speedup_limit(2.0, 0.8)) == pytest.approx(2.5)
    with pytest.raises(RidgeplanError):
        sparse_bytes_per_weight(1.0)


def test_sparse_deployment_shrinks_weights_not_flops():
    d = deployment("llama-2-7b", "a100-sxm-80gb", weights="fp16")
    s = sparse_weights(d, 0.5)  # 0.5 x (2 + 2) = 2 B per weight: same bytes as dense fp16
    assert s.symbols()["b_w"] == pytest.approx(2.0)
    s8 = sparse_weights(d, 0.8)  # 0.8 B per weight
    a, b = d.step(1, 1, 0), s8.step(1, 1, 0)
    assert float(b.ops.flops.sum()) == pytest.approx(float(a.ops.flops.sum()))
    dense_rows = [i for i, op in enumerate(d.graph.ops) if op.weight_role == "dense"]
    ratio = b.ops.resident_bytes[dense_rows, 0].sum() / a.ops.resident_bytes[dense_rows, 0].sum()
    assert ratio == pytest.approx(0.4)


def test_fit_helpers():
    assert min_devices_for_bytes(350e9, 80e9) == 5
    assert min_devices_for_bytes(140e9, 80e9) == 2
    assert min_devices_for_bytes(80e9, 80e9) == 1
    fit = widest_fitting_format(lambda f: deployment("opt-175b", "a100-sxm-80gb", weights=f), ("fp16", "int4", "int3"))
    assert fit.choice == "int3" and fit.headroom_bytes > 0 and not fit.tried["int4"][0]
    two = fewest_devices(lambda n: deployment("codellama-34b", "a100-sxm-40gb", weights="fp16", tp=n), (1, 2, 3, 4))
    assert two.choice == 2 and 3 not in two.tried  # TP3 does not divide 64 heads: skipped
