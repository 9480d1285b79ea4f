"""Multi-token-prediction speculative decoding of DeepSeek-style checkpoints: memory and time of the draft."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.serving.batching import steady_state
from model.serving.mtp import MTP_ACCEPTED_TOKENS, mtp_acceptance, mtp_draft_step_s, mtp_modules, mtp_resident_bytes
from model.serving.policy import engine_policy
from model.serving.speculation_offload import Speculation


def test_mtp_module_memory_by_hand():
    # DeepSeek-V3's MTP module = one MoE layer + eh_proj (2 x 7168 x 7168), FP8 weights, TP8 (MoE-TP 8):
    # MLA: q_a 7168x1536 and kv_a 7168x576 replicated on every rank; q_b 1536x128x192, kv_b 512x128x256 and
    # o 128x128x7168 split 8 ways; 256 routed + 1 shared experts of 3x7168x2048 split 8 ways; router 7168x256 (fp8
    # as a dense GEMM); eh_proj split 8 ways; two RMSNorms (7168 + 1536 + 512 + 7168 bf16 vectors).
    replicated = 7168 * 1536 + 7168 * 576 + 7168 * 256
    split = (1536 * 128 * 192 + 512 * 128 * 256 + 128 * 128 * 7168 + 257 * 3 * 7168 * 2048) / 8
    eh = 2 * 7168 * 7168 / 8
    norms = 2 * (7168 * 2 + 1536 + 512)
    d = deployment("deepseek-v3", "b200", weights="fp8", kv="fp8", tp=8, mtp_layers=1)
    assert mtp_modules(d.arch) == 1
    assert mtp_resident_bytes(d) == pytest.approx(replicated + split + eh + norms, rel=2e-3)
    assert mtp_resident_bytes(deployment("deepseek-v3", "b200", weights="fp8", tp=8)) == 0.0


def test_mtp_is_refused_where_the_checkpoint_has_none():
    with pytest.raises(RidgeplanError) as e:
        deployment("llama-3.1-8b", "h100-sxm", mtp_layers=1)
    assert e.value.field == "mtp_layers" and "num_nextn_predict_layers" in str(e.value)
    with pytest.raises(RidgeplanError):
        deployment("deepseek-v3", "b200", weights="fp8", tp=8, mtp_layers=2)


def test_mtp_costs_memory_and_buys_time_at_small_batch():
    d = deployment("deepseek-v3", "b200", weights="fp8", kv="fp8", tp=8)
    spec = Speculation.multi_token_prediction(k=1)
    # one draft: acceptance length 1.92 (TensorRT-LLM blog 1) = 1 + a, so a = 0.92
    assert spec.alpha == pytest.approx(0.92) and spec.tokens_per_step == pytest.approx(1.92)
    assert "TensorRT-LLM tech blog 1" in spec.describe()
    pol = engine_policy("sglang")
    base = steady_state(d, pol, 1024, 512, concurrency=4)
    mtp = steady_state(d, pol, 1024, 512, concurrency=4, speculation=spec)
    gain = float(base.tpot_s[0] / mtp.tpot_s[0])
    assert 1.3 < gain < 1.92  # under the 1.92 tokens per verification: the draft and the 2-token verify cost
    # the draft token: one MoE layer of 58 plus the head, a small share of a target step
    step = float(d.step(4, 1, 1500).time_s[0])
    draft = float(mtp_draft_step_s(d, 4, 1500)[0])
    assert step / 61 < draft < step / 5
    # the pool holds fewer sequences: the module's weights and its KV layer
    big = steady_state(d, pol, 1024, 512)
    big_mtp = steady_state(d, pol, 1024, 512, speculation=spec)
    assert float(big_mtp.concurrency[0]) <= float(big.concurrency[0])


def test_mtp_acceptance_reproduces_the_measured_acceptance_lengths_by_hand():
    # TensorRT-LLM blog 1, "Autoregressive MTP Layers": 1.92 / 2.58 / 2.82 / 2.99 / 3.01 tokens per step
    assert MTP_ACCEPTED_TOKENS == {1: 1.92, 2: 2.58, 3: 2.82, 4: 2.99, 5: 3.01}
    # k = 2: 1 + a + a^2 = 2.58 -> a = (-1 + sqrt(1 + 4 x 1.58)) / 2 = (-1 + sqrt(7.32)) / 2 = 0.852776
    assert mtp_acceptance(2) == pytest.approx((-1 + 7.32 ** 0.5) / 2, rel=1e-9)
    # k = 3: 1 + a + a^2 + a^3 = 2.82 at a = 0.77006 (0.77006 + 0.59299 + 0.45664 = 1.81969 ~ 1.82)
    a3 = mtp_acceptance(3)
    assert 1 + a3 + a3 ** 2 + a3 ** 3 == pytest.approx(2.82, rel=1e-9) and a3 == pytest.approx(0.77006, abs=1e-4)
    # the per-draft rate falls with depth (a module trained for depth 1 reused deeper), and beyond five drafts
    # the length stays at the five-draft measurement
    rates = [mtp_acceptance(k) for k in range(1, 8)]
    assert all(x > y for x, y in zip(rates, rates[1:]))
    assert Speculation.multi_token_prediction(7).tokens_per_step == pytest.approx(3.01)
    assert Speculation.multi_token_prediction(3, alpha=0.9).alpha == 0.9  # a given acceptance is kept
    with pytest.raises(RidgeplanError):
        mtp_acceptance(0)


def test_mtp_draft_round_runs_its_first_forward_over_the_verified_positions():
    from model.serving.mtp import _draft_forward_s, mtp_draft_s

    d = deployment("deepseek-v3", "b200", weights="fp8", kv="fp8", tp=8, mtp_layers=1)
    b, ctx = 64.0, 2048.0
    one = float(mtp_draft_step_s(d, b, ctx)[0])
    # TensorRT-LLM MTPEagleWorker: k = 3 drafts = one forward over 4 tokens per sequence + 2 single-token forwards
    first = float(_draft_forward_s(d, b, 4.0, ctx)[0])
    assert float(mtp_draft_s(d, b, ctx, 3)[0]) == pytest.approx(first + 2 * one, rel=1e-12)
    assert first > one  # four tokens per sequence through the MoE layer and attention cost more than one
    # k = 1: the one forward over both verified positions
    assert float(mtp_draft_s(d, b, ctx, 1)[0]) == pytest.approx(float(_draft_forward_s(d, b, 2.0, ctx)[0]), rel=1e-12)
