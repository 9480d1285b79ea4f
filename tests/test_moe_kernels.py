"""Grouped MoE expert kernels: their compute and memory shares of the dense ceilings by hand, the MoE layer table
reader, the fitted MoE stage's synthetic recovery, and where the per-engine defaults apply."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.architecture.blocks import Mlp
from model.calibration.importer import fit_rows
from model.calibration.moe_rows import moe_class, moe_predictor, moe_table_rows, newest_per_shape, weight_read_s
from model.hardware.db import load_device
from model.operators.graph import moe_expert_operators
from model.precision import Precision
from model.roofline.efficiency import moe_kernel_class
from model.roofline.efficiency_sets import ARCH_DEFAULTS, MOE_ENGINE_DEFAULTS, MOE_NEUTRAL, efficiency_for
from model.roofline.evaluator import context_for, stack_contexts, take_context

B200 = load_device("b200")
NEUTRAL = replace(efficiency_for(B200, calibration=False),
                  **{f"moe_{k}_scale_{c}": 1.0 for k in ("gemm", "mem") for c in ("16", "8", "4", "wo")})


def _table(**cols) -> pd.DataFrame:
    base = dict(moe_dtype="fp8_block", num_tokens=4096, hidden_size=4096, inter_size=1536, topk=8, num_experts=128,
                moe_tp_size=1, moe_ep_size=1, distribution="balanced", latency=1.0, kernel_source="k")
    n = max(len(v) if isinstance(v, list) else 1 for v in cols.values()) if cols else 1
    return pd.DataFrame({k: cols.get(k, v) if isinstance(cols.get(k, v), list) else [cols.get(k, v)] * n
                         for k, v in base.items()})


def test_expert_kernel_classes():
    assert moe_kernel_class("fp8", False) == "8" and moe_kernel_class("fp4", False) == "4"
    assert moe_kernel_class("bf16", False) == moe_kernel_class("fp32", False) == "16"
    assert moe_kernel_class("bf16", True) == "wo"  # W4A16: dequantized inside the kernel
    assert moe_class("int4", "bf16") == moe_class("mxfp4", "bf16") == "wo"
    assert moe_class("fp8", "fp8") == "8" and moe_class("nvfp4", "fp4") == "4" and moe_class("bf16", "bf16") == "16"


def test_neutral_scales_leave_the_experts_at_the_dense_ceilings():
    ctx = context_for(B200, Precision(weights="fp8"), efficiency=NEUTRAL)
    assert ctx.gemm_max["expert"] == ctx.gemm_max["dense"] == NEUTRAL.gemm_max_8
    assert ctx.expert_mem_scale == 1.0
    for arch in ("ampere", "ada", "cdna3"):  # classes without MoE kernel tables stay neutral
        eff = ARCH_DEFAULTS[arch]
        assert all(getattr(eff, f"moe_{k}_scale_{c}") == 1.0 for k in ("gemm", "mem") for c in ("16", "8", "4", "wo"))


def test_one_moe_layer_with_grouped_kernel_shares_by_hand():
    # 4096 tokens, hidden 4096, 128 experts of 1536, top-8, FP8 on B200: every expert touched (p = 1 - (1 - 8/128)^4096
    # = 1), 4096 x 8 / 128 = 256 tokens per expert. FLOPs = 2 x 32,768 pairs x 3 x 4096 x 1536 = 1.2369e12.
    # Bytes: weights 128 x 3 x 4096 x 1536 x 1 B = 2.4159e9, activations 32,768 x (4096 + 2 x 1536 x 2 + 1536 + 4096)
    # x 2 B = 1.0401e9. eta_c = 0.76 x 0.25 x 3072/(3072 + 128) (n = 2 x 1536, gemm_n_half 128); eta_m = 0.74 x 0.9
    # x bytes/(bytes + 0.5e6). time = (t_c^2 + t_m^2)^0.5 + 5 kernels x 3 us (no quant kernels: q_e = 0).
    eff = replace(NEUTRAL, moe_gemm_scale_8=0.25, moe_mem_scale_8=0.9)
    rows = moe_table_rows(_table(), expert_quant=())
    got = moe_predictor(rows, B200)(eff)[0]
    flops = 2 * 32768 * 3 * 4096 * 1536
    nbytes = 128 * 3 * 4096 * 1536 + 32768 * (4096 + 4 * 1536 + 1536 + 4096) * 2
    t_c = flops / (B200.peak("fp8") * 0.76 * 0.25 * 3072 / 3200)
    t_m = nbytes / (B200.memory.bandwidth_bytes_per_s * 0.74 * 0.9 * nbytes / (nbytes + 0.5e6))
    assert got == pytest.approx((t_c**2 + t_m**2) ** 0.5 + 5 * 3e-6, rel=1e-9)
    # neutral: the same layer at the dense ceilings is faster
    assert moe_predictor(rows, B200)(NEUTRAL)[0] < 0.5 * got
    # the weight-read lower bound: the touched experts' weights at the nominal bandwidth
    assert weight_read_s(rows, B200)[0] == pytest.approx(128 * 3 * 4096 * 1536 / B200.memory.bandwidth_bytes_per_s)


def test_the_layer_operators_are_the_graphs_experts_without_router_or_shared_experts():
    mlp = Mlp(kind="moe", intermediate_size=0, num_experts=8, top_k=2, expert_intermediate_size=64,
              shared_intermediate_size=64)
    assert [op.name for op in moe_expert_operators(mlp, 32)] == ["experts_quant", "experts"]


def test_table_reader_keeps_balanced_single_rank_gated_fastest_rows():
    t = _table(moe_dtype=["fp8_block", "fp8_block", "fp8_block", "fp8_block", "nvfp4", "int4_wo", "w4a8_mxfp4_mxfp8",
                          "bfloat16"],
               moe_ep_size=[1, 1, 8, 1, 1, 1, 1, 1], distribution=["balanced", "balanced", "balanced",
                                                                   "power_law_1.2", "balanced", "balanced",
                                                                   "balanced", "balanced"],
               latency=[2.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
               kernel_source=["a", "b", "a", "a", "c", "d", "e", "moe_torch_flow_nongated"])
    rows = moe_table_rows(t, expert_quant=("fp8",))
    assert sorted(rows["family"]) == ["moe_4", "moe_8", "moe_wo"]  # EP, power-law, w4a8 and non-gated rows left out
    fp8 = rows[rows["family"] == "moe_8"].iloc[0]
    assert fp8["measured_s"] == pytest.approx(1.5e-3) and fp8["q_e"] == 1.0  # the fastest kernel; vLLM's FP8 quant
    assert fp8["size"] == pytest.approx(2 * 4096 * 8 * 3 * 4096 * 1536)
    assert rows[rows["family"] == "moe_4"].iloc[0]["q_e"] == 0.0


def test_newest_version_per_shape():
    old = _table(num_tokens=[1, 2], latency=[1.0, 1.0])
    new = _table(num_tokens=[2], latency=[3.0])
    got = newest_per_shape([("1.3.0rc20", old), ("1.3.0rc23", new)]).sort_values("num_tokens")
    assert list(got["latency"]) == [1.0, 3.0]


def test_an_older_version_stands_for_the_engine_only_where_it_timed_the_kernel_the_newest_runs():
    # vLLM on B200: 0.19.0 timed INT4 experts with the old Marlin MoE kernel on two shapes, 0.24.0 with the
    # compressed-tensors WNA16 Marlin experts on one of them; 0.19.0's FP8 shape ran the Triton kernel that 0.24.0
    # also runs for FP8 (kept), and a row naming no kernel is kept (nothing to compare)
    old = _table(moe_dtype=["int4_wo", "int4_wo", "fp8_block", "int4_wo"], hidden_size=[7168, 2048, 4096, 1024],
                 kernel_source=["vllm_marlin_int4_moe", "vllm_marlin_int4_moe", "triton", None],
                 latency=[0.2, 0.09, 1.0, 1.0])
    new = _table(moe_dtype=["int4_wo", "fp8_block"], hidden_size=[7168, 5120],
                 kernel_source=["wna16_marlin_experts", "triton"], latency=[0.09, 1.0])
    got = newest_per_shape([("0.19.0", old), ("0.24.0", new)])
    assert sorted(zip(got["moe_dtype"], got["hidden_size"], got["latency"])) == [
        ("fp8_block", 4096, 1.0), ("fp8_block", 5120, 1.0), ("int4_wo", 1024, 1.0), ("int4_wo", 7168, 0.09)]
    # non-gated rows of the newest version do not define its gated kernels (TensorRT-LLM 1.3.0rc23 on H100)
    rc20 = _table(moe_dtype=["bfloat16"], kernel_source=["moe_torch_flow_cutlass"])
    rc23 = _table(moe_dtype=["bfloat16"], hidden_size=[5120], kernel_source=["moe_torch_flow_nongated"])
    got = newest_per_shape([("1.3.0rc20", rc20), ("1.3.0rc23", rc23)])
    assert sorted(got["kernel_source"]) == ["moe_torch_flow_cutlass", "moe_torch_flow_nongated"]


def test_moe_stage_recovers_known_kernel_shares_from_synthetic_layers():
    shapes = [(4096, 1536, 8, 128), (7168, 2048, 8, 256), (2048, 768, 8, 128), (3072, 1536, 8, 256)]
    t = pd.concat([_table(moe_dtype=dt, num_tokens=n, hidden_size=h, inter_size=i, topk=k, num_experts=e,
                          moe_tp_size=tp)
                   for dt in ("fp8_block", "int4_wo") for n in (1, 4, 16, 64, 256, 1024, 4096, 16384)
                   for h, i, k, e in shapes for tp in (1, 4)], ignore_index=True)
    rows = moe_table_rows(t, expert_quant=("fp8",))
    true = replace(NEUTRAL, moe_gemm_scale_8=0.3, moe_mem_scale_8=0.85, moe_gemm_scale_wo=0.2, moe_mem_scale_wo=0.45)
    rng = np.random.default_rng(0)
    rows = rows.assign(measured_s=moe_predictor(rows, B200)(true) * np.exp(rng.normal(0, 0.01, len(rows))))
    result = fit_rows(rows, B200, start=NEUTRAL)
    for name in ("moe_gemm_scale_8", "moe_mem_scale_8", "moe_gemm_scale_wo", "moe_mem_scale_wo"):
        assert result.params[name] == pytest.approx(getattr(true, name), rel=0.05), name
    held = result.rows[result.rows["split"] != "fit"]
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03


def test_engine_defaults_apply_when_an_engine_is_named_and_are_carried_through_stacking():
    for engine, values in MOE_ENGINE_DEFAULTS["blackwell"].items():
        eff = efficiency_for(B200, engine=engine)
        assert all(getattr(eff, k) == v for k, v in values.items()) and f"{engine} MoE kernels" in eff.source
        # a class the engine does not list keeps the dense ceilings, not the engine-less class mean
        assert all(getattr(eff, k) == 1.0 for k in MOE_NEUTRAL if k not in values)
    plain = efficiency_for(B200)  # no engine: the class mean of the three
    assert plain.moe_gemm_scale_8 == pytest.approx(np.mean([v["moe_gemm_scale_8"]
                                                            for v in MOE_ENGINE_DEFAULTS["blackwell"].values()]),
                                                   abs=0.005)
    contexts = [context_for(B200, Precision(weights="fp8"), efficiency=efficiency_for(B200, engine="vllm")),
                context_for(B200, Precision(weights="bf16"), efficiency=efficiency_for(B200, engine="vllm"))]
    taken = take_context(stack_contexts(contexts), np.array([0, 1, 0]))
    vllm = MOE_ENGINE_DEFAULTS["blackwell"]["vllm"]
    assert list(taken.expert_mem_scale) == [vllm["moe_mem_scale_8"], vllm["moe_mem_scale_16"], vllm["moe_mem_scale_8"]]
    assert taken.gemm_max["expert"][0] == pytest.approx(0.76 * vllm["moe_gemm_scale_8"])
