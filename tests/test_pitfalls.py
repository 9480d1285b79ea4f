"""One guard per pitfall in ../shared/design/PITFALLS.md (mistakes seen in other planners)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.architecture import load_architecture
from model.errors import UnknownNameError
from model.hardware import load_device
from model.operators.compiled import compile_graph
from model.operators.memory import kv_bytes_per_token
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.serving.static import static_batch


def test_both_vocab_matrices_counted_unless_tied():
    # Llama-2-7B: 6.738e9 params x 2 B = 12.55 GiB, not 12.31 GiB (one vocab matrix dropped)
    d = deployment("llama-2-7b", "h100-sxm")
    w = float(d.step(1, 1, 0).memory.weights_bytes[0])
    assert w / 2**30 == pytest.approx(12.55, abs=0.01)


def test_mlp_flops_from_intermediate_size_not_16h2():
    # Llama-3.1-8B: gated MLP = 3 matrices of 4096 x 14336 -> 2 x 3 x 4096 x 14336 FLOPs per token per layer,
    # not 16 x 4096^2 (which assumes d_ff = 4d, plain MLP)
    ops = compile_graph(load_architecture("llama-3.1-8b")).evaluate(B=1, T=1, C=0)
    names = [op.name for op in ops.ops]
    mlp = ops.flops[names.index("gate_up_proj"), 0] + ops.flops[names.index("down_proj"), 0]
    assert mlp == 2 * 3 * 4096 * 14336 != 16 * 4096**2


def test_moe_decode_streams_all_touched_experts():
    # Mixtral-8x7B on 2 x H100, batch 32: nearly every expert is touched, so a decode step cannot be faster
    # than streaming each GPU's half of the ~93 GB of weights at 3.35 TB/s (about 13.9 ms).
    d = deployment("mixtral-8x7b", "h100-sxm", tp=2)
    step = d.step(32, 1, 512)
    weights_per_gpu = float(step.memory.weights_bytes[0])
    assert weights_per_gpu == pytest.approx(46.7e9 * 2 / 2, rel=0.02)
    assert step.time_s[0] > weights_per_gpu / 3.35e12


def test_bandwidth_stored_in_bytes_per_second_not_gib():
    # 3.35 TB/s is 3.35e12 B/s; reading it as GiB/s would be 3.597e12 (7.4% optimistic)
    assert load_device("h100-sxm").memory.bandwidth_bytes_per_s == 3.35e12


def test_no_hidden_beam_search_multiplier():
    # batch 1 decode: the LM head produces logits for exactly one position, and GEMM FLOPs are 2 x params
    ops = compile_graph(load_architecture("llama-3.1-8b")).evaluate(B=1, T=1, C=0)
    gemm = sum(ops.counts[i] * ops.flops[i, 0] for i, op in enumerate(ops.ops) if op.kind == "gemm")
    non_embedding = 8_030_261_248 - 128_256 * 4096  # the input embedding is a gather, not a GEMM
    assert gemm == pytest.approx(2 * non_embedding, rel=1e-3)


def test_weight_activation_and_kv_precision_are_separate_knobs():
    a = deployment("llama-3.1-70b", "h100-sxm", tp=2, weights="fp8")
    b = deployment("llama-3.1-70b", "h100-sxm", tp=2, weights="fp8", kv="fp8")
    sa, sb = a.step(8, 1, 4000), b.step(8, 1, 4000)
    assert sa.memory.weights_bytes[0] == sb.memory.weights_bytes[0]
    assert sb.memory.kv_cache_bytes[0] == pytest.approx(sa.memory.kv_cache_bytes[0] / 2)
    assert kv_bytes_per_token(load_architecture("llama-3.1-70b"), b_kv=1.0) == 327_680 / 2


def test_fp8_prefill_is_not_twice_as_fast():
    # FP8 peak is 2x BF16 on H100, but measured end-to-end prefill gains are about 1.35x
    bf16 = static_batch(deployment("llama-3.1-8b", "h100-sxm", weights="bf16"), 1, 4096, 2)
    fp8 = static_batch(deployment("llama-3.1-8b", "h100-sxm", weights="fp8"), 1, 4096, 2)
    speedup = bf16.ttft_s / fp8.ttft_s
    assert 1.1 < speedup < 1.7


def test_pipeline_parallel_splits_weights():
    # TP2 x PP2 for Llama-3.1-70B: 141 GB of bf16 weights over 4 GPUs is ~35 GB each (plus the larger of the
    # embedding / LM-head stages), not 64.7 GiB per GPU
    d = deployment("llama-3.1-70b", "h100-sxm", tp=2, pp=2)
    w = float(d.step(1, 1, 0).memory.weights_bytes[0])
    assert 70.55e9 * 2 / 4 < w < 70.55e9 * 2 / 4 * 1.05


def test_efficiency_defaults_are_below_100_percent():
    for eff in ARCH_DEFAULTS.values():
        for name in ("gemm_max_16", "gemm_max_8", "attention_max", "mem_max", "vector_max"):
            assert 0 < getattr(eff, name) < 1, (eff.source, name)
        assert eff.kernel_floor_s > 0


def test_out_of_memory_is_not_a_latency():
    est = static_batch(deployment("llama-3.1-70b", "h100-sxm"), 1, 1000, 100)
    assert not est.fits and est.ttft_s is None and est.tpot_s is None
    assert est.memory.headroom_bytes < 0


def test_unknown_gpu_is_an_error_and_unknown_arch_is_labelled():
    with pytest.raises(UnknownNameError):
        load_device("a40x")
    dev = load_device({"id": "odd", "name": "Odd", "vendor": "x", "kind": "gpu", "arch": "mystery",
                       "peak_flop_per_s": {"bf16": 1e14}, "memory": {"capacity_bytes": 1e10, "bandwidth_bytes_per_s": 1e12}})
    assert "generic defaults" in efficiency_for(dev).source


def test_head_dim_from_config_not_hidden_over_heads():
    a = load_architecture("qwen3-32b")
    assert a.groups[0].attention.head_dim == 128  # hidden/heads would give 80


def test_gqa_kv_not_mha():
    # Llama-3.1-70B has 8 KV heads for 64 query heads: 327,680 B/token, not 8x that
    assert kv_bytes_per_token(load_architecture("llama-3.1-70b")) == 327_680


def test_engine_assumptions_are_stated():
    notes = " ".join(deployment("llama-3.1-8b", "h100-sxm").assumptions())
    assert "CUDA graphs" in notes and "paged KV" in notes and "engine overhead" in notes
