"""Issue 15's KV-cache store kernel and longest causal tile, by hand: vLLM's and SGLang's attention calls (as their
tables time them) store the call's new keys and values with a copy kernel of their own (kv_store_kernel), and a
prefill call on trtllm-gen's context kernels (one CTA per tile, no KV split) ends no sooner than its longest causal
tile (part of prefill_tile_waves); both neutral in the hand-set classes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from model.calibration.importer import KERNEL_FACTS
from model.roofline.efficiency_sets import ARCH_DEFAULTS
from model.roofline.kernels import kernel_work, kv_store_bytes, longest_tile, predict_kernels

# the same H100 and plain efficiency as the attention forms' tests
from tests.test_calibration_attention_forms import BW, H100, PEAK, _plain, _rows


def test_the_store_is_neutral_in_every_hand_set_class_and_a_fact_of_vllm_and_sglang():
    for eff in ARCH_DEFAULTS.values():
        assert eff.kv_store_kernel == 0
    row = _rows("attention", batch=2, heads=32, kv_heads=8, head_dim=128, seq_len=1024)
    assert kv_store_bytes(row, kernel_work(row), _plain()).tolist() == [0.0]
    for (engine, _), facts in KERNEL_FACTS.items():
        # TensorRT-LLM stores K and V inside its fused QKV preprocessing (with RoPE): not this kernel
        assert facts.get("kv_store_kernel", 0.0) == (1.0 if engine in ("vllm", "sglang") else 0.0)


def test_store_bytes_read_and_write_the_new_keys_and_values():
    eff = _plain(kv_store_kernel=1.0)
    # Llama-3-8B layer, 2 prefills of 1,024 tokens: 2 (read + write) x 2 x 1,024 tokens x 8 KV heads x (128 K + 128 V)
    # x 2 bytes = 16,777,216
    gqa = _rows("attention", batch=2, heads=32, kv_heads=8, head_dim=128, seq_len=1024)
    assert kv_store_bytes(gqa, kernel_work(gqa), eff)[0] == 2 * 2 * 1024 * 8 * 256 * 2 == 16_777_216
    # the same FLOPs as MHA (32 KV heads): 4x the bytes
    mha = _rows("attention", batch=2, heads=32, kv_heads=32, head_dim=128, seq_len=1024)
    assert kv_store_bytes(mha, kernel_work(mha), eff)[0] == 67_108_864
    assert kernel_work(mha).flops[0] == kernel_work(gqa).flops[0]
    # a decode call stores one token per sequence: 2 x 64 x 8 x 256 x 2 = 524,288
    dec = _rows("decode_attention", batch=64, heads=32, kv_heads=8, head_dim=128, context=4096)
    assert kv_store_bytes(dec, kernel_work(dec), eff)[0] == 524_288
    # MLA rows (their own latent cache and kernels) store nothing here
    mla = _rows("decode_attention", batch=8, heads=128, kv_heads=1, head_dim=544, context=64, kv_dim=576, mla=1)
    assert kv_store_bytes(mla, kernel_work(mla), eff)[0] == 0


def test_the_store_runs_before_the_attention_at_the_copy_bandwidth():
    # no floors, memory at 0.8 of 3.35 TB/s with no size half-point: the store adds 16,777,216 / (0.8 x 3.35e12) s
    # (6.26 us) to the call, serially, in both phases
    eff = _plain(kv_store_kernel=1.0)
    for row, nbytes in ((_rows("attention", batch=2, heads=32, kv_heads=8, head_dim=128, seq_len=1024), 16_777_216),
                        (_rows("decode_attention", batch=64, heads=32, kv_heads=8, head_dim=128, context=4096),
                         524_288)):
        added = predict_kernels(row, H100, eff)[0] - predict_kernels(row, H100, _plain())[0]
        assert added == pytest.approx(nbytes / (0.8 * BW), rel=1e-9)
    assert 16_777_216 / (0.8 * BW) == pytest.approx(6.26e-6, rel=1e-3)
    mla = _rows("decode_attention", batch=8, heads=128, kv_heads=1, head_dim=544, context=64, kv_dim=576, mla=1)
    assert predict_kernels(mla, H100, eff)[0] == predict_kernels(mla, H100, _plain())[0]


def test_the_longest_causal_tile():
    # query tile i of n attends i + 1 key tiles (mean (n + 1) / 2): the last is 2n / (n + 1) of the mean; 2,048
    # tokens in 128-row tiles: n = 16, 32/17; one tile: 1; without the mask every tile is alike: 1
    eff = _plain(prefill_head_tiles=1.0)
    for seq_len, longest in ((2048, 32 / 17), (128, 1.0), (100, 1.0), (1024, 16 / 9)):
        row = _rows("attention", batch=1, heads=8, kv_heads=8, head_dim=128, seq_len=seq_len)
        assert longest_tile(kernel_work(row), row, row["kernel"] == "attention")[0] == pytest.approx(longest)
        dense = row.assign(causal=0.0)
        assert longest_tile(kernel_work(dense), dense, dense["kernel"] == "attention")[0] == 1.0
    # a call of fewer tiles than SMs: 1 x 8 heads x 16 tiles = 128 on 132 SMs; causal, the compute term grows by
    # 132/128 x 32/17, without the mask by 132/128 alone
    waves = replace(eff, prefill_tile_waves=1.0)
    for causal, grow in ((1.0, 132 / 128 * 32 / 17), (0.0, 132 / 128)):
        row = _rows("attention", batch=1, heads=8, kv_heads=8, head_dim=128, seq_len=2048, causal=causal)
        w = kernel_work(row)
        t_c = w.flops[0] / (PEAK * 0.5)
        t_m = w.bytes[0] / (BW * 0.8)
        assert predict_kernels(row, H100, waves)[0] == pytest.approx(((t_c * grow) ** 2 + t_m**2) ** 0.5, rel=1e-12)
