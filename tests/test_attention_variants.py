"""Top-k (HiP) attention FLOPs and IO-aware attention traffic (model.operators.attention_variants)."""

from __future__ import annotations

import pytest

from model.errors import RidgeplanError
from model.operators.attention_variants import (
    dense_attention_flops, flash_attention_hbm_elements, flash_attention_intensity, selection_rounds,
    topk_attention_flops,
)


def test_topk_flops_hand_derivation():
    # 32 heads, d = 128: a pair costs 4 x 128 = 512 FLOPs; T = 16,384, k = 2,048 -> log2(8) = 3 rounds of
    # 2k = 4,096 scores at 256 FLOPs, then 2,048 keys at 512: 32 x (3 x 4,096 x 256 + 2,048 x 512)
    assert float(selection_rounds(16_384, 2048)) == 3
    assert float(topk_attention_flops(16_384, 2048, 32, 128)) == pytest.approx(32 * (3 * 4096 * 256 + 2048 * 512))
    assert float(dense_attention_flops(16_384, 32, 128)) == pytest.approx(32 * 512 * 16_384)
    # short contexts: no selection, attend to all T keys
    dense = float(dense_attention_flops(1000, 32, 128))
    assert float(topk_attention_flops(1000, 2048, 32, 128)) == pytest.approx(dense)
    with pytest.raises(RidgeplanError):
        topk_attention_flops(100, 0, 1, 64)


def test_flash_io():
    # M = 100 KB / 2 B = 51,200 elements; d = 128 -> 4 M / (d b) = 4 x 51,200 / 256 = 800 FLOP/B
    assert flash_attention_intensity(128, 102_400) == pytest.approx(800)
    assert float(flash_attention_hbm_elements(1024, 64, 65_536)) == pytest.approx(1024**2 * 64**2 / 65_536)
    with pytest.raises(RidgeplanError):
        flash_attention_intensity(256, 64 * 1024)  # 32,768 elements < d^2 = 65,536
