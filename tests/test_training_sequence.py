"""model.training.sequence: SP traffic per scheme by hand, and the per-sequence SP schedule's invariants."""

from __future__ import annotations

import numpy as np
import pytest

from model.architecture import load_architecture
from model.errors import RidgeplanError
from model.training.sequence import (
    linear_state_bytes_per_rank,
    per_sequence_sp,
    ring_bytes_per_rank,
    ulysses_bytes_per_rank,
)
from model.training.cluster import cluster_for


def test_traffic_by_hand():
    """S = 32768, N = 4, Llama-3.1-8B widths (32 heads, 8 KV heads, d_h 128), 2 B:
    Ulysses 3/4 x 8192 x (64 + 16) x 128 x 2 = 125.8 MB; ring 3 x 8192 x 2 x 8 x 128 x 2 = 100.7 MB;
    LASP-2 with 32 states of 128 x 128: 3 x 32 x 128 x 128 x 2 = 3.1 MB, whatever S."""
    assert ulysses_bytes_per_rank(32768, 4, 32, 8, 128) == pytest.approx(0.75 * 8192 * 80 * 128 * 2)
    assert ring_bytes_per_rank(32768, 4, 8, 128) == pytest.approx(3 * 8192 * 2 * 8 * 128 * 2)
    assert linear_state_bytes_per_rank(4, 32, 128, 128) == pytest.approx(3 * 32 * 128 * 128 * 2)


def test_ulysses_constant_ring_grows_at_fixed_tokens_per_rank():
    """With S/N fixed, Ulysses' volume is (N−1)/N x constant while ring attention's grows as N − 1."""
    n = np.array([2, 4, 8, 16])
    uly = ulysses_bytes_per_rank(8192 * n, n, 32, 8, 128)
    ring = ring_bytes_per_rank(8192 * n, n, 8, 128)
    assert np.allclose(uly * n / (n - 1), uly[0] * 2)
    assert np.allclose(ring / (n - 1), ring[0])


@pytest.fixture(scope="module")
def setup():
    return load_architecture("llama-2-7b"), cluster_for("h100-sxm", "dgx-h100")


def test_uniform_lengths_gain_nothing(setup):
    """All sequences equal: the per-sequence schedule cannot beat the best single degree (gain 1)."""
    arch, cluster = setup
    s = per_sequence_sp(arch, cluster, [32768] * 16, 64)
    assert s.gain == pytest.approx(1.0)
    assert np.all(s.adaptive_degrees == s.static_degree)


def test_mixed_lengths_adaptive_never_worse(setup):
    """Mixed lengths: adaptive <= static (the static assignment is one of its candidates), short sequences take
    fewer GPUs than long ones, and the fluid bound is at least the slowest sequence's own time."""
    arch, cluster = setup
    lens = [4096] * 24 + [131072] * 2
    s = per_sequence_sp(arch, cluster, lens, 64)
    assert s.adaptive_time_s <= s.static_time_s * (1 + 1e-12)
    assert s.adaptive_degrees[0] <= s.adaptive_degrees[-1]
    rows = np.arange(len(lens))
    cols = [s.degrees.index(int(d)) for d in s.adaptive_degrees]
    assert s.adaptive_time_s >= s.seconds[rows, cols].max() - 1e-12
    assert s.adaptive_time_s == pytest.approx(max((s.seconds[rows, cols] * s.adaptive_degrees).sum() / 64,
                                                  s.seconds[rows, cols].max()))


def test_bad_inputs(setup):
    arch, cluster = setup
    with pytest.raises(RidgeplanError):
        per_sequence_sp(arch, cluster, [], 8)
    with pytest.raises(RidgeplanError):
        per_sequence_sp(arch, cluster, [1001], 8)  # 1001 tokens do not split over 8 ranks
    with pytest.raises(RidgeplanError):
        per_sequence_sp(arch, cluster, [4096], 8, degrees=(3,))
