"""Diffusion cost: latent tokens, non-causal transformer stacks, DiT steps, guidance, low-rank branch, patch
parallelism, U-Net and VAE counts (model.techniques.diffusion, model.techniques.encoder, model.techniques.unet)."""

from __future__ import annotations

import numpy as np
import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.precision import Precision
from model.techniques.diffusion import (
    COGVIDEOX_2B, COGVIDEOX_5B, FLUX1, LTX_VIDEO, PIXART_ALPHA, PatchParallel, amdahl_speedup, attention_window,
    dit_deployment, dit_step, evaluations_per_step, latent_channels, latent_tokens, linear_shapes, low_rank_branch,
    patch_parallel_step, sampling_seconds, schedule_seconds, share_for_reduction, share_for_speedup,
)
from model.techniques.encoder import bidirectional_transformer, keys_per_query
from model.techniques.unet import (
    SD_V1, SD_VAE_DECODER, SDXL, _Ops, conv_net_cost, unet_ops, unet_step_cost, vae_decoder_ops,
)


# --- tokens and latents ------------------------------------------------------------------------------------

def test_latent_tokens_by_hand():
    # LTX-Video: (768/32) (512/32) (120/8) = 24 x 16 x 15 = 5,760; a causal VAE keeps frame 0: 1 + ceil(120/8) = 16
    assert latent_tokens(768, 512, 120, spatial=32, temporal=8) == 5760
    assert latent_tokens(768, 512, 121, spatial=32, temporal=8, causal_first_frame=True) == 24 * 16 * 16
    # FLUX at 1024^2: VAE 8, patch 2 -> 64 x 64 = 4,096 image tokens (+512 text in the joint sequence)
    assert latent_tokens(1024, 1024, spatial=8, patch=2) == 4096
    assert FLUX1.tokens(1024, 1024) == 4096 + 512
    # CogVideoX: 49 frames -> 1 + 48/4 = 13 latent frames; 720x480 -> 90x60 latent -> 45x30 patches
    assert COGVIDEOX_2B.latent_tokens(720, 480, 49) == 13 * 45 * 30 == 17550
    # ceil on both sides: 1000 px / 16 -> 63 (62.5 rounds up)
    assert latent_tokens(1000, 16, spatial=8, patch=2) == 63
    with pytest.raises(RidgeplanError):
        latent_tokens(0, 512)


def test_latent_channels():
    assert latent_channels(32, 8, 192) == pytest.approx(128.0)  # 32*32*8*3 / 192
    assert latent_channels(8, 1, 48) == pytest.approx(4.0)  # SD VAE: 8*8*3 / 48


def test_amdahl_helpers_by_hand():
    # CLEAR: 1/((1 - f) + f * 0.005) = 6.3 -> f = (1 - 1/6.3) / 0.995 = 0.84550
    f = share_for_speedup(6.3, 0.995)
    assert f == pytest.approx((1 - 1 / 6.3) / 0.995)
    assert amdahl_speedup(f, 0.995) == pytest.approx(6.3)
    assert share_for_reduction(0.45, 0.92) == pytest.approx(0.45 / 0.92)
    with pytest.raises(RidgeplanError):
        share_for_speedup(50.0, 0.5)  # more than removing the whole part allows
    with pytest.raises(RidgeplanError):
        amdahl_speedup(1.5, 0.5)


# --- non-causal transformer stacks ---------------------------------------------------------------------------

def _gemm_attention_flops(dep, batch, tokens, context=0):
    s = dep.step(batch, tokens, context, n_logit=tokens)
    kinds = np.array([op.kind for op in s.ops.ops])
    rows = np.isin(kinds, ("gemm", "attention"))
    return float(s.ops.counts[rows] @ s.ops.flops[rows, 0])


def test_bidirectional_stack_flops_by_hand():
    d, L, h, w, out, n = 64, 3, 4, 256, 8, 100
    arch = bidirectional_transformer("toy", hidden=d, layers=L, heads=h, mlp_width=w, out_dim=out)
    dep = deployment(arch, "h100-sxm", attention_convention="square")
    # per layer: qkv 2N(3d)d + o 2N d d + MLP 2N(2 d w) + attention 4 N^2 d (QK^T and AV over all N keys)
    hand = L * (2 * n * 4 * d * d + 2 * n * 2 * d * w + 4 * n * n * d) + 2 * n * d * out
    assert _gemm_attention_flops(dep, 1, n) == pytest.approx(hand)
    # window W keys per query: attention 4 N W d per layer
    win = deployment(bidirectional_transformer("toy-w", hidden=d, layers=L, heads=h, mlp_width=w, out_dim=out,
                                               window=10), "h100-sxm", attention_convention="square")
    assert _gemm_attention_flops(win, 1, n) == pytest.approx(hand - L * 4 * n * (n - 10) * d)
    # gated stacks (T5 v1.1, Llama-style): 3 d w MLP weights
    g = bidirectional_transformer("toy-g", hidden=d, layers=L, heads=h, mlp_width=w, out_dim=out, gated=True)
    assert g.groups[0].mlp.gated and not g.groups[0].parallel_block


def test_keys_per_query_variants():
    assert keys_per_query("full", 1000, 64) is None
    assert keys_per_query("sparse", 1000, 64, keep=0.031) == 31
    assert keys_per_query("local", 1000, 64, window=100) == 100
    assert keys_per_query("linear", 1000, 64) == 64  # 4 d_h^2 per token and head == softmax over d_h keys
    with pytest.raises(RidgeplanError):
        keys_per_query("sparse", 1000, 64)
    assert attention_window(FLUX1, "local", 500, window=1000) is None  # a window wider than the sequence is full


@pytest.mark.parametrize("spec, published, tol", [
    (FLUX1, 12e9, 0.02), (PIXART_ALPHA, 0.6e9, 0.03), (COGVIDEOX_5B, 5.5e9, 0.03), (LTX_VIDEO, 1.9e9, 0.05),
])
def test_dit_specs_match_published_sizes(spec, published, tol):
    assert spec.total_params() == pytest.approx(published, rel=tol)


def test_flux_stack_params_by_hand():
    d, w = 3072, 12288
    assert FLUX1.stack_params() == 57 * (4 * d * d + 2 * d * w)  # 12 d^2 per block = 6.45B
    # cross-attention specs fold q and o into the MLP width: PixArt 4608 + 1152
    assert PIXART_ALPHA.stack_mlp_width == 4608 + 1152


def test_dit_step_is_compute_bound_and_attention_grows():
    dep = dit_deployment(FLUX1, "h100-sxm")
    small, big = dit_step(dep, FLUX1.tokens(1024, 1024)), dit_step(dep, FLUX1.tokens(2048, 2048))
    for s in (small, big):
        assert 0.3 < s.mfu(dep.device.peak("bf16")) <= 1.0
        assert s.attention_s + s.gemm_s <= s.time_s
    assert big.attention_share > small.attention_share
    # weights: 57 blocks x 12 d^2 in bf16 (+ norms, embeddings), plus extra parameters when asked
    assert small.weights_bytes == pytest.approx(FLUX1.stack_params() * 2, rel=0.01)
    with_extra = dit_step(dep, 4608, extra_params=FLUX1.extra_params)
    assert with_extra.weights_bytes - small.weights_bytes == pytest.approx(FLUX1.extra_params * 2)


def test_w4a4_beats_weight_only_on_compute_bound_steps():
    n = FLUX1.tokens(1024, 1024)
    w4a16 = dit_step(dit_deployment(FLUX1, "rtx-4090-laptop", weights="int4"), n)
    w4a4 = dit_step(dit_deployment(FLUX1, "rtx-4090-laptop", weights="int4", activations="int4"), n)
    bf16 = dit_step(dit_deployment(FLUX1, "rtx-4090-laptop"), n)
    assert w4a4.time_s < bf16.time_s < w4a16.time_s  # weight-only pays dequantization on a compute-bound step
    assert w4a4.weights_bytes < 0.3 * bf16.weights_bytes


# --- guidance and schedules ------------------------------------------------------------------------------------

def test_sampling_seconds_by_guidance():
    def step(batch):
        return 1.0 + batch  # any increasing cost
    assert sampling_seconds(step, 10, "cfg") == pytest.approx(10 * step(2))  # one batch-2 pass per step
    assert sampling_seconds(step, 10, "cfg-sequential") == pytest.approx(20 * step(1))
    assert sampling_seconds(step, 10, "distilled") == pytest.approx(10 * step(1))
    assert sampling_seconds(step, 10, "rcfg-onetime") == pytest.approx(11 * step(1))  # + one negative pass
    assert evaluations_per_step("rcfg-self", 4) == (1, 1.0)
    with pytest.raises(RidgeplanError):
        sampling_seconds(step, 10, "cfg++")
    assert schedule_seconds(lambda t: t / 100, [(4, 400), (20, 100), (4, 400)]) == pytest.approx(4 * 4 + 20 + 4 * 4)


def test_low_rank_branch_by_hand():
    dep = dit_deployment(FLUX1, "rtx-4090-laptop", weights="int4", activations="int4")
    n, r = 4608, 32
    sum_kn = 57 * (8 * 3072 + 2 * 12288)  # per block: qkv (d + 3d) + o (2d) + fc1 (d + w) + fc2 (w + d)
    assert sum(k + m for k, m in linear_shapes(FLUX1)) == sum_kn
    branch = low_rank_branch(FLUX1, dep, n, r)
    assert branch["flops"] == pytest.approx(2 * n * r * sum_kn)
    assert branch["bytes"] == pytest.approx(2 * r * sum_kn)
    peak = dep.device.peak("bf16") * dep.eff.gemm_max("bf16")
    assert branch["seconds"] == pytest.approx(branch["flops"] / peak)


# --- patch parallelism -----------------------------------------------------------------------------------------

def test_patch_parallel_hand_checks():
    dep = dit_deployment(PIXART_ALPHA, "h100-sxm")
    n = 4096
    one = patch_parallel_step(dep, n, PatchParallel(1))
    assert one["speedup"] == 1.0 and one["comm_s"] == 0.0
    full = patch_parallel_step(dep, n, PatchParallel(4, conditioned=1.0))
    part = patch_parallel_step(dep, n, PatchParallel(4, conditioned=0.3))
    # every device gathers the K/V of the conditioned share of the latent for every layer:
    # L x c N x (2 d) x 2 B, of which (p-1)/p arrives from the other devices
    hand = 28 * 1.0 * n * 2 * 1152 * 2 * 3 / 4
    assert full["comm_bytes"] == pytest.approx(hand)
    assert part["comm_bytes"] == pytest.approx(0.3 * hand)
    assert part["compute_s"] < full["compute_s"]  # fewer stale keys per query
    # with c = 1 each device's queries see all N keys: its attention FLOPs are 1/p of the whole step's
    def attn(s):
        rows = [op.kind == "attention" for op in s.ops.ops]
        return float(s.ops.counts[rows] @ s.ops.flops[rows, 0])

    assert attn(dep.step(1, n // 4, n - n // 4, n_logit=1)) == pytest.approx(attn(dep.step(1, n, 0, n_logit=1)) / 4)
    sync = patch_parallel_step(dep, n, PatchParallel(4, conditioned=1.0, stale=False))
    assert sync["step_s"] == pytest.approx(sync["compute_s"] + sync["comm_s"])
    assert full["step_s"] == pytest.approx(max(full["compute_s"], full["comm_s"]))


# --- U-Nets and VAE decoders ------------------------------------------------------------------------------------

def _macs(ops: _Ops, kinds=("gemm",)) -> float:
    a = ops.arrays()
    return float(a["flops"][np.isin(np.array(ops.kind), kinds)].sum() / 2)


def test_resblock_macs_by_hand():
    ops = _Ops(batch=1)
    ops.resblock("r", 320, 320, 4096)
    assert _macs(ops) == pytest.approx(2 * 4096 * 9 * 320 * 320)  # two 3x3 convs
    ops = _Ops(batch=2)
    ops.resblock("r", 640, 320, 1024)
    assert _macs(ops) == pytest.approx(2 * 1024 * (9 * 640 * 320 + 9 * 320 * 320 + 640 * 320))  # + 1x1 skip


def test_sd_unet_and_vae_match_public_counts():
    sd = unet_ops(SD_V1, 64, 64)
    # conv + linear MACs of the SD-v1.4 U-Net at 512x512: 339G in BK-SDM's thop count (external, verify)
    assert _macs(sd) == pytest.approx(339e9, rel=0.02)
    # attention matmuls: QK^T + AV = 2 P^2 c per self-attention layer and 2 P 77 c per cross-attention layer,
    # 5 layers at 64^2 (c 320), 32^2 (640), 16^2 (1280) and one mid layer at 8^2 (1280)
    levels = [(4096, 320, 5), (1024, 640, 5), (256, 1280, 5), (64, 1280, 1)]
    attn = sum(n * 2 * (p * p * c + p * 77 * c) for p, c, n in levels)
    assert _macs(sd, ("attention",)) == pytest.approx(attn)
    # weights: 859.5M published; the counted convs/linears miss the time-embedding projections (~25M)
    assert sum(sd.params) == pytest.approx(859.52e6, rel=0.04)
    assert sum(unet_ops(SDXL, 64, 64).params) == pytest.approx(2.567e9, rel=0.02)
    # SD VAE decoder at 512x512: 1,272 GMACs (onnx-tool profile of the SD-v1.4 export, elementwise ops included)
    assert _macs(vae_decoder_ops(SD_VAE_DECODER, 64, 64), ("gemm", "attention")) == pytest.approx(1272e9, rel=0.02)


def test_unet_costs_scale_and_quantize():
    fp16 = unet_step_cost(SDXL, "rtx-4080", height=512, width=512)
    w8a8 = unet_step_cost(SDXL, "rtx-4080", Precision("int8", "int8"), height=512, width=512)
    assert w8a8.time_s < fp16.time_s
    assert w8a8.attention_s == pytest.approx(fp16.attention_s)  # attention stays 16-bit
    assert w8a8.kernels > fp16.kernels  # an activation-quantization kernel per GEMM
    assert w8a8.weight_bytes == pytest.approx(fp16.weight_bytes / 2)
    two = unet_step_cost(SDXL, "rtx-4080", height=512, width=512, batch=2)
    assert fp16.time_s < two.time_s < 2 * fp16.time_s + 1e-9
    # linear attention removes the P^2 term: the saving grows with resolution
    gain = [unet_step_cost(SD_V1, "a100-sxm-80gb", height=r, width=r).time_s
            / unet_step_cost(SD_V1, "a100-sxm-80gb", height=r, width=r, attention="linear").time_s for r in (512, 1024)]
    assert 1 < gain[0] < gain[1]
    with pytest.raises(RidgeplanError):
        unet_step_cost(SD_V1, "a100-sxm-80gb", height=500, width=512)
    cost = conv_net_cost(unet_ops(SD_V1, 64, 64), "a100-sxm-80gb")
    assert cost.time_s == pytest.approx(cost.gemm_s + cost.attention_s + cost.elementwise_s + cost.floor_s)
