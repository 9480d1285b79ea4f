"""model.training.zeroth_order: layer streaming for zeroth-order fine-tuning, by hand."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.training.zeroth_order import zeroth_order_streaming


def test_opt_175b_on_a40_by_hand():
    """OPT-175B layer: 2 x (12·d² + 13·d) = 3,624,198,144 B at FP16. A40 host link: PCIe Gen4 x16 32 GB/s x 0.80 =
    25.6 GB/s, so a layer takes 3.6242e9 / 25.6e9 = 0.14157 s to arrive. Threshold b_w·F/(4·β) = 2 x 149.7e12 /
    (4 x 25.6e9) = 2,923.8 tokens. Peak = 2 layers + embeddings/head (50272 x 12288 + 2050 x 12288 positions,
    + final norm, at 2 B = 1.286 GB) + one forward's workspace."""
    z = zeroth_order_streaming("opt-175b", "a40", 4096, batch=2)
    d = 12288
    assert z.layer_bytes == pytest.approx(2 * (12 * d * d + 13 * d))
    assert z.link_bytes_per_s == pytest.approx(25.6e9)
    assert z.transfer_s_per_layer == pytest.approx(z.layer_bytes / 25.6e9)
    assert z.threshold_tokens == pytest.approx(2 * 149.7e12 / (4 * 25.6e9))
    assert z.other_weight_bytes == pytest.approx(2 * ((50272 + 2050) * d + 2 * d), rel=1e-3)
    assert z.peak_bytes == pytest.approx(2 * z.layer_bytes + z.other_weight_bytes + z.activation_bytes)
    assert z.peak_bytes < 18e9


def test_compute_is_two_forwards_of_one_layer():
    """Per-layer compute = 2 x the exposed time of layer 0's operators in the serving evaluator's forward."""
    z = zeroth_order_streaming("opt-13b", "a40", 2048)
    d = deployment("opt-13b", "a40", weights="fp16")
    ops, _, exposed = d.op_seconds(1.0, 2048.0, 0.0, n_logit=2048.0)
    layer = sum(float(exposed[i, 0]) for i, op in enumerate(ops.ops) if op.group == 0)
    assert z.compute_s_per_layer == pytest.approx(2 * layer)


def test_stall_falls_with_tokens():
    """More tokens per step: more compute per streamed layer, so the stall shrinks to zero past the threshold."""
    stalls = [zeroth_order_streaming("opt-175b", "a40", t).stall_s_per_layer for t in (256, 1024, 2048, 4096)]
    assert stalls[0] > stalls[1] > stalls[2] >= stalls[3] == 0.0
    with pytest.raises(RidgeplanError):
        zeroth_order_streaming("opt-175b", "a40", 0)
