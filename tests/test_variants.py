"""Architecture variants (model.architecture.variants): windows, hybrids, linearization, layer skipping, expert
pruning. Expected values are derived by hand from the published configs."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.architecture.variants import hybrid_window, layers, linearize, prune_experts, skip_layers, with_window
from model.errors import RidgeplanError
from model.operators.memory import kv_bytes_per_token, kv_cache_bytes
from model.operators.params import parameter_counts


def test_window_caps_cached_positions():
    # Llama-2-7B: 32 layers x 2 (K, V) x 32 heads x 128 x 2 B = 524,288 B per token.
    # Window 4,096 + 4 sinks: at 32,768 tokens each layer keeps 4,100 positions.
    a = load_architecture("llama-2-7b")
    w = with_window(a, 4096, sink=4)
    assert float(kv_cache_bytes(w, 32_768)[0]) == pytest.approx(524_288 * 4_100)
    assert float(kv_cache_bytes(a, 32_768)[0]) == pytest.approx(524_288 * 32_768)
    # below the window nothing changes
    assert float(kv_cache_bytes(w, 1_000)[0]) == pytest.approx(float(kv_cache_bytes(a, 1_000)[0]))


def test_hybrid_keeps_every_third_layer_full_and_order():
    a = load_architecture("llama-2-7b")
    h = hybrid_window(a, 1024, full_every=3)
    windows = [layer.attention.window for layer in layers(h)]
    # layers 2, 5, ..., 29 full: 10 of 32
    assert [i for i, w in enumerate(windows) if w is None] == list(range(2, 32, 3))
    # KV at 8,192 tokens: 10 full layers x 8,192 + 22 windowed x 1,024 positions, 16,384 B per layer-token
    per_layer_token = 524_288 / 32
    assert float(kv_cache_bytes(h, 8192)[0]) == pytest.approx(per_layer_token * (10 * 8192 + 22 * 1024))
    # pipeline stages still split the variant (layer_order is consistent)
    d = deployment(h, "h100-sxm", pp=4)
    assert d.counts.sum() > 0


def test_linearize_gives_constant_state():
    a = load_architecture("llama-3.2-1b")
    lin = linearize(a, key_dim=64, value_dim=64)
    # state per sequence: 16 layers x 32 heads x 64 x 64 x 4 B (fp32) = 8,388,608 B, plus the conv state
    # (kernel 4 - 1) x (2 x 32 x 64 + 32 x 64) channels x 2 B = 36,864 B per layer
    expected = 16 * (32 * 64 * 64 * 4 + 3 * (3 * 32 * 64) * 2)
    for ctx in (10, 10_000, 100_000):
        assert float(kv_cache_bytes(lin, ctx)[0]) == pytest.approx(expected)
    # keeping two layers full keeps their KV: 2 layers x 2 x 8 heads x 64 x 2 B = 4,096 B per token
    hybrid = linearize(a, key_dim=64, value_dim=64, keep_full=(7, 15))
    assert kv_bytes_per_token(hybrid) == pytest.approx(4096)


def test_skip_layers_scales_decoder_only():
    a = load_architecture("llama-3.1-8b")
    s = skip_layers(a, 8)
    assert s.num_layers == 24
    assert kv_bytes_per_token(a) / kv_bytes_per_token(s) == pytest.approx(32 / 24)
    pa, ps = parameter_counts(a), parameter_counts(s)
    # embeddings (untied: 2 x 128,256 x 4,096) stay; the decoder shrinks by 8/32
    assert pa.embedding == ps.embedding
    assert (pa.total - pa.embedding) * 24 / 32 == pytest.approx(ps.total - ps.embedding)
    with pytest.raises(RidgeplanError):
        skip_layers(a, 31)


def test_prune_experts_deepseek_v3():
    # 58 MoE layers x 256 experts x 3 x 7,168 x 2,048 = 653.9B routed; the rest (17.1B) stays. Each expert
    # also owns one router row (7,168 weights) and one router bias (DeepSeek-V3's noaux_tc correction bias).
    a = load_architecture("deepseek-v3")
    routed = 58 * (3 * 7168 * 2048 + 7168 + 1)
    full = parameter_counts(a).total
    for kept in (128, 32):
        assert parameter_counts(prune_experts(a, kept)).total == pytest.approx(full - (256 - kept) * routed)
    with pytest.raises(RidgeplanError):
        prune_experts(load_architecture("llama-2-7b"), 4)
