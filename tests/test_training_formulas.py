"""Closed-form training identities, each against a hand derivation and the catalogue's tier-A checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.architecture import load_architecture
from model.errors import RidgeplanError
from model.hardware import load_device
from model.operators.compiled import compile_graph
from model.training import formulas as f
from model.training.analysis import gpt_architecture, layer_parameters, stage_flop_imbalance


def gpt(name: str, layers: int, hidden: int, heads: int, vocab: int = 51200, seq: int = 2048, ffn: int | None = None):
    """A GPT-style decoder (MHA, 4h GELU MLP, LayerNorm with biases, learned positions, tied embeddings) as an
    OPT-format config, which is how ridgeplan reads GPT-2/3-shaped models (`model.training.analysis`)."""
    return gpt_architecture(name, layers, hidden, heads, vocab=vocab, seq=seq, ffn=ffn)


def test_seed_a01_six_n_d():
    """SEED-A01 (Frontier): 6·N·D with N = 1e12, D = 2e13 = 1.2e26 FLOP = 120 million exaFLOP."""
    flops = f.six_nd_flops(1e12, 2e13)
    assert flops == pytest.approx(1.2e26, rel=1e-12)
    assert flops / 1e18 == pytest.approx(120e6, rel=1e-12)


def test_seed_a06_megatron_arithmetic():
    """SEED-A06 (Megatron-LM): 502e15 / 3072 = 163.4 TFLOP/s per GPU = 52.4% of the A100's 312 TFLOP/s BF16
    (the peak read from hardware_db, not typed here)."""
    peak = load_device("a100-sxm-80gb").peak("bf16")
    assert peak == 312e12
    assert 502e15 / 3072 == pytest.approx(163.4e12, rel=1e-3)
    assert f.achieved_fraction(502e15, 3072, peak) == pytest.approx(0.524, abs=5e-4)


def test_seed_a08_zero_infinity_arithmetic():
    """SEED-A08: 25e15 / 512 = 48.8 TFLOP/s = 39% of the V100's 125 TFLOP/s ("over 40%" in the abstract)."""
    peak = load_device("v100-sxm2-32gb").peak("fp16")
    assert f.achieved_fraction(25e15, 512, peak) == pytest.approx(0.39, abs=0.005)


def test_seed_b20_time_to_train_units():
    """SEED-B20: 1T params on 20T tokens on 3,072 MI250X at 31.96% takes about 20 years if a "GPU" is one GCD
    (191.5 TFLOP/s) and about 10 years if it is a package (383 TFLOP/s): the unit must be explicit.
    Hand: 1.2e26 / (3072 x 191.5e12 x 0.3196) = 6.38e8 s = 20.2 years; half that per package."""
    gcd = load_device("mi250x-gcd")
    flops = f.six_nd_flops(1e12, 2e13)
    per_gcd = f.time_to_train_s(flops, 3072, gcd.peak("bf16"), 0.3196) / f.SECONDS_PER_YEAR
    per_package = f.time_to_train_s(flops, 3072, 2 * gcd.peak("bf16"), 0.3196) / f.SECONDS_PER_YEAR
    assert per_gcd == pytest.approx(20.2, abs=0.1)
    assert per_package == pytest.approx(10.1, abs=0.05)
    assert "GCD" in gcd.unit_note  # the device file says which unit it is


def test_attention_training_flops_term():
    """Catalogue 18: attention adds 3 x 2·L·n_h·d_h·S per token (causal average). Hand, L = 32, n_h = 32,
    d_h = 128, S = 4096: the causal average sees (S+1)/2 = 2048.5 keys, 3 x 4 x 32 x 32 x 128 x 2048.5 = 3.22e9, = 6·L·n_h·d_h·S up to
    the (S+1)/S edge (FLOP per token)."""
    got = f.attention_training_flops_per_token(32, 32, 128, 4096)
    assert got == pytest.approx(3 * 4 * 32 * 32 * 128 * 2048.5)
    assert got == pytest.approx(6 * 32 * 32 * 128 * 4096, rel=1e-3)
    assert f.attention_training_flops_per_token(32, 32, 128, 4096, causal=False) == pytest.approx(2 * got, rel=1e-3)


def test_megatron_formula_matches_the_operator_graph():
    """Megatron's 96·B·s·l·h²(1 + s/6h + V/16lh) equals ridgeplan's graph for a GPT layer counted x4 (forward,
    backward, recomputed forward) with the full-square attention convention, plus the LM head x3; it leaves
    out biases, norms and the softmax/cross-entropy, so the graph is within 0.5%."""
    arch = gpt("gpt-1t", 128, 25600, 160)
    ops = compile_graph(arch).evaluate(B=1, T=2048, C=0, n_logit=2048, causal=0.0)
    matmul = np.array([op.kind in ("gemm", "attention") for op in ops.ops])
    head = np.array([op.name == "lm_head" for op in ops.ops])
    layer_flops = float(ops.counts[matmul & ~head] @ ops.flops[matmul & ~head, 0])
    head_flops = float(ops.counts[head] @ ops.flops[head, 0])
    ours = 3072 * (4 * layer_flops + 3 * head_flops)
    theirs = float(f.megatron_flops_per_iteration(3072, 2048, 128, 25600, 51200))
    assert ours == pytest.approx(theirs, rel=5e-3)


@pytest.mark.parametrize("p, m, expected", [(4, 4, 0.429), (4, 16, 0.158), (8, 32, 0.179), (8, 128, 0.052)])
def test_seed_a20_gpipe_bubbles(p, m, expected):
    """SEED-A20 (GPipe): bubble (p−1)/(m+p−1): (4, 4) 3/7 = 42.9%; (4, 16) 3/19 = 15.8%; (8, 32) 7/39 = 17.9%;
    (8, 128) 7/135 = 5.2%."""
    assert f.bubble_fraction(p, m, schedule="gpipe") == pytest.approx(expected, abs=5e-4)
    assert f.bubble_fraction(p, m) == pytest.approx(expected, abs=5e-4)  # 1F1B has the same bubble


def test_interleaved_bubble_and_pipeline_time():
    """Interleaving with v chunks: bubble time (p−1)/(v·m) of the ideal. p = 8, m = 16, v = 2: 7/32 of the
    ideal, so the fraction of the step is 7/(32+7) = 17.9% (1F1B: 7/23 = 30.4%). Balanced stages of 1 s:
    (m + (p−1)/v) = 19.5 s."""
    assert f.bubble_fraction(8, 16, 2) == pytest.approx(7 / 39)
    assert f.bubble_fraction(8, 16, 1) == pytest.approx(7 / 23)
    assert f.pipeline_time_s(np.ones((8, 1)), 16, 2)[0] == pytest.approx(19.5)
    # an unbalanced last stage (2 s) paces all m micro-batches: 16 x 2 + (7 x 1 + 2 - 2)/1 = 39 s
    assert f.pipeline_time_s(np.array([[1.0]] * 7 + [[2.0]]), 16)[0] == pytest.approx(39.0)


def test_in_flight_micro_batches():
    """1F1B: stage s holds min(m, p − s) micro-batches; GPipe holds m; interleaving x(1 + (p−1)/(p·v)).
    p = 4, m = 8: stage 0 holds 4, stage 3 holds 1; v = 2: 4 x (1 + 3/8) = 5.5."""
    assert f.in_flight_micro_batches(4, 8, stage=0) == 4
    assert f.in_flight_micro_batches(4, 8, stage=3) == 1
    assert f.in_flight_micro_batches(4, 8, schedule="gpipe") == 8
    assert f.in_flight_micro_batches(4, 8, 2, stage=0) == pytest.approx(5.5)
    assert f.in_flight_micro_batches(4, 2, stage=0) == 2  # fewer micro-batches than stages


@pytest.mark.parametrize("vocab, layer_eq, loss", [(128_256, 2.61, 0.345), (256_000, 5.21, 0.495)])
def test_seed_a21_vocabulary_imbalance(vocab, layer_eq, loss):
    """SEED-A21 (Vocabulary Parallelism): L = 32, d = 4096, PP = 8, LM head on the last stage. Hand: the head is
    V/(12·d) layer-equivalents (128,256 -> 2.61, 256,000 -> 5.21); stages of 4 layers, the last one 4 + 2.61;
    loss = 1 − mean/max = 1 − (34.61/8)/6.61 = 34.5% (49.5% at 256K). Then the same from the operator
    graph's FLOPs and the serving layer's stage assignment, and ≈ 0 with the head spread over the stages."""
    assert f.lm_head_layer_equivalents(vocab, 4096) == pytest.approx(layer_eq, abs=0.005)
    stages = np.array([4.0] * 7 + [4.0 + layer_eq])
    assert f.stage_imbalance_loss(stages) == pytest.approx(loss, abs=0.001)
    arch = gpt("gpt-7b-like", 32, 4096, 32, vocab=vocab)
    assert stage_flop_imbalance(arch, 8) == pytest.approx(loss, abs=0.005)  # one token: no attention term
    assert stage_flop_imbalance(arch, 8, vocab_parallel=True) < 1e-9


def test_seed_a22_one_bit_adam():
    """SEED-A22 (1-bit Adam): a 5x volume cut needs warm-up share w = (1/5 − 1/c)/(1 − 1/c): c = 32 -> 17.4%,
    c = 16 -> 14.7%. Speed-ups 3.3x / 2.9x at R = 5 without overlap imply a baseline communication share
    s = (1 − 1/G)/(1 − 1/R): 87.1% / 81.9%."""
    assert f.warmup_for_reduction(5, 32) == pytest.approx(0.174, abs=5e-4)
    assert f.warmup_for_reduction(5, 16) == pytest.approx(0.147, abs=5e-4)
    assert f.compression_volume_reduction(32, f.warmup_for_reduction(5, 32)) == pytest.approx(5.0)
    assert f.comm_share_for_speedup(3.3, 5) == pytest.approx(0.871, abs=5e-4)
    assert f.comm_share_for_speedup(2.9, 5) == pytest.approx(0.819, abs=5e-4)
    assert f.speedup_from_comm_reduction(f.comm_share_for_speedup(3.3, 5), 5) == pytest.approx(3.3)
    with pytest.raises(RidgeplanError):
        f.comm_share_for_speedup(6, 5)


def test_seed_b35_local_update_arithmetic():
    """SEED-B35 (CO2, Streaming DiLoCo): τ_min = T_allreduce/T_step scales with 1/bandwidth, so 80 Gbps needs
    10x the local steps of 800 Gbps; average DiLoCo bandwidth is P·b/(H·T): H = 100 alone gives 100x, and
    4-bit instead of 16-bit exchange another 4x. Hand: 7e9 params x 2 B / (100 x 1 s) = 140 MB/s."""
    p, step = 7e9, 1.0
    t800, t80 = p * 2 / (800e9 / 8), p * 2 / (80e9 / 8)
    assert f.min_local_steps_to_hide(t80, step) == pytest.approx(10 * f.min_local_steps_to_hide(t800, step))
    assert f.local_update_bandwidth_bytes_per_s(p, 2, 100, step) == pytest.approx(140e6)
    ratio = f.local_update_bandwidth_bytes_per_s(p, 2, 1, step) / f.local_update_bandwidth_bytes_per_s(p, 0.5, 100, step)
    assert ratio == pytest.approx(400.0)


def test_seed_a40_streaming_threshold():
    """SEED-A40 (ZO2): zeroth-order fine-tuning streams each layer once for 2 forwards (4 FLOP/param/token):
    no stall above b_w·F/(4·β) = 2 x 150e12/(4 x 25e9) = 3,000 tokens. OPT-175B: a layer holds 12·d² =
    1.81e9 params = 3.62 GB in FP16, read here from the operator graph."""
    assert f.streaming_no_stall_tokens(2, 150e12, 25e9) == pytest.approx(3000)
    arch = load_architecture("opt-175b")
    layer_bytes = 2 * layer_parameters(arch)
    assert layer_bytes / 2 == pytest.approx(12 * 12288**2, rel=0.001)  # + biases and norms
    assert layer_bytes == pytest.approx(3.62e9, rel=0.005)
    assert 2 * layer_bytes < 18e9 < arch.num_layers * layer_bytes  # 18 GB holds only a few layers


@given(p=st.integers(2, 64), m=st.integers(1, 512), v=st.integers(1, 4))
def test_bubble_properties(p, m, v):
    """More micro-batches shrink the bubble, more stages grow it, interleaving never hurts."""
    b = f.bubble_fraction(p, m, v)
    assert 0 < b < 1
    assert f.bubble_fraction(p, m + 1, v) < b
    assert f.bubble_fraction(p + 1, m, v) > b
    assert b <= f.bubble_fraction(p, m, 1) + 1e-12


@given(c=st.floats(1.0, 1000.0), w=st.floats(0.0, 1.0), s=st.floats(0.0, 1.0))
def test_compression_properties(c, w, s):
    """The average reduction lies between 1 (all warm-up) and c (none); a bigger reduction never slows a step."""
    r = f.compression_volume_reduction(c, w)
    assert 1.0 - 1e-9 <= r <= c * (1 + 1e-9)
    assert f.speedup_from_comm_reduction(s, r) >= 1.0 - 1e-12
