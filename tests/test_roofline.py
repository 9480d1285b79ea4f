"""The roofline evaluator, efficiency model and collectives: hand derivations and invariants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.api import deployment
from model.architecture import load_architecture
from model.hardware import load_device
from model.operators.compiled import compile_graph
from model.roofline.collectives import Tier, collective_time, dominant_term
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.evaluator import BOUNDS, context_for, evaluate

H100 = load_device("h100-sxm")


def _ideal(eff):
    """Efficiency with every derate removed: the pure roofline."""
    return replace(eff, gemm_max_16=1.0, gemm_max_8=1.0, gemm_m_half=0.0, gemm_n_half=0.0, attention_max=1.0,
                   attention_q_half=0.0, mem_max=1.0, mem_bytes_half=0.0, vector_max=1.0, kernel_floor_s=0.0,
                   collective_base_s=0.0, attention_floor_s=0.0, gemm_tile_m=1.0, roofline_p=float("inf"))


def test_pure_roofline_decode_is_weights_over_bandwidth():
    # Llama-3.1-8B, batch 1, 1 token, no context: time = bytes / 3.35e12 exactly when everything is ideal
    ops = compile_graph(load_architecture("llama-3.1-8b")).evaluate(B=1, T=1, C=0)
    ctx = context_for(H100, efficiency=_ideal(efficiency_for(H100)))
    t = evaluate(ops, ctx)
    memory_only = float(ops.counts @ ops.bytes[:, 0]) / 3.35e12
    assert t.step_time_s()[0] == pytest.approx(memory_only, rel=1e-9)
    assert {BOUNDS[b] for b in t.bound[:, 0]} <= {"memory", "compute"}


def test_efficiency_makes_it_slower_than_the_pure_roofline():
    ops = compile_graph(load_architecture("llama-3.1-8b")).evaluate(B=np.array([1, 64, 1]), T=np.array([1, 1, 2048]), C=512)
    real = evaluate(ops, context_for(H100)).step_time_s()
    ideal = evaluate(ops, context_for(H100, efficiency=_ideal(efficiency_for(H100)))).step_time_s()
    assert np.all(real > ideal)
    assert np.all(real / ideal < 3.5)  # a pure roofline is 1.5-3x optimistic, not 10x


def test_large_prefill_is_compute_bound_and_decode_memory_bound():
    g = compile_graph(load_architecture("llama-3.1-8b"))
    ctx = context_for(H100)
    prefill = evaluate(g.evaluate(B=1, T=4096, C=0), ctx)
    decode = evaluate(g.evaluate(B=1, T=1, C=4096), ctx)
    i = [op.name for op in prefill.ops.ops].index("gate_up_proj")
    assert BOUNDS[prefill.bound[i, 0]] == "compute"
    assert BOUNDS[decode.bound[i, 0]] == "memory"


def test_gemm_efficiency_rises_with_tokens_and_one_token_pays_a_tile():
    from model.roofline.efficiency_forms import gemm_eta

    eff = ARCH_DEFAULTS["hopper"]
    m = np.array([1, 4, 16, 128, 1024, 8192.0])
    eta = gemm_eta(m, 8192.0, eff.gemm_max_16, eff)
    assert np.all(np.diff(eta) >= 0) and eta[-1] <= eff.gemm_max_16
    # a one-token GEMM fills 1 of the 16 rows of an m16n8k16 tile
    assert eta[0] == pytest.approx(eta[2] / 16)


def test_soft_roofline_corner():
    from model.roofline.efficiency_forms import combine_roofline

    # p = 2: equal compute and memory time take sqrt(2) x as long; a clearly bound kernel barely notices
    assert float(combine_roofline(1.0, 1.0, 2.0)) == pytest.approx(2**0.5)
    assert float(combine_roofline(1.0, 0.1, 2.0)) == pytest.approx((1 + 0.01) ** 0.5)
    assert float(combine_roofline(3.0, 1.0, float("inf"))) == 3.0


def test_weight_only_int4_wins_at_small_batch_fp8_at_large_seed_c04_direction():
    from model.api import deployment

    tput = {w: [b / float(deployment("llama-3.1-70b", "h100-sxm", tp=2, weights=w).step(b, 1, 1000).time_s[0])
                for b in (1, 512)] for w in ("int4", "fp8")}
    assert tput["int4"][0] > tput["fp8"][0]  # memory-bound: fewer bytes win
    assert tput["fp8"][1] > tput["int4"][1]  # compute-bound: the FP8 tensor-core path wins


def test_calibration_file_overrides_defaults(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text("[efficiency]\ngemm_max_16 = 0.5\n")
    eff = efficiency_for(H100, path)
    assert eff.gemm_max_16 == 0.5 and "cal.toml" in eff.source
    bad = tmp_path / "bad.toml"
    bad.write_text("[efficiency]\ngemm_max_16 = 1.5\n")
    with pytest.raises(Exception) as err:
        efficiency_for(H100, bad)
    assert "gemm_max_16" in str(err.value)


# --- collectives: hand derivations ---------------------------------------------------------------------

def test_ring_all_reduce_hand_formula():
    # N = 8, M = 64 MB, alpha = 1 us, beta = 100 GB/s: 2 x 7 x 1 us + 2 x 7/8 x 64e6 / 100e9 = 14 us + 1,120 us
    t = collective_time("all_reduce", 64e6, 8, intra=Tier(100e9, 1e-6), algorithm="ring")
    assert float(t) == pytest.approx(14e-6 + 1.12e-3)


def test_all_gather_and_all_to_all_hand_formula():
    # (N-1) alpha + (N-1)/N M / beta with N = 4, M = 8 MB, alpha = 2 us, beta = 50 GB/s: 6 us + 120 us
    for kind in ("all_gather", "reduce_scatter", "all_to_all"):
        assert float(collective_time(kind, 8e6, 4, intra=Tier(50e9, 2e-6))) == pytest.approx(6e-6 + 120e-6)


def test_star_all_reduce_hand_formula():
    # 2 alpha + (N-1) M / beta_hub: N = 4, alpha = 5 ms (Wi-Fi), M = 16 KB, beta = 100 MB/s: 10 ms + 0.48 ms
    t = collective_time("all_reduce", 16e3, 4, intra=Tier(100e6, 5e-3), algorithm="star")
    assert float(t) == pytest.approx(10e-3 + 3 * 16e3 / 100e6)


def test_in_switch_all_reduce_hand_formula():
    # NVLS: alpha_sw + (N+1)/N M / beta_sw. N = 8, M = 64 MB, alpha_sw = 20 us, beta_sw = 300 GB/s:
    # 20 us + 9/8 x 64e6 / 300e9 = 20 us + 240 us = 260 us; a ring at 360 GB/s, 0.6 us per step:
    # 14 x 0.6 us + 2 x 7/8 x 64e6 / 360e9 = 8.4 us + 311.1 us, so auto picks the switch
    tier = Tier(360e9, 0.6e-6, 300e9, 20e-6)
    assert float(collective_time("all_reduce", 64e6, 8, intra=tier, algorithm="switch")) == pytest.approx(260e-6)
    assert float(collective_time("all_reduce", 64e6, 8, intra=tier)) == pytest.approx(260e-6)
    # a small message stays on the ring/one-shot (20 us start-up), and a tier without switch reduction never uses it
    assert float(collective_time("all_reduce", 8e3, 8, intra=tier)) < 20e-6
    plain = Tier(360e9, 0.6e-6)
    assert float(collective_time("all_reduce", 64e6, 8, intra=plain)) == pytest.approx(8.4e-6 + 1.75 * 64e6 / 360e9)
    assert np.isinf(float(collective_time("all_reduce", 64e6, 8, intra=plain, algorithm="switch")))


def test_collective_floor_replaces_the_kernel_floor_only_when_set():
    eff = efficiency_for(H100, calibration=False)
    assert eff.nvls_bus_efficiency == 0 and eff.collective_floor_s == 0  # neutral in the hand-set classes
    assert float(eff.collective_floor()) == eff.kernel_floor_s
    assert float(replace(eff, collective_floor_s=1.5e-6).collective_floor()) == 1.5e-6


def test_small_messages_latency_bound_large_bandwidth_bound():
    tier = Tier(360e9, 0.6e-6)
    assert dominant_term("all_reduce", 8e3, 8, tier) == "latency"
    assert dominant_term("all_reduce", 256e6, 8, tier) == "bandwidth"


def test_auto_picks_the_fastest_algorithm():
    tier = Tier(100e9, 5e-6)
    for m in (1e3, 1e6, 1e9):
        auto = float(collective_time("all_reduce", m, 8, intra=tier))
        each = [float(collective_time("all_reduce", m, 8, intra=tier, algorithm=a)) for a in ("ring", "tree", "one_shot")]
        assert auto == pytest.approx(min(each))


def test_hierarchical_all_reduce_across_nodes_is_slower_than_inside():
    intra, inter = Tier(360e9, 0.6e-6), Tier(46e9, 5e-6)
    inside = float(collective_time("all_reduce", 64e6, 8, intra=intra, inter=inter, ranks_per_node=8))
    across = float(collective_time("all_reduce", 64e6, 16, intra=intra, inter=inter, ranks_per_node=8))
    assert across > inside


def test_single_rank_needs_no_communication():
    assert float(collective_time("all_reduce", 1e9, 1, intra=Tier(1e9, 1e-3))) == 0.0


# --- invariants (hypothesis) ----------------------------------------------------------------------------

@given(batch=st.integers(1, 256), tokens=st.sampled_from([1, 16, 512, 2048]), context=st.integers(0, 32_000),
       factor=st.floats(1.01, 4.0))
def test_more_bandwidth_is_never_slower(batch, tokens, context, factor):
    ops = compile_graph(load_architecture("llama-3.1-8b")).evaluate(B=batch, T=tokens, C=context)
    base = context_for(H100)
    faster = replace(base, mem_bandwidth_bytes_per_s=base.mem_bandwidth_bytes_per_s * factor)
    assert evaluate(ops, faster).step_time_s()[0] <= evaluate(ops, base).step_time_s()[0]


@given(batch=st.integers(1, 256), tokens=st.sampled_from([1, 64, 2048]), factor=st.floats(1.01, 4.0))
def test_more_flops_is_never_slower(batch, tokens, factor):
    ops = compile_graph(load_architecture("mixtral-8x7b")).evaluate(B=batch, T=tokens, C=256)
    base = context_for(H100)
    faster = replace(base, peak_flop_per_s={k: v * factor for k, v in base.peak_flop_per_s.items()})
    assert evaluate(ops, faster).step_time_s()[0] <= evaluate(ops, base).step_time_s()[0]


@given(batch=st.integers(1, 512), context=st.integers(0, 8000))
def test_decode_throughput_never_falls_with_batch(batch, context):
    d = deployment("llama-3.1-8b", "h100-sxm")
    t = d.step(np.array([batch, batch + 1]), 1, context).time_s
    assert (batch + 1) / t[1] >= batch / t[0] * (1 - 1e-9)


@given(batch=st.integers(1, 64), context=st.integers(1, 20_000))
def test_step_time_never_falls_with_context(batch, context):
    d = deployment("llama-3.1-8b", "h100-sxm")
    t = d.step(batch, 1, np.array([context, context + 100])).time_s
    assert t[1] >= t[0]


def test_experts_in_their_own_format_run_their_own_gemm_path():
    """DeepSeek-V3.1-NVFP4 keeps its MLA input projections in bf16 (hf_quant_config exclude list) and its experts,
    o_proj, shared experts and dense MLPs in NVFP4: those run W4A4 on Blackwell's FP4 tensor cores, the
    projections on the bf16 path (role "unquantized"); on Hopper, without FP4 tensor cores, W4A16 weight-only."""
    from model.serving.deployment import deployment

    b200 = deployment("deepseek-v3.1-nvfp4", "b200", tp=8)
    assert b200.precision.unquantized == ("attention",)
    assert (b200.resolved.dense_dtype, b200.resolved.expert_dtype) == ("fp4", "fp4")
    assert not b200.context.weight_only["expert"]
    assert any("W4A4" in n for n in b200.resolved.assumptions)
    roles = {op.name: op.weight_role for op in b200.graph.ops}
    assert (roles["q_a_proj"], roles["kv_b_proj"], roles["o_proj"], roles["experts"]) == (
        "unquantized", "unquantized", "dense", "expert")
    h200 = deployment("deepseek-v3.1-nvfp4", "h200", tp=8)
    assert h200.resolved.expert_dtype == "bf16" and h200.context.weight_only["expert"]


def test_vllm_nvfp4_step_pays_one_activation_quantization_kernel_per_dense_gemm():
    """vLLM's NVFP4 linear layer quantizes its input in a kernel of its own (scaled_fp4_quant, then the FP4 GEMM);
    TensorRT-LLM fuses it. Llama-3.1-8B, one token: 32 layers x 4 dense GEMMs (qkv k=4096, o k=4096, gate_up
    k=4096, down k=14336) = 128 calls of 4.86 us plus 2.58 B per activation element at the streaming bandwidth
    (Blackwell class: B200 8 TB/s x 0.74); the LM head and experts are not dense linear layers."""
    from model.serving.deployment import deployment

    steps = {e: deployment("llama-3.1-8b", "b200", weights="nvfp4", kv="fp8", engine=e) for e in ("vllm", "trtllm")}
    gap = float(steps["vllm"].step(1, 1, 1024).time_s[0] - steps["trtllm"].step(1, 1, 1024).time_s[0])
    bw = steps["vllm"].device.memory.bandwidth_bytes_per_s
    by_hand = 128 * 4.86e-6 + 32 * 2.58 * (4096 * 3 + 14336) / (bw * 0.74)
    assert gap == pytest.approx(by_hand, rel=1e-6)
    assert steps["trtllm"].context.dense_quant == (0.0, 0.0, 0.0)
    # bf16 weights and activations: no quantization kernel on either engine
    plain = {e: deployment("llama-3.1-8b", "b200", engine=e).step(1, 1, 1024).time_s[0] for e in ("vllm", "trtllm")}
    assert plain["vllm"] == pytest.approx(plain["trtllm"])
