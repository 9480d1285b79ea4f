"""PIM, NPU + PIM, FPGA and edge-device helpers (CATALOG section 16)."""

from __future__ import annotations

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.hardware.db import load_device
from model.roofline.collectives import Tier
from model.techniques.near_memory import (
    allreduce_s, balance_for_gain, bandwidth_bound_tokens_per_s, batch1_efficiency, decode_intensity, max_window,
    npu_pim_step, overlap_gain, pim_gemv_s, pp_token_s, star_terms, step_bytes, tp_token_s, window_memory_bytes,
)


def test_overlap_gain_and_balance_seed_a25():
    # (a + b) / max(a, b) = 1 + min/max <= 2; a 1.6x gain needs min/max = 0.6
    assert float(overlap_gain(1.0, 0.6)) == pytest.approx(1.6)
    assert float(overlap_gain(1.0, 1.0)) == pytest.approx(2.0)
    assert float(overlap_gain(1.0, 1.0, 0.25)) == pytest.approx(1.6)
    assert float(balance_for_gain(1.6)) == pytest.approx(0.6)
    with pytest.raises(RidgeplanError):
        balance_for_gain(2.5)


def test_pim_gemv_time():
    # 8 GDDR6-AiM chips: 8 x 1.024 TB/s internal at the near-memory streaming efficiency (0.8)
    aim = load_device("aim-gddr6-pim")
    assert float(pim_gemv_s(3.2e9, aim, 8)) == pytest.approx(3.2e9 / (8 * 1.024e12 * 0.8))
    with pytest.raises(RidgeplanError):
        pim_gemv_s(1e9, load_device("h100-sxm"))


def test_npu_pim_step_bounds():
    npu = deployment("llama-3.1-8b", "tpu-v5e")
    s = npu_pim_step(npu, load_device("hbm-pim"), 16, 512, 8192)
    assert s.blocked_s == pytest.approx(s.gemm_s + s.gemv_s)
    assert s.concurrent_s >= max(s.gemm_s, s.gemv_s)
    assert s.gain_over_blocked <= 2


def test_bandwidth_bound_rate_and_intensity():
    d = deployment("llama-2-7b", "a100-sxm-80gb")
    nbytes = step_bytes(d, 1, 512)
    # batch-1 decode moves ~13.5 GB of weights + 512 x 512 KiB of KV
    assert nbytes == pytest.approx(13.48e9 + 512 * 524288, rel=0.02)
    u280 = load_device("alveo-u280")
    assert bandwidth_bound_tokens_per_s(u280, 4e9) == pytest.approx(0.8 * 460e9 / 4e9)
    inten, ridge = decode_intensity(d, 1, 512)
    assert ridge == pytest.approx(312e12 / 2.039e12)
    assert 0.5 < inten < 2  # about 2 FLOP per 2-byte weight
    e = batch1_efficiency(d, 512)
    assert e.tokens_per_joule == pytest.approx(e.tokens_per_s / 400)
    assert e.tokens_per_usd == pytest.approx(e.tokens_per_s * 3600 / 1.30)


def test_tp_pp_and_star_ring_hand_values():
    wifi = Tier(62.5e6, 3e-3)
    # 16 KB on 8 devices: star 2 x 3 ms + 7 x 16,384 / 62.5e6; ring 14 x 3 ms + 2 x 7/8 x 16,384 / 62.5e6
    assert allreduce_s(16384, 8, wifi, "star") == pytest.approx(6e-3 + 7 * 16384 / 62.5e6)
    assert allreduce_s(16384, 8, wifi, "ring") == pytest.approx(42e-3 + 1.75 * 16384 / 62.5e6)
    lat, bw = star_terms(16384, 8, wifi)
    assert lat == pytest.approx(6e-3) and bw == pytest.approx(7 * 16384 / 62.5e6)
    assert tp_token_s(0.1, 80, 8, 0.007) == pytest.approx(80 * 0.1 / 8 + 160 * 0.007)
    assert pp_token_s(0.1, 80, 8, 0.003) == pytest.approx(8.0 + 7 * 0.003)


def test_sliding_window_memory_seed_b38():
    # 3.1 GB per device, 1.75 GB fp16 layers, N = 8: window <= 3.1 x 8 / 1.75 = 14.17 layers (1.77 N)
    assert max_window(1.75e9, 8, 3.1e9) == pytest.approx(3.1 * 8 / 1.75)
    assert window_memory_bytes(1.75e9, 4, 8, 0.2e9) == pytest.approx(4 * 1.75e9 / 8 + 0.2e9)
    assert np.floor(max_window(1.75e9, 8, 3.1e9, 0.5e9)) == 11
