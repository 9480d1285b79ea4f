"""Chunk-KV reuse, shipping KV vs text, prefix sharing and vector search (CATALOG section 20)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.hardware.db import load_device
from model.serving.policy import ENGINES
from model.techniques.rag import (
    fraction_in_other_terms, kv_threshold_bytes_per_s, prefill_s, prefill_time_share, prefix_removed_share,
    prefix_sharing_savings, request_flops, reuse_ttft, ship_kv_or_text, throughput_gain_bound, vector_search,
)


@pytest.fixture(scope="module")
def llama8b():
    return deployment("llama-3.1-8b", "a100-sxm-80gb")


def test_fraction_and_bound_seed_a33():
    # Cache-Craft computes 25% of full and 51% less than prefix caching: prefix caching computes 0.25 / 0.49
    assert fraction_in_other_terms(0.25, 0.51) == pytest.approx(0.5102, abs=1e-4)
    # removing 51% of a workload's prefill, which is 80% of its time: 1 / (1 - 0.408) = 1.689
    assert float(throughput_gain_bound(0.8, 0.51)) == pytest.approx(1 / (1 - 0.408))
    with pytest.raises(RidgeplanError):
        fraction_in_other_terms(0.25, 1.0)


def test_reuse_ttft(llama8b):
    r = reuse_ttft(llama8b, 3072, 64, 0.15, 25.6e9)
    # load: 85% of 3,072 tokens x 128 KiB / 25.6 GB/s
    assert r.load_s == pytest.approx(0.85 * 3072 * 131072 / 25.6e9)
    assert r.full_s == pytest.approx(prefill_s(llama8b, 3136))
    assert r.ttft_s == pytest.approx(max(r.load_s, r.recompute_s) + r.query_s)
    assert r.gain < r.gain_bound < 1 / 0.15  # fixed costs keep the bound under 1/r
    assert reuse_ttft(llama8b, 3072, 64, 1.0, 25.6e9).load_s == 0


def test_ship_kv_or_text_threshold():
    # KV 2 GB, text 16 kB, prefill 0.2 s: KV wins above (2e9 / CR - 16e3) / 0.2 B/s
    assert kv_threshold_bytes_per_s(2e9, 16e3, 0.2) == pytest.approx((2e9 - 16e3) / 0.2)
    assert kv_threshold_bytes_per_s(2e9, 16e3, 0.2, 4.0) == pytest.approx((0.5e9 - 16e3) / 0.2)
    c = ship_kv_or_text(2e9, 16e3, 12.5e9, 0.2, 4.0)
    assert c.kv_s == pytest.approx(0.5e9 / 12.5e9) and c.text_s == pytest.approx(16e3 / 12.5e9 + 0.2)
    assert c.best == "kv"
    assert ship_kv_or_text(2e9, 16e3, 0.125e9, 0.2, 4.0).best == "text"


def test_prefix_sharing_seed_a44():
    d = deployment("llama-2-7b", "a100-sxm-80gb")
    s = prefix_sharing_savings(d, 4, 1000)
    assert s.kv_bytes == pytest.approx(3 * 1000 * 524288)
    p_nonemb = 6.738415616e9 - 2 * 32000 * 4096
    assert s.linear_flops == pytest.approx(3 * 2 * p_nonemb * 1000, rel=1e-3)
    # causal attention of 1,000 tokens: 2 L S^2 d = 2 x 32 x 1e6 x 4096 = 2.6e14 per request... (x3)
    assert s.attention_flops == pytest.approx(3 * 2 * 32 * 1000**2 * 4096, rel=0.05)


def test_prefix_removed_share_and_prefill_share(llama8b):
    assert prefix_removed_share(llama8b, 2000, 200, 0.0) == pytest.approx(0.0)
    half = prefix_removed_share(llama8b, 2000, 200, 0.5)
    assert 0 < half < 0.5
    assert request_flops(llama8b, 2000, 200, 1000) < request_flops(llama8b, 2000, 200)
    share = prefill_time_share(llama8b, ENGINES["vllm"], 2600, 100)
    assert 0.5 < share < 1
    assert prefill_time_share(llama8b, ENGINES["vllm"], 100, 1000) < share


def test_vector_search_hand_values():
    cpu = load_device("host-xeon-8480")
    v = vector_search(1e6, 768, cpu, bits=16, visited=1000)
    # 1,000 x 768 x 2 B = 1.536 MB per query at 0.7 x 307.2 GB/s
    assert v.bytes_per_query == pytest.approx(1.536e6)
    assert v.queries_per_s == pytest.approx(0.7 * 307.2e9 / 1.536e6)
    assert v.index_bytes == pytest.approx(1e6 * (1536 + 128))
