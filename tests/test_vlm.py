"""VLM token accounting (model.techniques.vision_language): visual tokens, encoder, TTFT, iso-FLOP budgets, prefill memory."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.techniques.vision_language import (
    CLIP_VIT_L_336, anyres_partitions, encoder_deployment, encoder_seconds, iso_flop_visual_tokens, largest_llm_within,
    prefill_peak_memory, prefill_seconds, visual_tokens, vlm_ttft,
)


def test_visual_tokens_by_hand():
    assert anyres_partitions((2, 2)) == 5  # 2x2 grid + base view
    assert visual_tokens(5, 576) == 2880  # LLaVA-NeXT AnyRes
    assert visual_tokens(5, 576, keep=0.2) == 576  # HiRED 20% budget
    assert visual_tokens(1, 144, frames=32) == 144 * 32  # video: tokens per frame x frames
    assert visual_tokens(1, 576, keep=1 / 576) == 1
    with pytest.raises(RidgeplanError):
        visual_tokens(1, 576, keep=0.0)


def test_clip_encoder_shape():
    assert CLIP_VIT_L_336.patches == 576 and CLIP_VIT_L_336.encoder_tokens == 577  # (336/14)^2 + class token
    # 24 x (4 d^2 + 2 d w) = 24 x (4 x 1024^2 + 2 x 1024 x 4096) = 302M (CLIP ViT-L/14 vision tower: ~304M)
    assert CLIP_VIT_L_336.params() == 24 * (4 * 1024**2 + 2 * 1024 * 4096)


def test_ttft_is_encoder_plus_prefill():
    llm = deployment("llama-2-7b", "a100-sxm-80gb")
    enc = encoder_deployment(CLIP_VIT_L_336, "a100-sxm-80gb")
    r = vlm_ttft(llm, enc, CLIP_VIT_L_336, partitions=5, text_tokens=40, keep=0.2)
    assert r["tokens"] == 576 + 40
    assert r["ttft_s"] == pytest.approx(encoder_seconds(enc, CLIP_VIT_L_336, 5) + prefill_seconds(llm, 616))
    full = vlm_ttft(llm, enc, CLIP_VIT_L_336, partitions=5, text_tokens=40)
    assert full["encoder_s"] == pytest.approx(r["encoder_s"])  # dropping happens after the encoder
    assert full["prefill_s"] > 3 * r["prefill_s"]


def test_iso_flop_visual_tokens_by_hand():
    # budget of 7B with 576 + 50 tokens: 2 x 6.7e9 x 626; a 13B model affords 6.7 x 626 / 13 - 50 visual tokens
    budget = 2 * 6.7e9 * 626
    assert iso_flop_visual_tokens(13e9, budget, 50) == pytest.approx(6.7 * 626 / 13 - 50)
    with pytest.raises(RidgeplanError):
        iso_flop_visual_tokens(0, budget, 50)


def test_prefill_peak_memory_by_hand():
    llm = deployment("llama-2-7b", "a100-sxm-80gb", weights="fp16")
    s = 1000
    m = prefill_peak_memory(llm, s)
    assert m["kv_bytes"] == pytest.approx(s * 32 * 2 * 4096 * 2)  # 524,288 B per token
    assert m["attention_scores_bytes"] == pytest.approx(32 * s * s * (2 + 4))  # fp16 scores + fp32 softmax
    assert m["logits_bytes"] == pytest.approx(s * 32000 * (4 + 2))
    assert m["peak_bytes"] == pytest.approx(m["weights_bytes"] + m["kv_bytes"] + max(
        m["attention_scores_bytes"], m["mlp_bytes"], m["logits_bytes"]))
    fused = prefill_peak_memory(llm, s, eager_attention=False, all_logits=False)
    assert fused["peak_bytes"] < m["peak_bytes"]


def test_largest_llm_within_budget():
    small = deployment("llama-2-7b", "h100-sxm")
    big = deployment("llama-2-13b", "h100-sxm")
    budget = prefill_seconds(small, 626)
    assert largest_llm_within([("7b", small), ("13b", big)], budget, 51) == "13b"
    assert largest_llm_within([("7b", small), ("13b", big)], budget, 626) == "7b"
    assert largest_llm_within([("7b", small)], budget / 100, 626) is None
