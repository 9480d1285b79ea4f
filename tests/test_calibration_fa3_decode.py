"""FlashAttention-3 GQA/MHA decode as SGLang runs it on Hopper (page size 1), by hand: the tile per head dimension
(hopper/tile_size.h, paged non-TMA), the split rule, the key blocks one CTA walks in sequence (decode_block_s, weighted
by the padded tile's work) and the CTAs' query/output tiles (decode_item_tile_s); neutral in the hand-set classes; an
engine fact of SGLang on Hopper only; the staged fit recovers both terms."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from model.calibration.importer import KERNEL_FACTS
from model.hardware import load_device
from model.roofline.decode_splits import fa3_decode_splits, fa3_decode_terms, fa3_paged_tile, xqa_decode_tiles
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.kernels import decode_fallback, kernel_work, predict_kernels

H100 = load_device("h100-sxm")  # 132 SMs


def _plain(**values):
    """H100 hand-set efficiency without floors, with the FA3 decode rule: only the terms under test add time."""
    eff = efficiency_for(H100, calibration=False)
    return replace(eff, kernel_floor_s=0.0, attention_floor_s=0.0, decode_attention_floor_s=0.0,
                   **{"decode_fa3_split": 1.0, **values})


def _decode(*shapes, v_head_dim=np.nan):
    return pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", batch=b, heads=h, kv_heads=hk, head_dim=d,
                              v_head_dim=v_head_dim, context=c) for b, h, hk, d, c in shapes])


def _terms(rows, eff):
    return fa3_decode_terms(decode_fallback(kernel_work(rows), rows, eff, 132.0), rows, eff, 132.0)[:3]


def test_fa3_decode_forms_are_neutral_in_every_hand_set_class():
    for eff in ARCH_DEFAULTS.values():
        assert eff.decode_fa3_split == 0 and eff.decode_block_s == 0 and eff.decode_item_tile_s == 0
    rows = _decode((1, 8, 1, 256, 256), (512, 32, 8, 128, 512))
    chain, ctas, qo_tiles = _terms(rows, efficiency_for(H100, calibration=False))
    assert list(chain) == [0, 0] and list(ctas) == [1, 1] and list(qo_tiles) == [0, 0]


def test_fa3_paged_tile_by_hand():
    # tile_size_fwd_sm90, 2-byte elements, paged_kv_non_TMA, not local: {192, 128} to head_dim 96 (64 with
    # headdim_v 64), {128, 128} to 128, {128, 96} to 192, {128, 80} above
    block_m, block_n = fa3_paged_tile([64, 128, 192, 256])
    assert list(block_m) == [192, 128, 128, 128] and list(block_n) == [128, 128, 96, 80]


def test_fa3_decode_split_chain_and_tiles_by_hand():
    rows = _decode((1, 8, 1, 256, 256), (512, 32, 8, 128, 512), (1, 8, 1, 128, 8192), (1, 8, 1, 512, 1000))
    chain, ctas, qo_tiles = _terms(rows, _plain())
    # 1 sequence, 8 heads on 1 KV head, head_dim 256, 256 keys: 1 query tile of 128 rows, ceil(256 / 80) = 4 key
    # blocks (<= 4: no split); one CTA walks 4 blocks of 128 x 80 x 512 / (128 x 128 x 256) = 1.25 units: 5; its
    # query/output tile 128 x 512 / (128 x 256) = 2 units
    assert chain[0] == 5.0 and ctas[0] == 1 and qo_tiles[0] == 2.0
    # 512 x 8 = 4,096 CTAs (no split: 4 blocks of 128 keys), ceil(4,096 / 132) = 32 waves x 4 blocks of 1 unit
    assert chain[1] == 128.0 and qo_tiles[1] == 4096.0
    # 1 sequence over 8,192 keys at head_dim 128: 64 blocks; static rule: 1 m block, S/132 peaks at S = 64 (0.485),
    # the first S with S/132 >= 0.85 x 0.485 is 55; dynamic: ceil(1 x 1 x 64 x 1.1 / 132) = 1 block per SM, 64
    # splits, cut to 55: 55 CTAs in one wave, each over ceil(64 / 55) = 2 blocks
    assert fa3_decode_splits(1, 8, 1, 8192, 128.0, 128.0, 132.0)[0] == 55
    assert chain[2] == 2.0 and ctas[2] == 55 and qo_tiles[2] == 55.0
    # head_dim 512 is past FA3's compiled head dimensions: another kernel, no terms
    assert chain[3] == 0 and ctas[3] == 1 and qo_tiles[3] == 0
    # MiMo-V2's 192-wide keys with 128-wide values: 96-key blocks, 300 keys -> 4 blocks of 128 x 96 x 320 /
    # 4,194,304 = 0.9375 units; a 128 x 320 query/output tile = 1.25 units
    chain, _, qo_tiles = _terms(_decode((4, 4, 1, 192, 300), v_head_dim=128.0), _plain())
    assert chain[0] == pytest.approx(3.75) and qo_tiles[0] == pytest.approx(5.0)


def test_block_chain_is_a_hard_max_and_tiles_add_to_the_items():
    rows = _decode((1, 8, 1, 256, 256))
    # a 1 ms block unit dominates the tiny call: 5 units, 5 ms
    assert predict_kernels(rows, H100, _plain(decode_block_s=1e-3))[0] == pytest.approx(5e-3, rel=1e-12)
    # the query/output tiles are work items: 2 units at 1 ms equal one 2 ms item of the same CTA
    tiles = predict_kernels(rows, H100, _plain(decode_item_tile_s=1e-3))[0]
    items = predict_kernels(rows, H100, _plain(decode_item_s=2e-3))[0]
    assert tiles == pytest.approx(items, rel=1e-12) and tiles > 1.9e-3
    # split calls count their CTAs as items: 55 per (sequence, KV head) at 8,192 keys
    split = _decode((1, 8, 1, 128, 8192))
    assert predict_kernels(split, H100, _plain(decode_item_s=1e-3))[0] == pytest.approx(
        predict_kernels(split, H100, replace(_plain(), decode_fa3_split=0.0, decode_item_s=55e-3))[0], rel=1e-12)


def test_fa3_decode_is_an_engine_fact_of_sglang_on_hopper():
    assert KERNEL_FACTS[("sglang", "hopper")]["decode_fa3_split"] == 1.0
    for key, facts in KERNEL_FACTS.items():
        if key != ("sglang", "hopper"):
            assert "decode_fa3_split" not in facts, key


def test_staged_fit_recovers_the_block_step_and_the_tile_cost():
    from model.calibration.fit import predictor
    from model.calibration.importer import fit_rows
    from tests.test_calibration_import import TRUE, synthetic_rows

    facts = {"decode_fa3_split": 1.0}
    fa3 = dict(decode_block_s=1.5e-6, decode_item_tile_s=10e-9)
    true = replace(TRUE, **facts, **fa3)
    # decode rows at three head dimensions (the tile terms need more than one), few and many CTAs, short and long
    extra = pd.DataFrame([dict(kernel="decode_attention", dtype="bf16", family="attention_decode", batch=b, heads=h,
                               kv_heads=hk, head_dim=d, context=c, size=2.0 * b * hk * d * c)
                          for b in (1, 4, 64, 512) for c in (2, 64, 256, 1024, 4096) for d in (64, 256)
                          for h, hk in ((8, 1), (32, 8))])
    extra = extra.assign(measured_s=predictor(extra.assign(measured_s=1.0), H100)(true)
                         * np.exp(np.random.default_rng(4).normal(0, 0.01, len(extra))))
    result = fit_rows(pd.concat([synthetic_rows(true), extra], ignore_index=True), H100, facts=facts)
    assert result.params["decode_fa3_split"] == 1.0
    for name, tol in {"decode_block_s": 0.15, "decode_item_tile_s": 0.3}.items():
        assert result.params[name] == pytest.approx(fa3[name], rel=tol), name
    held = result.rows[(result.rows["split"] != "fit") & (result.rows["family"] == "attention_decode")]
    assert float(np.median(np.abs(held["after"] / held["measured_s"] - 1))) < 0.03


def _xqa(**values):
    """H100 hand-set efficiency without floors, with TensorRT-LLM's XQA facts."""
    return replace(_plain(decode_fa3_split=0.0), decode_group_limit=32.0, decode_group_min_fill=0.25,
                   decode_split_tokens=128.0, decode_xqa_tile=1.0, **values)


def test_xqa_query_output_tiles_by_hand():
    eff = _xqa()
    rows = _decode((512, 32, 8, 256, 2), (512, 64, 8, 64, 2), (1, 64, 1, 128, 2), (4, 32, 8, 128, 8192))
    w = decode_fallback(kernel_work(rows), rows, eff, 132.0)
    tiles = xqa_decode_tiles(w, rows, eff, 132.0)
    # 4 query heads per KV head pad to one 16-row tile: 512 x 8 CTAs x 16 x 512 / (16 x 256) = 8,192 units
    assert tiles[0] == 8192.0
    # 8 per KV head, head_dim 64: 4,096 CTAs x 16 x 128 / 4,096 = 2,048 units
    assert tiles[1] == 2048.0
    # 64 query heads per KV head run the per-query-head fallback kernel: no XQA tile
    assert tiles[2] == 0.0
    # a multi-block call: history 8,191 // 128 = 63 blocks, at most round(sqrt(504)) = 22; 4 x 8 x 22 / 132 = 5.3
    # waves <= 8: 22 sub-sequences per (sequence, KV head), each with its tile: 32 x 22 x 16 x 256 / 4,096 = 704
    assert tiles[3] == 704.0
    # neutral without the fact, and the hand-set classes have none
    assert not xqa_decode_tiles(w, rows, replace(eff, decode_xqa_tile=0.0), 132.0).any()
    assert all(e.decode_xqa_tile == 0 and e.decode_fallback_item_s == 0 for e in ARCH_DEFAULTS.values())


def test_fallback_kernel_ctas_by_hand():
    eff = _xqa(decode_item_s=0.0)
    # plain MHA (32 query heads on 32 KV heads) runs the fallback kernel: 512 x 32 = 16,384 CTAs at 1 ms each,
    # 16.384 s, far above the roofline terms of 2 keys
    mha = _decode((512, 32, 32, 128, 2))
    slow = predict_kernels(mha, H100, replace(eff, decode_fallback_item_s=1e-3))[0]
    assert slow == pytest.approx(16.384, rel=1e-3)
    # grouped (XQA) rows do not pay it
    gqa = _decode((512, 32, 8, 128, 2))
    paid = replace(eff, decode_fallback_item_s=1e-3)
    assert predict_kernels(gqa, H100, paid)[0] == predict_kernels(gqa, H100, eff)[0]


def test_staged_fit_recovers_the_fallback_ctas():
    from model.calibration.importer import fit_rows
    from tests.test_calibration_import import TRUE, synthetic_rows

    facts = {"decode_group_limit": 32.0, "decode_split_tokens": 128.0}
    true = replace(TRUE, decode_fallback_mem_scale=1.1, decode_fallback_item_s=9e-9, **facts)
    result = fit_rows(synthetic_rows(true), H100, facts=facts)
    assert result.params["decode_fallback_item_s"] == pytest.approx(9e-9, rel=0.25)
    assert result.params["decode_fallback_mem_scale"] == pytest.approx(1.1, rel=0.05)


def test_fa3_calls_merge_by_fa3s_split_rule():
    # SGLang's split facts (128-key blocks, one wave) would split 1 sequence over 512 keys (511 // 128 = 3 blocks);
    # FA3 does not (4 key blocks of 128 at head_dim 128: never split), so no merge cost; over 8,192 keys both split
    facts = {"decode_split_tokens": 128.0, "decode_split_waves": 1.0}
    eff, merged = _plain(**facts), _plain(**facts, decode_split_s=1e-3)
    short, long = _decode((1, 8, 1, 128, 512)), _decode((1, 8, 1, 128, 8192))
    assert predict_kernels(short, H100, merged)[0] == predict_kernels(short, H100, eff)[0]
    assert predict_kernels(long, H100, merged)[0] - predict_kernels(long, H100, eff)[0] == pytest.approx(1e-3)
    flash = replace(merged, decode_fa3_split=0.0)  # the one-wave rule alone merges the short call too
    assert predict_kernels(short, H100, flash)[0] - predict_kernels(short, H100, replace(eff, decode_fa3_split=0.0))[
        0] == pytest.approx(1e-3)
