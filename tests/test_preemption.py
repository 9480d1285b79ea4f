"""KV swap granularity, preemption tails and live migration (CATALOG section 11)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.techniques.preemption import (
    effective_bandwidth, kv_block_bytes, migration_s, pipelined_migration_downtime_s, preemption_tail, swap_s,
)


def test_effective_bandwidth_hand_values():
    # BW 25 GB/s, t_setup 10 us -> BW t_setup = 250 KB; a 32 KiB copy reaches 25 x 32,768 / (32,768 + 250,000)
    bw = 25e9
    assert float(effective_bandwidth(32768, bw, 10e-6)) == pytest.approx(25e9 * 32768 / 282768)
    assert float(effective_bandwidth(250e3, bw, 10e-6)) == pytest.approx(bw / 2)  # g = BW t_setup: half
    assert float(swap_s(1e9, 250e3, bw, 10e-6)) == pytest.approx(1e9 / 12.5e9)


def test_kv_block_bytes():
    # Llama-3.1-8B: one layer's K for 16 tokens = 16 x 8 KV heads x 128 x 2 B = 32 KiB
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    assert kv_block_bytes(d, 16) == pytest.approx(32768)


def test_preemption_tail():
    serial = preemption_tail(0.05, 0.37, 0.05, overlapped=False)
    hidden = preemption_tail(0.05, 0.04, 0.05, overlapped=True)
    rare = preemption_tail(0.05, 0.37, 0.001, overlapped=False)
    assert serial.tbt_s == pytest.approx(0.42)
    assert hidden.tbt_s == pytest.approx(0.05) and hidden.exposed_swap_s == 0
    assert rare.tbt_s == pytest.approx(0.05)  # fewer than 1% of iterations: not in the p99
    assert preemption_tail(0.05, 0.08, 0.05, overlapped=True).tbt_s == pytest.approx(0.08)


def test_migration():
    assert migration_s(1e9, 10e9, 1e-3) == pytest.approx(0.101)
    # 1 GB at 10 GB/s while the KV grows 10 MB/s: rounds copy 1 GB, 1 MB, 1 kB -> downtime = 1 B / 10 GB/s
    assert pipelined_migration_downtime_s(1e9, 10e6, 10e9, rounds=3) == pytest.approx(1e0 / 10e9)
