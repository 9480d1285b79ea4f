"""Long-context capacity: four metrics, pooled KV, low-rank K with offloaded V (CATALOG section 14)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.batching import kv_capacity
from model.techniques.long_context import (
    host_link_bytes_per_s, long_context_metrics, low_rank_offload, max_context_tokens, merge_traffic_ratio,
    pooled_context,
)
from model.serving.policy import ENGINES, EnginePolicy

VLLM = ENGINES["vllm"]


@pytest.fixture(scope="module")
def llama8b():
    return deployment("llama-3.1-8b", "a100-sxm-80gb")


def test_four_metrics(llama8b):
    m = long_context_metrics(llama8b, VLLM, 32768)
    cap = kv_capacity(llama8b, VLLM, 32768)
    assert m.concurrency == int(cap.max_sequences[0])
    # context switch: 32,768 x 128 KiB = 4.29 GB over PCIe Gen4 x16 (32 GB/s x 0.8 = 25.6 GB/s) = 0.168 s
    assert m.kv_bytes_per_sequence == pytest.approx(32768 * 131072)
    assert host_link_bytes_per_s(llama8b) == pytest.approx(25.6e9)
    assert m.context_switch_s == pytest.approx(32768 * 131072 / 25.6e9)
    assert m.prefill_s > long_context_metrics(llama8b, VLLM, 4096).prefill_s * 8  # super-linear in S


def test_pooled_context(llama8b):
    own = max_context_tokens(llama8b, VLLM)
    pool = float(kv_capacity(llama8b, VLLM, 65536).kv_pool_bytes[0])
    assert own == pytest.approx(pool / 131072, rel=1e-3)
    assert pooled_context(llama8b, VLLM, 4).multiplier == pytest.approx(4.0)
    assert pooled_context(llama8b, VLLM, 4, 0.5).multiplier == pytest.approx(2.5)  # 1 + 3 x 0.5
    with pytest.raises(RidgeplanError):
        pooled_context(llama8b, VLLM, 2, 1.5)


def test_merge_traffic_ratio(llama8b):
    # 32 heads x (128 + 2) x 2 B = 8,320 B back per query token per layer vs 1,000 remote tokens x 8 x 256 x 2 B
    assert merge_traffic_ratio(llama8b, 1000) == pytest.approx(32 * 130 * 2 / (1000 * 8 * 256 * 2))


def test_low_rank_offload_hand_derivation(llama8b):
    static = EnginePolicy("static", memory_fraction=1.0, cuda_graph_bytes=0.0)
    ctx, rank, chunk, budget = 100_000, 160, 8, 1_560
    r = low_rank_offload(llama8b, static, ctx, rank, chunk, budget)
    # per token on the GPU: 32 layers x (160 x 2 B + 8 x 128 x 2 B / 8) = 32 x 576 = 18,432 B; per sequence
    # 32 x 160 x 1,024 x 2 B of projections and the 1,560-token working set in full (131,072 B each)
    resident = ctx * 18_432 + 32 * 160 * 1024 * 2 + budget * 131_072
    assert r.resident_bytes_per_sequence == pytest.approx(resident)
    assert r.full_bytes_per_sequence == pytest.approx(ctx * 131_072)
    assert r.batch_multiplier > 5
    # V fetch: batch x 1,560 tokens x 32 layers x 8 x 128 x 2 B over 25.6 GB/s
    assert r.fetch_s == pytest.approx(r.max_batch * budget * 32 * 1024 * 2 / 25.6e9)
    reused = low_rank_offload(llama8b, static, ctx, rank, chunk, budget, reuse=0.5)
    assert reused.fetch_s == pytest.approx(r.fetch_s / 2)
    assert reused.throughput_gain >= r.throughput_gain
    with pytest.raises(RidgeplanError):
        low_rank_offload(llama8b, static, ctx, rank, chunk, budget, reuse=1.0)
