"""Layer streaming from host memory: resident plans and the break-even tokens (CATALOG section 13)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.batching import decode_only_iteration
from model.serving.policy import ENGINES
from model.techniques.weight_streaming import break_even_tokens, layer_bytes, other_weight_bytes, resident_plan


@pytest.fixture(scope="module")
def llama7b():
    return deployment("llama-2-7b", "rtx-4090", weights="fp16", kv="fp16")


def test_layer_bytes_hand_derivation(llama7b):
    # Llama-2-7B layer: 4 x 4096^2 (attention) + 3 x 4096 x 11008 (MLP) = 202.4M params, + 2 norms of 4096
    per_layer = (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) * 2
    assert layer_bytes(llama7b) == pytest.approx(per_layer)
    # embeddings + head (untied) + final norm
    assert other_weight_bytes(llama7b) == pytest.approx((2 * 32000 * 4096 + 4096) * 2)


def test_resident_plan(llama7b):
    lb, other = layer_bytes(llama7b), other_weight_bytes(llama7b)
    full = resident_plan(llama7b, 32)
    assert full.offload is None and full.weight_memory_bytes == pytest.approx(32 * lb + other)
    half = resident_plan(llama7b, 16, prefetch_layers=2)
    assert half.weight_memory_bytes == pytest.approx(18 * lb + other)
    assert half.offload.fraction == pytest.approx(16 * lb / (32 * lb + other))
    with pytest.raises(RidgeplanError):
        resident_plan(llama7b, 33)


def test_break_even_tokens(llama7b):
    # RTX 4090: 165.2 TFLOP/s fp16 x 0.75 (Ada GEMM ceiling) x 2 B / (2 x 25.6 GB/s) = 4,840 tokens
    assert break_even_tokens(llama7b, 25.6e9) == pytest.approx(165.2e12 * 0.75 * 2 / (2 * 25.6e9))
    # far above it streaming everything costs almost nothing; far below it the stream dominates
    vllm = ENGINES["vllm"]
    plan = resident_plan(llama7b, 0)
    for tokens, lo, hi in ((32768, 0.9, 1.0), (16, 0.0, 0.1)):
        base = float(decode_only_iteration(llama7b, vllm, tokens, 128).time_s[0])
        streamed = float(decode_only_iteration(llama7b, vllm, tokens, 128, offload=plan.offload).time_s[0])
        assert lo <= base / streamed <= hi
