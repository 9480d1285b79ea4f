"""KV compression arithmetic (model.techniques.kv_compression) and symbol overrides (model.serving.overrides)."""

from __future__ import annotations

import dataclasses

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.batching import kv_capacity
from model.techniques.kv_compression import (
    capacity_gain, hybrid_kv_ratio, kv_ratio, kv_saving, kv_share_of_memory, mixed_bits, sparse_keep_for_saving,
    total_saving, with_kv_bits,
)
from model.serving.overrides import override_symbols
from model.serving.policy import ENGINES


def test_composition():
    assert float(kv_saving(16, rank_fraction=0.2)) == pytest.approx(0.80)  # CSKV
    assert float(kv_saving(4, rank_fraction=0.2)) == pytest.approx(0.95)
    assert float(capacity_gain(0.6)) == pytest.approx(2.5)  # MatryoshkaKV
    assert float(capacity_gain(0.75)) == pytest.approx(4.0)
    # a 128-token fp16 window on a 512-token context at 2 bits: (128 + 384 x 2/16) / 512 = 0.34375
    assert float(kv_ratio(2, residual_tokens=128, context=512)) == pytest.approx(0.34375)
    with pytest.raises(RidgeplanError):
        kv_ratio(2, residual_tokens=128)


def test_mixes_and_shares():
    assert mixed_bits([0.9, 0.1], [4, 8]) == pytest.approx(4.4)  # MixLLM
    assert mixed_bits([0.2, 0.8], [16, 3]) == pytest.approx(5.6)  # MiKV
    with pytest.raises(RidgeplanError):
        mixed_bits([0.5, 0.4], [4, 8])
    assert float(hybrid_kv_ratio(1 / 3, 0.07)) == pytest.approx(0.38)  # LongGen
    assert float(sparse_keep_for_saving(0.62, 1 / 3)) == pytest.approx(0.07)
    assert float(kv_share_of_memory(0.442, 0.70)) == pytest.approx(0.6314, rel=1e-3)  # HACK
    assert float(total_saving(0.6314285714, 0.70)) == pytest.approx(0.442)


def test_with_kv_bits_prices_the_cache():
    # Llama-2-7B fp16 KV: 524,288 B/token; at 5.6 bits 524,288 x 5.6/16 = 183,500.8 B/token
    base = deployment("llama-2-7b", "a100-sxm-80gb", kv="fp16")
    mixed = with_kv_bits(base, 5.6)
    vllm = ENGINES["vllm"]
    a = kv_capacity(base, vllm, 4096).kv_bytes_per_sequence[0]
    b = kv_capacity(mixed, vllm, 4096).kv_bytes_per_sequence[0]
    assert a == pytest.approx(524_288 * 4096)
    assert b / a == pytest.approx(5.6 / 16)
    assert any("5.6 bits" in note for note in mixed.assumptions())
    # rank and keep fractions still compose
    half = with_kv_bits(dataclasses.replace(base, kv_rank_fraction=0.5), 8)
    assert kv_capacity(half, vllm, 4096).kv_bytes_per_sequence[0] / a == pytest.approx(0.25)


def test_override_symbols_validates_and_stacks():
    d = deployment("llama-2-7b", "h100-sxm")
    with pytest.raises(RidgeplanError):
        override_symbols(d, "bad", no_such_symbol=1.0)
    with pytest.raises(RidgeplanError):
        override_symbols(d, "bad", b_w=0.0)
    o = override_symbols(override_symbols(d, "first", b_w=0.5), "second", b_kv=1.0)
    assert o.symbols()["b_w"] == 0.5 and o.symbols()["b_kv"] == 1.0
    assert [n for n in o.assumptions() if n in ("first", "second")] == ["first", "second"]
    # the step follows the override: weights at 0.5 B instead of 2 B
    w16 = float(d.step(1, 1, 0).memory.weights_bytes[0])
    w4 = float(override_symbols(d, "w", b_w=0.5).step(1, 1, 0).memory.weights_bytes[0])
    assert w4 < 0.3 * w16
