"""Issue 15's unfused KV store, by hand: attention calls whose value heads are narrower than their key heads pay
kv_store_unfused_s once per call (SGLang writes such K and V to its cache apart, without the fused store_cache
kernel); SGLang's head_dim 192 table rows are MiMo-V2's QK192/V128 layers; neutral in the hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.calibration.tables import with_v_head_dim
from model.hardware import load_device
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernels import predict_kernels

H100 = load_device("h100-sxm")


def _rows(kernel, **shape):
    return pd.DataFrame([dict(kernel=kernel, dtype="bf16", **shape)])


def test_the_term_is_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.kv_store_unfused_s == 0
    # a row that says its values are narrower costs nothing more without the term
    eff = efficiency_for(H100, calibration=False)
    row = _rows("decode_attention", batch=4, heads=64, kv_heads=4, head_dim=192, context=1024)
    assert predict_kernels(row.assign(v_head_dim=128.0), H100, eff)[0] == predict_kernels(row, H100, eff)[0]


def test_narrower_value_heads_pay_the_store_once_per_call_in_both_phases():
    eff = efficiency_for(H100, calibration=False)
    store = replace(eff, kv_store_unfused_s=8e-6)
    for kernel, shape in (("decode_attention", {"context": 2}), ("decode_attention", {"context": 8192}),
                          ("attention", {"seq_len": 2048})):
        row = _rows(kernel, batch=16, heads=64, kv_heads=4, head_dim=192, **shape)
        base = predict_kernels(row, H100, eff)[0]
        # values 128 wide under 192-wide keys: exactly 8 us more, whatever the call's size
        assert predict_kernels(row.assign(v_head_dim=128.0), H100, store)[0] == pytest.approx(base + 8e-6, rel=1e-12)
        # equal widths (or no width given: NaN) write through the fused kernel: nothing more
        assert predict_kernels(row.assign(v_head_dim=192.0), H100, store)[0] == base
        assert predict_kernels(row.assign(v_head_dim=np.nan), H100, store)[0] == base
        assert predict_kernels(row, H100, store)[0] == base
    # MLA rows (their own latent cache and kernels) never pay it
    mla = _rows("decode_attention", batch=8, heads=128, kv_heads=1, head_dim=544, context=64, kv_dim=576, mla=1,
                v_head_dim=512.0)
    assert predict_kernels(mla, H100, store)[0] == predict_kernels(mla, H100, eff)[0]


def test_sglang_head_dim_192_rows_carry_mimo_v2_value_heads():
    rows = pd.DataFrame({"family": ["attention_decode", "attention_prefill", "attention_decode", "mla_prefill",
                                    "gemm_bf16"],
                         "head_dim": [192.0, 192.0, 128.0, 192.0, np.nan]})
    out = with_v_head_dim(rows, "sglang")
    assert out["v_head_dim"].tolist()[:2] == [128.0, 128.0]  # MiMo-V2: 192-wide keys, 128-wide values
    assert out["v_head_dim"].iloc[2:].isna().all()  # other widths, MLA and GEMM rows: not stated
    for engine in ("vllm", "trtllm"):  # TensorRT-LLM's MHA runs V 192 wide; vLLM's tables omit the model
        assert "v_head_dim" not in with_v_head_dim(rows, engine)
