"""model.techniques.throughput_ceiling: hard throughput ceilings by hand, and the invariant that nothing predicted exceeds them."""

from __future__ import annotations

import numpy as np
import pytest

from model.api import deployment
from model.operators.memory import kv_bytes_per_token
from model.operators.params import parameter_counts
from model.serving.batching import steady_state
from model.techniques.throughput_ceiling import throughput_ceiling
from model.serving.policy import ENGINES


def test_compute_ceiling_by_hand():
    """LLaMA-2-70B on 8 x A100 (BF16, 312 TFLOP/s): the GEMMs cost 2 x (parameters minus the input embedding
    lookup, which is not a GEMM) FLOPs per token = 2 x (68.98e9 − 32000 x 8192) = 137.4e9; ceiling 8 x 312e12 /
    137.4e9 = 18,162 tok/s. Attention at context C adds 4·L·n_h·d_h per cached key (causal: the new token
    attends to C + 1 keys): 4 x 80 x 64 x 128 x 1025 = 2.69e9 at C = 1024."""
    d = deployment("llama-2-70b", "a100-sxm-80gb", tp=8)
    c = throughput_ceiling(d, context=1024)
    p = parameter_counts(d.arch).total
    assert c.gemm_flops_per_token == pytest.approx(2 * (p - 32000 * 8192), rel=1e-3)
    assert c.compute_tokens_per_s == pytest.approx(8 * 312e12 / c.gemm_flops_per_token)
    assert c.compute_tokens_per_s == pytest.approx(18_162, rel=1e-3)
    assert c.attention_flops_per_token == pytest.approx(4 * 80 * 64 * 128 * 1025, rel=0.01)
    assert c.compute_with_attention_tokens_per_s < c.compute_tokens_per_s
    # the GEMM ceiling does not depend on the layout: TP 4 on half the GPUs has half the ceiling
    half = throughput_ceiling(deployment("llama-2-70b", "a100-sxm-80gb", tp=4), context=1024)
    assert half.compute_tokens_per_s == pytest.approx(c.compute_tokens_per_s / 2)


def test_memory_ceiling_by_hand():
    """N·BW·B/(W + B·KV): Llama-3.1-8B on one H100 at batch 64 and 2,048 cached tokens: W = 16.06 GB,
    KV 131,072 B/token x 2048 = 268 MB per sequence; 3.35e12 x 64 / (16.06e9 + 64 x 268e6) = 6,290 tok/s."""
    d = deployment("llama-3.1-8b", "h100-sxm")
    c = throughput_ceiling(d)
    kv = kv_bytes_per_token(d.arch)
    assert c.kv_bytes_per_token_of_context == kv == 131_072
    got = float(c.memory_tokens_per_s(64, 2048, 3.35e12))
    assert got == pytest.approx(3.35e12 * 64 / (c.weight_bytes + 64 * kv * 2048))
    assert c.weight_bytes == pytest.approx(2 * parameter_counts(d.arch).total, rel=1e-3)


@pytest.mark.parametrize("model, gpu, tp", [("llama-3.1-8b", "h100-sxm", 1), ("llama-2-70b", "a100-sxm-80gb", 8)])
def test_predicted_throughput_never_exceeds_the_ceiling(model, gpu, tp):
    """Invariant: the steady state's input + output tokens per second stays under the compute ceiling (with
    attention, at the mean decode context) and the decode throughput under the memory ceiling at its batch."""
    d = deployment(model, gpu, tp=tp)
    for i, o in ((1024, 512), (128, 1024), (4096, 128)):
        ss = steady_state(d, ENGINES["vllm"], i, o)
        c = throughput_ceiling(d, context=i + o / 2)
        total = float(ss.requests_per_s[0]) * (i + o)
        assert total <= c.compute_with_attention_tokens_per_s
        decode = float(ss.decode_seqs[0]) / float(ss.iteration.time_s[0])
        assert decode <= float(c.memory_tokens_per_s(ss.decode_seqs[0], i + o / 2, d.device.memory.bandwidth_bytes_per_s))
    assert np.isfinite(c.compute_tokens_per_s)
