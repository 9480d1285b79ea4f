"""Piggybacked decodes, padding waste and TBT capacity (CATALOG section 9)."""

from __future__ import annotations

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.batching import iteration_cost
from model.techniques.chunked_prefill import packed_vs_padded_prefill, padding_factor, piggyback_cost, tbt_goodput
from model.serving.estimate import operating_points
from model.serving.policy import ENGINES
from model.serving.workload import Lengths


def test_padding_factor_seed_a44():
    # 4 x 2,700 / (100 + 200 + 1,000 + 2,700) = 10,800 / 4,000 = 2.7
    assert padding_factor([100, 200, 1000, 2700]) == pytest.approx(2.7)
    # attention: 4 x 2,700^2 / (100^2 + 200^2 + 1,000^2 + 2,700^2) = 29.16e6 / 8.34e6
    assert padding_factor([100, 200, 1000, 2700], "attention") == pytest.approx(29.16e6 / 8.34e6)
    assert padding_factor([512, 512]) == 1.0
    with pytest.raises(RidgeplanError):
        padding_factor([])
    with pytest.raises(RidgeplanError):
        padding_factor([10], "conv")


def test_piggyback_cost_matches_its_definition_and_sarathi_b14():
    d = deployment("llama-2-13b", "rtx-a6000", weights="fp16", kv="fp16")
    c = piggyback_cost(d, 2, 512, 256)
    alone = float(iteration_cost(d, 2, 512, 0, 0, 0).time_s[0])
    chunk = float(iteration_cost(d, 0, 0, 256, 1, 0).time_s[0])
    mixed = float(iteration_cost(d, 2, 512, 256, 1, 0).time_s[0])
    assert float(c.decode_only_per_token_s[0]) == pytest.approx(alone / 2)
    assert float(c.piggyback_per_token_s[0]) == pytest.approx((mixed - chunk) / 2)
    # hand: decode-only ~ 26 GB / 768 GB/s / 2 = 17 ms per token; piggybacked ~ 2 x 13e9 / F_eff + KV(512) / BW
    # ~ 0.2-1 ms: the catalogue's derived ratio is ~24 at B = 2, S = 512
    assert 15 < float(c.ratio[0]) < 35
    with pytest.raises(RidgeplanError):
        piggyback_cost(d, 0, 512, 256)


def test_packed_prefill_beats_padded():
    d = deployment("llama-2-7b", "a100-sxm-80gb")
    r = packed_vs_padded_prefill(d, [100, 200, 1000, 2700])
    # KV written: padded 4 x 2,700 tokens, packed 4,000 tokens, 512 KiB each
    assert r.padded_kv_bytes == pytest.approx(4 * 2700 * 524288)
    assert r.packed_kv_bytes == pytest.approx(4000 * 524288)
    assert r.packed_s < r.padded_s / 2  # linear work falls 2.7x, attention 3.5x


def test_tbt_goodput_is_zero_below_any_iteration_and_monotone_in_slo():
    d = deployment("llama-3.1-8b", "h100-sxm")
    op = operating_points(d, ENGINES["vllm"].with_(max_num_batched_tokens=512), Lengths.fixed(1000, 200), points=8)
    assert tbt_goodput(op, 1e-6) == 0.0
    loose, tight = tbt_goodput(op, 1.0), tbt_goodput(op, 0.03)
    assert loose >= tight
    assert loose == pytest.approx(float(np.max(op.rates)))
