"""Issue 15's fifth-round attention forms, by hand: SGLang's Triton kernel at head dimension 192 on Blackwell
(attention_generic_head_dim), prefill kernels that tile every query head apart (prefill_head_tiles, trtllm-gen's
context kernels) and prefill tiles run in whole waves of the SMs (prefill_tile_waves); each neutral in the hand-set
classes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from model.roofline.efficiency_sets import ARCH_DEFAULTS
from model.roofline.kernels import kernel_work, predict_kernels, prefill_head_tiles

# the same H100 and plain efficiency as the attention forms' tests
from tests.test_calibration_attention_forms import H100, PEAK, _plain, _rows


def test_the_forms_are_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.attention_generic_head_dim == 0 and eff.prefill_head_tiles == 0 and eff.prefill_tile_waves == 0
        assert eff.prefill_v_slice_dim == 0


def test_the_generic_head_dimension_runs_the_generic_kernel_in_both_phases():
    # with no floors a kernel at half the speed (compute and KV reads) takes exactly twice the time; only head_dim 192
    eff = _plain(attention_generic_head_dim=192.0, attention_wide_scale=0.5)
    plain = _plain()
    for kernel, shape in (("attention", {"seq_len": 2048}), ("decode_attention", {"context": 4096})):
        hd192 = _rows(kernel, batch=4, heads=64, kv_heads=4, head_dim=192, **shape)
        hd256 = _rows(kernel, batch=4, heads=64, kv_heads=4, head_dim=256, **shape)
        assert predict_kernels(hd192, H100, eff)[0] == pytest.approx(2 * predict_kernels(hd192, H100, plain)[0],
                                                                     rel=1e-12)
        assert predict_kernels(hd256, H100, eff)[0] == predict_kernels(hd256, H100, plain)[0]
    # MLA rows never take it
    mla = _rows("decode_attention", batch=8, heads=128, kv_heads=1, head_dim=192, context=64, kv_dim=576, mla=1)
    assert predict_kernels(mla, H100, eff)[0] == predict_kernels(mla, H100, plain)[0]


def test_head_tiles_count_query_rows_per_query_head():
    # 8 sequences of 16 tokens, 32 heads on 4 KV heads: packed, a KV head's tile holds 16 x 8 = 128 query rows and
    # the call runs 8 x 4 x ceil(128/128) = 32 tiles; one CTA per query head: 16 rows, 8 x 32 x ceil(16/128) = 256
    row = _rows("attention", batch=8, heads=32, kv_heads=4, head_dim=128, seq_len=16)
    w = kernel_work(row)
    assert w.shape_m[0] == 128
    assert prefill_head_tiles(w, row, _plain()).shape_m[0] == 128
    assert prefill_head_tiles(w, row, _plain(prefill_head_tiles=1.0)).shape_m[0] == 16
    tile = _plain(prefill_tile_s=10e-9)
    extra_packed = predict_kernels(row, H100, tile)[0] - predict_kernels(row, H100, _plain())[0]
    heads = replace(tile, prefill_head_tiles=1.0)
    extra_heads = predict_kernels(row, H100, heads)[0] - predict_kernels(row, H100, _plain(prefill_head_tiles=1.0))[0]
    # the tiles add to the compute term, which the p = 2 corner combines with the memory term: compare compute alone
    flops = w.flops[0]
    t_c = flops / (PEAK * 0.5)
    t_m = w.bytes[0] / (H100.memory.bandwidth_bytes_per_s * 0.8)
    assert extra_packed == pytest.approx(((t_c + 32 * 10e-9) ** 2 + t_m**2) ** 0.5 - (t_c**2 + t_m**2) ** 0.5,
                                         rel=1e-9)
    assert extra_heads == pytest.approx(((t_c + 256 * 10e-9) ** 2 + t_m**2) ** 0.5 - (t_c**2 + t_m**2) ** 0.5,
                                        rel=1e-9)
    # with the query half-point on, fewer rows per tile mean a lower fill: 16/(16+16) = 0.5 against 128/144
    half = replace(_plain(), attention_q_half=16.0)
    assert predict_kernels(row, H100, replace(half, prefill_head_tiles=1.0))[0] > predict_kernels(row, H100, half)[0]


def test_prefill_tiles_run_in_whole_waves():
    # 1 sequence of 2048 tokens, 8 heads on 8 KV heads: 1 x 8 x ceil(2048/128) = 128 tiles on 132 SMs, one wave
    # 128/132 full, and under the causal mask its 16th query tile attends 16 key tiles against the mean 17/2: the
    # call takes that tile, 32/17 of a mean one: the compute term grows by 132/128 x 32/17; 2 sequences: 256 tiles,
    # 2 waves at 256/264 (2 >= 32/17): by 264/256; 33 sequences: 4,224 tiles = 32 whole waves: unchanged
    eff = _plain(prefill_tile_waves=1.0)
    for batch, grow in ((1, 132 / 128 * 32 / 17), (2, 264 / 256), (33, 1.0)):
        row = _rows("attention", batch=batch, heads=8, kv_heads=8, head_dim=128, seq_len=2048)
        w = kernel_work(row)
        t_c = w.flops[0] / (PEAK * 0.5)
        t_m = w.bytes[0] / (H100.memory.bandwidth_bytes_per_s * 0.8)
        assert predict_kernels(row, H100, _plain())[0] == pytest.approx((t_c**2 + t_m**2) ** 0.5, rel=1e-12)
        assert predict_kernels(row, H100, eff)[0] == pytest.approx(((t_c * grow) ** 2 + t_m**2) ** 0.5, rel=1e-12)
    # decode rows are not tiled this way
    dec = _rows("decode_attention", batch=1, heads=8, kv_heads=8, head_dim=128, context=2048)
    assert predict_kernels(dec, H100, eff)[0] == predict_kernels(dec, H100, _plain())[0]


def test_value_heads_past_the_slice_width_recompute_qk_per_slice():
    # head_dim 512 over 256-wide value slices: 2 CTAs per head, each Q.K^T (2 x 512 FLOPs per pair) and half of P.V
    # (2 x 256 each): 2 x 512 x 2 + 2 x 512 = 3,072 FLOPs per pair in place of 4 x 512 = 2,048, 1.5x; the tiles double
    from model.roofline.kernels import prefill_value_slices

    wide = _rows("attention", batch=2, heads=16, kv_heads=2, head_dim=512, seq_len=4096)
    flash = _rows("attention", batch=2, heads=16, kv_heads=2, head_dim=256, seq_len=4096)
    eff = _plain(prefill_v_slice_dim=256.0)
    assert prefill_value_slices(kernel_work(wide), wide, eff).flops[0] == 1.5 * kernel_work(wide).flops[0]
    assert prefill_value_slices(kernel_work(flash), flash, eff).flops[0] == kernel_work(flash).flops[0]
    assert prefill_value_slices(kernel_work(wide), wide, _plain()).flops[0] == kernel_work(wide).flops[0]
    # tiles: 2 x 2 KV heads x ceil(4096 x 8 / 128) = 1,024 packed, x 2 slices = 2,048 at 10 ns each
    w = kernel_work(wide)
    t_c = 1.5 * w.flops[0] / (PEAK * 0.5)
    t_m = w.bytes[0] / (H100.memory.bandwidth_bytes_per_s * 0.8)
    tiles = replace(eff, prefill_tile_s=10e-9)
    assert predict_kernels(wide, H100, tiles)[0] == pytest.approx(((t_c + 2048 * 10e-9) ** 2 + t_m**2) ** 0.5,
                                                                  rel=1e-12)
    # decode rows keep their whole head
    dec = _rows("decode_attention", batch=8, heads=16, kv_heads=2, head_dim=512, context=4096)
    assert predict_kernels(dec, H100, eff)[0] == predict_kernels(dec, H100, _plain())[0]
