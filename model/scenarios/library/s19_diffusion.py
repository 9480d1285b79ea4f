"""Section 19: diffusion and visual-generation cost (DiTs and U-Nets: tokens, steps x guidance, attention
variants, W4A4/W8A8, patch parallelism), plus the catalogue's multi-system ratio identities (SEED-A34).

DiT configs and their sources live in `model.techniques.diffusion` (FLUX.1, PixArt, CogVideoX, LTX-Video), U-Net and
VAE configs in `model.techniques.unet` (SD v1/v2, SDXL, the SD VAE decoder)."""

from __future__ import annotations

import numpy as np

from model.hardware.db import load_device
from model.precision import Precision, number_format
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.techniques.diffusion import (
    COGVIDEOX_2B, FLUX1, LTX_VIDEO, OPEN_SORA_PROXY, PIXART_ALPHA, PIXART_SIGMA, PatchParallel, attention_window,
    dit_deployment, dit_step, latent_channels, latent_tokens, low_rank_branch, patch_parallel_step, sampling_seconds,
    schedule_seconds, share_for_reduction, share_for_speedup,
)
from model.techniques.encoder import bidirectional_transformer
from model.techniques.unet import SD_V1, SD_V2, SD_VAE_DECODER, SDXL, unet_step_cost, vae_decode_cost

T5_XXL = dict(hidden=4096, layers=24, heads=64, mlp_width=10240, out_dim=4096, gated=True)  # google/t5-v1_1-xxl encoder


def _t5_seconds(gpu: str, tokens: int) -> float:
    from model.api import deployment

    arch = bidirectional_transformer("t5-v1.1-xxl-encoder", **T5_XXL,
                                     notes=("google/t5-v1_1-xxl config: d_model 4096, 24 layers, 64 heads, d_ff "
                                            "10240 gated-GELU (encoder only, relative position bias not counted)",))
    return float(deployment(arch, gpu, attention_convention="square").step(1, tokens, 0, n_logit=1).time_s[0])


# ---------------------------------------------------------------------------------------------------------
# LTX-Video: tokens, latent channels, 5 s of video in 2 s on an H100

LTX_STEPS = 20  # external, verify: the step count of LTX-Video's real-time timing
LTX_MFU_BAND = (0.30, 0.60)


@check("SEED-A30", "A", "(768/32)·(512/32)·(120/8) = 5,760 tokens (6,144 with 16 latent frames); 32·32·8·3/192 = 128 "
       "latent channels.")
def _a30(r):
    ok = r["tokens_120_frames"] == 5760 and r["tokens_121_frames"] == 6144 and close(r["latent_channels"], 128.0, 1e-9)
    return CheckOutcome(ok, pick(r, "tokens_120_frames", "tokens_121_frames", "latent_channels"),
                        "5,760 and 6,144 tokens; 128 channels")


LTX_CLAIM_S = 2.0  # LTX-Video: 5 s of video generated in 2 s on one H100
LTX_TOLERANCE = 0.30  # CATALOG: the planner's own time within +-30% of the claim


@check("SEED-B32", "B", "5 s video in 2 s on H100 | steps × (2·P·N + 4·L·N²·d) + VAE at stated MFU (N = 5,760). "
       "Inputs: params, layers, steps, CFG. | the planner's own time within ±30% of 2 s, with the MFU it implies")
def _b32(r):
    t = r["planner_video_s"]
    return CheckOutcome(abs(t - LTX_CLAIM_S) <= LTX_TOLERANCE * LTX_CLAIM_S,
                        {"planner_s": t, "planner_mfu": r["planner_mfu"], "claim_implied_mfu": r["claim_implied_mfu"],
                         "error": t / LTX_CLAIM_S - 1},
                        f"{LTX_CLAIM_S:g} s ± {LTX_TOLERANCE:.0%} ([{LTX_CLAIM_S * (1 - LTX_TOLERANCE):g}, "
                        f"{LTX_CLAIM_S * (1 + LTX_TOLERANCE):g}] s)",
                        f"LTX-Video 2B (28 layers, d 2048) on one H100 SXM, N = 5,760 tokens (768x512, 120 frames), "
                        f"{LTX_STEPS} steps (external, verify) with CFG batched (NFE 2 per step); planner_s is the "
                        "roofline time of the denoising steps plus the T5 text encoder; claim_implied_mfu = step "
                        "FLOPs / (2 s x peak); the video VAE decoder's cost is not included (its config is not in "
                        "the library), so the planner's time is a lower bound on the paper's")


@scenario("ltx-video-realtime", ["LTX-Video (002)"], 19,
          "LTX-Video 2B DiT (28 layers, d 2048, 32 heads, cross-attention to 128 T5 tokens; VAE 32x32x8 pixels per "
          "token at 1:192) generating 5 s of 24 fps 768x512 video on one H100 SXM in bf16: 5,760 latent tokens "
          f"(6,144 with the causal VAE's 16 latent frames for 121 frames), {LTX_STEPS} denoising steps with "
          "classifier-free guidance as batch 2, full spatiotemporal attention. Baseline: the claimed 2 s against "
          "the planner's own roofline time (the step FLOPs at 30% and 60% MFU are reported beside it).",
          [_a30, _b32])
def ltx_video():
    out = {"tokens_120_frames": latent_tokens(768, 512, 120, spatial=32, temporal=8),
           "tokens_121_frames": latent_tokens(768, 512, 121, spatial=32, temporal=8, causal_first_frame=True),
           "latent_channels": float(latent_channels(32, 8, 192))}
    n = out["tokens_120_frames"]
    dep = dit_deployment(LTX_VIDEO, "h100-sxm")
    step = dit_step(dep, n, batch=2)  # CFG: conditional + unconditional in one batch
    flops = LTX_STEPS * step.flops
    peak = dep.device.peak("bf16")
    text_s = _t5_seconds("h100-sxm", LTX_VIDEO.text_tokens)
    denoise = sampling_seconds(lambda b: dit_step(dep, n, batch=b).time_s, LTX_STEPS, "cfg")
    out.update({"step_flops_cfg_batch": step.flops, "video_flops": flops,
                "video_s_at_60pct_mfu": flops / (LTX_MFU_BAND[1] * peak),
                "video_s_at_30pct_mfu": flops / (LTX_MFU_BAND[0] * peak),
                "step_s": step.time_s, "attention_share": step.attention_share, "text_encoder_s": text_s,
                "planner_video_s": denoise + text_s, "planner_mfu": flops / (denoise * peak),
                "claim_implied_mfu": flops / (LTX_CLAIM_S * peak)})
    return out


# ---------------------------------------------------------------------------------------------------------
# SVDQuant: FLUX.1 at W4A4 on a 16 GB laptop RTX 4090

SVD_RANK = 32  # SVDQuant's default low-rank branch rank


@check("SEED-A35", "A", "12e9 × 2 B = 24 GB > 16 GB (BF16 baseline assumed); 24/3.5 = 6.86 GB ≤ 16 GB.")
def _a35(r):
    ok = (close(r["bf16_bytes"], 24e9, 1e-9) and r["bf16_bytes"] > r["capacity_bytes"]
          and close(r["w4a4_claimed_bytes"], 6.857e9, 1e-3) and r["w4a4_claimed_bytes"] <= r["capacity_bytes"])
    return CheckOutcome(ok, pick(r, "bf16_bytes", "w4a4_claimed_bytes", "capacity_bytes"),
                        "24 GB > 16 GB; 6.86 GB <= 16 GB")


@check("SEED-B11", "B", "3.0x vs W4A16 on laptop 4090 | FLUX.1 steps are compute-bound at 1024²; gain ≤ INT4/FP16 "
       "tensor ratio (≈4x, external, verify) × compute share; low-rank branch adds 2·tokens·r·(k + n) FLOPs. | "
       "2.5-4x; memory ±10%")
def _b11(r):
    ok = within(r["speedup_vs_w4a16"], 2.5, 4.0) and within(r["w4a4_model_bytes"], 6.857e9 * 0.9, 6.857e9 * 1.1)
    return CheckOutcome(ok, {"speedup_vs_w4a16": r["speedup_vs_w4a16"], "w4a4_model_GB": r["w4a4_model_bytes"] / 1e9},
                        "2.5-4x; 6.17-7.54 GB",
                        "FLUX.1-dev transformer step at 1024x1024 (4,096 image + 512 text tokens), batch 1, RTX 4090 "
                        "Laptop (INT4 686 TOPS vs BF16 85.8 TFLOP/s with FP32 accumulate: 8x); W4A16 = INT4 weights "
                        "(group 128) on the BF16 path with dequantization; W4A4 = INT4 x INT4 tensor cores, attention "
                        "and norms in 16 bits, plus the rank-32 16-bit branch; memory = all 11.9B weights at 4.16 "
                        "bits + the branch")


@scenario("svdquant-flux-laptop", ["SVDQuant (\"SVDQunat\" on page) (000)"], 19,
          "FLUX.1-dev (12B: 19 double- + 38 single-stream blocks, d 3072) on a 16 GB RTX 4090 Laptop GPU, one "
          "transformer step at 1024x1024 (4,608 tokens), batch 1. SVDQuant: W4A4 (INT4 weights and activations, "
          "group 128) with a rank-32 16-bit low-rank branch fused into the 4-bit kernels (Nunchaku). Baselines: "
          "W4A16 (NF4/AWQ-style weight-only, BF16 tensor path) and BF16 (24 GB: does not fit 16 GB).",
          [_a35, _b11])
def svdquant():
    dev = load_device("rtx-4090-laptop")
    n = FLUX1.tokens(1024, 1024)
    out = {"tokens": n, "capacity_bytes": dev.memory.capacity_bytes,
           "bf16_bytes": 12e9 * number_format("bf16").bytes_per_element}
    out["w4a4_claimed_bytes"] = out["bf16_bytes"] / 3.5
    steps = {}
    for label, w, a in (("bf16", None, None), ("w4a16", "int4", None), ("w4a4", "int4", "int4")):
        dep = dit_deployment(FLUX1, dev, weights=w, activations=a)
        steps[label] = dit_step(dep, n, extra_params=FLUX1.extra_params)
        if label == "w4a4":
            branch = low_rank_branch(FLUX1, dep, n, SVD_RANK)
    out["bf16_step_s"] = steps["bf16"].time_s
    out["w4a16_step_s"] = steps["w4a16"].time_s
    out["w4a4_step_s"] = steps["w4a4"].time_s + branch["seconds"]
    out["low_rank_s"] = branch["seconds"]
    out["speedup_vs_w4a16"] = out["w4a16_step_s"] / out["w4a4_step_s"]
    out["bf16_model_bytes"] = steps["bf16"].weights_bytes
    out["w4a4_model_bytes"] = steps["w4a4"].weights_bytes + branch["bytes"]
    out["w4a4_attention_share"] = steps["w4a4"].attention_s / out["w4a4_step_s"]
    out["memory_reduction"] = out["bf16_model_bytes"] / out["w4a4_model_bytes"]
    return out


@scenario("w4a4-unet", ["QuEST (000)", "EfficientDM (002)"], 19,
          "What-if for full W4A4 latent-diffusion U-Nets (QuEST: Stable Diffusion v1.4; EfficientDM: LDM-4 on "
          "ImageNet 256, expressed with the SD v1 U-Net at 512x512 as a stand-in: LDM-4's own config is not in the "
          "library) on an INT4-capable RTX 4090, batch 1: one step at FP16, W8A8 and W4A4 (every conv and linear on the "
          "narrow tensor cores with an activation-quantization pass each; attention cores, norms and activations stay "
          "16-bit). Neither paper states speed numbers; quality is out of scope.")
def w4a4_unet():
    out = {}
    for label, prec in (("fp16", None), ("w8a8", Precision("int8", "int8")), ("w4a4", Precision("int4", "int4"))):
        c = unet_step_cost(SD_V1, "rtx-4090", prec, height=512, width=512)
        out[f"{label}_step_s"] = c.time_s
        out[f"{label}_weight_GB"] = c.weight_bytes / 1e9
    out["w4a4_speedup_vs_fp16"] = out["fp16_step_s"] / out["w4a4_step_s"]
    out["w8a8_speedup_vs_fp16"] = out["fp16_step_s"] / out["w8a8_step_s"]
    return out


# ---------------------------------------------------------------------------------------------------------
# StreamDiffusion (RCFG) and MixDQ (W8A8 few-step SDXL)

@check("SEED-B33", "B", "RCFG 2.05x; MixDQ 1.45x | NFE 2 → ~1 gives ≤ ~2x per step; MixDQ: INT8 vs FP16 GEMM peak with "
       "dequant overhead on a few-step T2I model (state which). | ±25%")
def _b33(r):
    ok = within(r["rcfg_speedup_max"], 2.05 * 0.75, 2.05 * 1.25) and within(r["mixdq_speedup_4080"], 1.45 * 0.75,
                                                                                1.45 * 1.25)
    return CheckOutcome(ok, {"rcfg_speedup_max": r["rcfg_speedup_max"], "mixdq_speedup_4080": r["mixdq_speedup_4080"]},
                        "RCFG 1.54-2.56x; MixDQ 1.09-1.81x",
                        "RCFG: SD-turbo (SD 2.1 U-Net) at 512x512 on an RTX 4090, Stream Batch of k = 1-4 denoising "
                        "steps; CFG evaluates every step twice (U-Net batch 2k), self-negative RCFG once (batch k); "
                        "VAE (TAESD) and text encoder excluded from both. MixDQ: SDXL-turbo U-Net, 1 step at 512x512, "
                        "batch 1, RTX 4080: FP16 (97.5 TFLOP/s with FP32 accumulate) vs W8A8 with every conv/linear on "
                        "INT8 tensor cores (389.9 TOPS) and an activation-quantization pass per GEMM; attention, "
                        "norms and kernel floors unchanged")


@scenario("streamdiffusion-rcfg-and-mixdq", ["StreamDiffusion (003)", "MixDQ (002)"], 19,
          "Few-step U-Net generation. StreamDiffusion: SD-turbo (SD 2.1 U-Net, 865M) img2img at 512x512 on one RTX "
          "4090 with Stream Batch (k denoising steps batched), conventional CFG (NFE 2) against Residual CFG "
          "(self-negative, NFE 1; one-time-negative, NFE 1 + 1/k). MixDQ: SDXL-turbo U-Net (2.57B), one step at "
          "512x512, batch 1, FP16 against W8A8, on the RTX 4080 of the claim (also RTX 3090 and A100, which the "
          "MixDQ kernels README measured at 1.27x and 1.07x). U-Net costs counted layer by layer from the diffusers "
          "configs (model.techniques.unet).",
          [_b33])
def stream_and_mixdq():
    out = {}
    ratios = []

    def unet(b):
        return unet_step_cost(SD_V2, "rtx-4090", height=512, width=512, batch=b).time_s

    for k in (1, 2, 3, 4):
        # Stream Batch: the k denoising steps of k frames in flight run as one U-Net call of batch k per frame out
        cfg = sampling_seconds(lambda b, k=k: unet(k * b), 1, "cfg")  # conditional + unconditional: batch 2k
        self_neg = sampling_seconds(lambda b, k=k: unet(k * b), 1, "rcfg-self")  # batch k
        onetime = unet(k + 1)  # one negative-conditioned latent joins the batch once per frame
        out[f"k{k}_cfg_s"] = cfg
        out[f"k{k}_rcfg_self_speedup"] = cfg / self_neg
        out[f"k{k}_rcfg_onetime_speedup"] = cfg / onetime
        ratios.append(cfg / self_neg)
    out["rcfg_speedup_max"] = max(ratios)
    out["stream_fps_k1_rcfg_self_unet_only"] = 1.0 / (out["k1_cfg_s"] / out["k1_rcfg_self_speedup"])
    for gpu in ("rtx-4080", "rtx-3090", "a100-sxm-80gb"):
        fp16 = unet_step_cost(SDXL, gpu, height=512, width=512)
        w8a8 = unet_step_cost(SDXL, gpu, Precision("int8", "int8"), height=512, width=512)
        key = {"rtx-4080": "4080", "rtx-3090": "3090", "a100-sxm-80gb": "a100"}[gpu]
        out[f"mixdq_fp16_ms_{key}"] = fp16.time_s * 1e3
        out[f"mixdq_w8a8_ms_{key}"] = w8a8.time_s * 1e3
        out[f"mixdq_speedup_{key}"] = fp16.time_s / w8a8.time_s
    out["sdxl_unet_fp16_GB"] = SDXL.params * 2 / 1e9
    out["sdxl_unet_w8a8_GB"] = SDXL.params * 1 / 1e9
    return out


# ---------------------------------------------------------------------------------------------------------
# attention share and partial attention savings: CLEAR, Re-ttention, LinFusion, Bottleneck Sampling

@check("SEED-A31", "A", "1/((1 − f) + f·0.005) = 6.3 → attention share f = 0.846 at 8K.")
def _a31(r):
    return CheckOutcome(close(r["clear_share_for_6.3x"], 0.846, 0.01), r["clear_share_for_6.3x"], "f = 0.846",
                        f"the planner's own FLUX.1 attention share at 8K is {r['flux_attention_share_8k']:.3f}")


@check("SEED-C29", "C", "Savings grow with resolution (attention share) and with the fraction of low-resolution or "
       "local-attention work.")
def _c29(r):
    def up(xs):
        return all(b > a for a, b in zip(xs, xs[1:]))

    ok = (up(r["flux_attention_share"]) and up(r["clear_local_speedup"]) and up(r["linfusion_speedup"])
          and up(r["bottleneck_speedup_vs_res"]) and up(r["bottleneck_speedup_vs_low_fraction"]))
    return CheckOutcome(ok, {k: [round(x, 3) for x in r[k]] for k in (
        "flux_attention_share", "clear_local_speedup", "linfusion_speedup", "bottleneck_speedup_vs_res",
        "bottleneck_speedup_vs_low_fraction")}, "every series increasing")


RESOLUTIONS = (1024, 2048, 4096)
CLEAR_KEYS = 1024  # local window of CLEAR (radius ~16-18 latent tokens: pi r^2 ~ 1,000 keys); assumption


@scenario("attention-savings-vs-resolution", ["CLEAR (004)", "LinFusion (004)", "Bottleneck Sampling (001)"], 19,
          "FLUX.1-dev (bf16, one H100 SXM, batch 1, 512 text tokens) at 1K, 2K and 4K: attention's share of a step; "
          f"CLEAR's local attention ({CLEAR_KEYS} keys per query) against full attention; Bottleneck Sampling's "
          "high-low-high schedule of 28 steps with a share of the steps at half resolution (a quarter of the image "
          "tokens) against 28 full-resolution steps. LinFusion: SD v1.5 U-Net (A100, batch 1) with its self-attention "
          "replaced by linear attention (a head_dim^2 state per head) at 512, 1024 and 2048 px. CLEAR's 6.3x at 8K "
          "gives the attention share by Amdahl.",
          [_a31, _c29])
def attention_savings():
    full = dit_deployment(FLUX1, "h100-sxm")
    local = dit_deployment(FLUX1, "h100-sxm", window=CLEAR_KEYS)
    text = FLUX1.text_tokens
    shares, clear, bott_res = [], [], []
    for res in RESOLUTIONS:
        n = FLUX1.tokens(res, res)
        f = dit_step(full, n)
        loc = dit_step(local, n)
        shares.append(f.attention_share)
        clear.append(f.time_s / loc.time_s)
        low = FLUX1.latent_tokens(res // 2, res // 2) + text

        def at(t):
            return dit_step(full, t).time_s

        bott_res.append(schedule_seconds(at, [(28, n)]) / schedule_seconds(at, [(4, n), (20, low), (4, n)]))
    n2k, low2k = FLUX1.tokens(2048, 2048), FLUX1.latent_tokens(1024, 1024) + text
    base = 28 * dit_step(full, n2k).time_s
    frac = []
    for low_steps in (0, 8, 16, 24):
        frac.append(base / schedule_seconds(lambda t: dit_step(full, t).time_s,
                                            [(28 - low_steps, n2k), (low_steps, low2k)]))
    lin = []
    for res in (512, 1024, 2048):
        lin.append(unet_step_cost(SD_V1, "a100-sxm-80gb", height=res, width=res).time_s
                   / unet_step_cost(SD_V1, "a100-sxm-80gb", height=res, width=res, attention="linear").time_s)
    n8k = FLUX1.tokens(8192, 8192)
    return {"resolutions": list(RESOLUTIONS), "flux_attention_share": shares, "clear_local_speedup": clear,
            "bottleneck_speedup_vs_res": bott_res, "bottleneck_low_steps": [0, 8, 16, 24],
            "bottleneck_speedup_vs_low_fraction": frac, "linfusion_resolutions": [512, 1024, 2048],
            "linfusion_speedup": lin, "clear_share_for_6.3x": float(share_for_speedup(6.3, 0.995)),
            "flux_attention_share_8k": dit_step(full, n8k).attention_share,
            "clear_local_speedup_8k": dit_step(full, n8k).time_s / dit_step(local, n8k).time_s}


@check("SEED-A32", "A", "Attention share ≥ 0.45/0.92 = 0.489. Ideal cut at 3.1% tokens = 96.9% vs >92% measured → "
       "overhead ≈ 5% of dense attention.")
def _a32(r):
    ok = close(r["share_lower_bound"], 0.489, 0.01) and close(r["ideal_attention_cut"], 0.969, 0.001) \
        and close(r["overhead_of_dense_attention"], 0.049, 0.03)
    return CheckOutcome(ok, pick(r, "share_lower_bound", "ideal_attention_cut",
                                 "overhead_of_dense_attention"), "0.489; 0.969; ~0.05")


@check("SEED-B31", "B", "Attention ≈ 0.49 of latency | CogVideoX config, frames and resolution, H100. | 0.4-0.6")
def _b31(r):
    return CheckOutcome(within(r["attention_share"], 0.4, 0.6), r["attention_share"], "0.4-0.6",
                        "CogVideoX-2B (30 layers, d 1920, 30 heads of 64), 49 frames at 720x480 -> 13 x 30 x 45 = "
                        "17,550 video + 226 text tokens in full 3D attention, CFG as batch 2, bf16 on one H100 SXM; "
                        "share of one denoising step (text encoder and VAE excluded)")


@scenario("re-ttention-cogvideox", ["Re-ttention (001)"], 19,
          "CogVideoX-2B (the T2V model Re-ttention evaluates) generating 49 frames at 720x480 on one H100 SXM in "
          "bf16, CFG as batch 2: attention's share of a denoising step, and the step with ultra-sparse attention "
          "keeping 3.1% of the keys (dense attention kernels' efficiency assumed for the sparse ones) against full "
          "attention. The claim's 45% end-to-end and 92% attention reductions give the share bound by Amdahl.",
          [_a32, _b31])
def rettention():
    n = COGVIDEOX_2B.tokens(720, 480, 49)
    dense = dit_step(dit_deployment(COGVIDEOX_2B, "h100-sxm"), n, batch=2)
    w = attention_window(COGVIDEOX_2B, "sparse", n, keep=0.031)
    sparse = dit_step(dit_deployment(COGVIDEOX_2B, "h100-sxm", window=w), n, batch=2)
    ideal = 1 - 0.031
    return {"tokens": n, "step_s": dense.time_s, "attention_share": dense.attention_share,
            "sparse_step_s": sparse.time_s, "sparse_attention_cut": 1 - sparse.attention_s / dense.attention_s,
            "sparse_end_to_end_cut": 1 - sparse.time_s / dense.time_s,
            "share_lower_bound": float(share_for_reduction(0.45, 0.92)), "ideal_attention_cut": ideal,
            "overhead_of_dense_attention": ideal - 0.92}


# ---------------------------------------------------------------------------------------------------------
# PCPP against DistriFusion: patch parallelism with one-step-stale exchange

@check("SEED-C28", "C", "Partial conditioning cuts comm and can push speed-up above p; DistriFusion is sub-linear on "
       "slow links.")
def _c28(r):
    ok = (r["pcpp_comm_cut"] > 0.5 and all(r[f"pcpp_speedup_pcie_p{p}"] > r[f"distrifusion_speedup_pcie_p{p}"]
                                            for p in (4, 8))
          and max(r[f"pcpp_speedup_pcie_p{p}"] / p for p in (4, 8)) > 1
          and r["distrifusion_speedup_pcie_p8"] < 8
          and r["distrifusion_speedup_pcie_p8"] < r["distrifusion_speedup_nvlink_p8"])
    return CheckOutcome(ok, {k: round(v, 3) for k, v in r.items() if "speedup" in k or "cut" in k},
                        "PCPP comm < DistriFusion; PCPP > DistriFusion; PCPP > p somewhere; DistriFusion p8 on PCIe "
                        "< 8 and below NVLink")


@scenario("pcpp-patch-parallelism", ["PCPP, Partially Conditioned Patch Parallelism (002, 003)"], 19,
          "PixArt-Sigma XL/2 at 2048x2048 (16,384 latent tokens), CFG batch 2, bf16, split into 4 or 8 patches over "
          "L40S GPUs (PCIe Gen4, no peer NVLink) and over H100 SXM (NVLink): DistriFusion conditions every patch on "
          "all other patches' one-step-stale K/V (all-gathered every step, overlapping compute); PCPP conditions on "
          "30% of them (communication about -70%, as claimed), which also shrinks each patch's attention. The PCPP "
          "paper's own runs use SDXL (a U-Net); a DiT expresses the same patch split here.",
          [_c28])
def pcpp():
    n = PIXART_SIGMA.latent_tokens(2048, 2048)
    out = {}
    for label, gpu in (("pcie", "l40s"), ("nvlink", "h100-sxm")):
        dep = dit_deployment(PIXART_SIGMA, gpu)
        for p in (4, 8):
            df = patch_parallel_step(dep, n, PatchParallel(p, 1.0), batch=2)
            pc = patch_parallel_step(dep, n, PatchParallel(p, 0.3), batch=2)
            out[f"distrifusion_speedup_{label}_p{p}"] = df["speedup"]
            out[f"pcpp_speedup_{label}_p{p}"] = pc["speedup"]
            out[f"distrifusion_comm_ms_{label}_p{p}"] = df["comm_s"] * 1e3
            out[f"pcpp_comm_ms_{label}_p{p}"] = pc["comm_s"] * 1e3
            if label == "pcie" and p == 8:
                out["pcpp_comm_cut"] = 1 - pc["comm_bytes"] / df["comm_bytes"]
    return out


# ---------------------------------------------------------------------------------------------------------
# few-step and one-step generators, on-device video (what-ifs without catalogue checks)

@scenario("pixart-few-step", ["TDM, Trajectory Distribution Matching (000)", "Inner Loop Feedback (000)"], 19,
          "PixArt-alpha XL/2 at 1024x1024 (4,096 tokens) on one A100 80GB in bf16: the 20-step teacher with CFG "
          "(NFE 2) against TDM's 4-step distilled generator (NFE 1, no CFG), and Inner Loop Feedback's extra "
          "feedback block per step (cost x (1 + 1/28)) at the step counts that give 1.7-1.8x. The VAE decode "
          "(SD VAE at 1024x1024) and the T5 encoder (120 tokens) are added to every variant.")
def pixart_few_step():
    n = PIXART_ALPHA.tokens(1024, 1024)
    dep = dit_deployment(PIXART_ALPHA, "a100-sxm-80gb")

    def step(b):
        return dit_step(dep, n, batch=b).time_s

    fixed = vae_decode_cost(SD_VAE_DECODER, "a100-sxm-80gb", height=1024, width=1024).time_s + _t5_seconds(
        "a100-sxm-80gb", PIXART_ALPHA.text_tokens)
    teacher = sampling_seconds(step, 20, "cfg") + fixed
    tdm = sampling_seconds(step, 4, "distilled") + fixed
    feedback = 1 + 1 / PIXART_ALPHA.layers
    ilf = {k: teacher / (sampling_seconds(step, k, "cfg") * feedback + fixed) for k in (10, 11, 12, 14)}
    return {"tokens": n, "teacher_20_step_cfg_s": teacher, "tdm_4_step_s": tdm, "tdm_speedup": teacher / tdm,
            "vae_and_text_s": fixed, **{f"inner_loop_feedback_{k}_steps_speedup": v for k, v in ilf.items()}}


@scenario("instaflow-one-step", ["InstaFlow (000)"], 19,
          "InstaFlow-0.9B (the SD v1.5 U-Net, rectified-flow distilled to one step) at 512x512 on one A100 80GB, "
          "fp16, batch 1: text encoder (CLIP ViT-L text, 77 tokens), one U-Net step and the SD VAE decoder, against "
          "25-step SD v1.5 with CFG; the claim is 0.09 s per image (FID and the 199 A100-days of training: out of "
          "scope).")
def instaflow():
    from model.api import deployment

    clip_text = bidirectional_transformer("clip-vit-l-14-text", hidden=768, layers=12, heads=12, mlp_width=3072,
                                          out_dim=768, notes=("openai/clip-vit-large-patch14 text_config",))
    text_s = float(deployment(clip_text, "a100-sxm-80gb", attention_convention="square").step(1, 77, 0).time_s[0])
    vae = vae_decode_cost(SD_VAE_DECODER, "a100-sxm-80gb", height=512, width=512).time_s

    def step(b):
        return unet_step_cost(SD_V1, "a100-sxm-80gb", height=512, width=512, batch=b).time_s

    one = text_s + step(1) + vae
    multi = text_s + sampling_seconds(step, 25, "cfg") + vae
    return {"one_step_image_s": one, "sd_25_step_cfg_image_s": multi, "speedup": multi / one,
            "unet_step_s": step(1), "vae_decode_s": vae, "text_encoder_s": text_s}


@scenario("on-device-sora-iphone", ["On-device Sora (004)"], 19,
          "An Open-Sora-class STDiT (proxy: 28 spatial+temporal block pairs, d 1152, 1.1B, spatial attention within "
          "each frame) on an iPhone 15 Pro (8 GB, 51.2 GB/s) in fp16: 16 frames at 256x256 (OpenSora VAE 4x8x8, "
          "patch 2: 4 latent frames x 256 tokens), 30 rectified-flow steps with CFG against On-device Sora's Linear "
          "Proportional Leap (fewer steps, here 12) and temporal token merging (half the latent frames in the "
          "middle steps). Whether the weights fit without block-wise loading is the memory question.")
def on_device_sora():
    frames, res = 16, 256
    n = OPEN_SORA_PROXY.latent_tokens(res, res, frames)
    per_frame = OPEN_SORA_PROXY.latent_tokens(res, res)
    dep = dit_deployment(OPEN_SORA_PROXY, "iphone-15-pro", window=per_frame)

    def at(tokens, b=2):
        return dit_step(dep, tokens, batch=b).time_s

    base = sampling_seconds(lambda b: at(n, b), 30, "cfg")
    lpl = sampling_seconds(lambda b: at(n, b), 12, "cfg")
    merged = schedule_seconds(at, [(3, n), (6, n // 2), (3, n)])
    weights = dit_step(dep, n, extra_params=OPEN_SORA_PROXY.extra_params).weights_bytes
    cap = dep.device.memory.capacity_bytes
    return {"tokens": n, "baseline_30_step_s": base, "lpl_12_step_s": lpl, "lpl_plus_token_merging_s": merged,
            "weights_GB": weights / 1e9, "device_GB": cap / 1e9,
            "weights_fit_without_block_loading": weights < 0.5 * cap}


# ---------------------------------------------------------------------------------------------------------
# SEED-A34: ratio identities across systems (pure arithmetic on abstract numbers)

@check("SEED-A34", "A", "Dovetail CPU-only 5.86/2.77 = 2.12 tok/s. StreamDiffusion baseline 91.07/59.56 = 1.53 fps. "
       "Video-Infinity 2300/300 s = 7.67 fps (0.96/GPU). CoDe baseline 41/2.9 = 14.1 img/s. TDM teacher 2/0.0001 = "
       "20,000 A800-h. LAMB 4,320/76 = 56.8x. Fuyou 156/45 = 3.47x. PCPP efficiency 8.02/8 = 1.00, DistriFusion "
       "6.71/8 = 0.84 (best case; pairing not stated). AnimateDiff 42/11 = 3.8x. TPI-LLM baseline 3.1/0.1 = 31 GB.")
def _a34(r):
    expected = {"dovetail_cpu_tok_s": 2.12, "streamdiffusion_baseline_fps": 1.53, "video_infinity_fps": 7.67,
                "video_infinity_fps_per_gpu": 0.96, "code_baseline_img_s": 14.1, "tdm_teacher_a800_h": 20000.0,
                "lamb_speedup": 56.8, "fuyou_speedup": 3.47, "pcpp_efficiency": 1.00, "distrifusion_efficiency": 0.84,
                "animatediff_memory_cut": 3.8, "tpi_llm_baseline_GB": 31.0}
    bad = {k: (r[k], v) for k, v in expected.items() if not close(r[k], v, 0.01)}
    return CheckOutcome(not bad, {k: round(r[k], 4) for k in expected}, "as listed, within 1%",
                        f"off: {bad}" if bad else "")


@scenario("ratio-identities", [], 19,
          "The catalogue's ratio identities over abstract numbers of ten systems (Dovetail, StreamDiffusion, "
          "Video-Infinity, CoDe, TDM, LAMB, Fuyou, PCPP, AnimateDiff, TPI-LLM): baselines implied by claimed "
          "speed-ups, aggregate and per-GPU rates, parallel efficiencies. Pure arithmetic, no planner model: it "
          "expresses none of those systems by itself.",
          [_a34])
def ratio_identities():
    return {"dovetail_cpu_tok_s": 5.86 / 2.77, "streamdiffusion_baseline_fps": 91.07 / 59.56,
            "video_infinity_fps": 2300 / 300, "video_infinity_fps_per_gpu": 2300 / 300 / 8,
            "code_baseline_img_s": 41 / 2.9, "tdm_teacher_a800_h": 2 / 0.0001, "lamb_speedup": 4320 / 76,
            "fuyou_speedup": 156 / 45, "pcpp_efficiency": 8.02 / 8, "distrifusion_efficiency": 6.71 / 8,
            "animatediff_memory_cut": 42 / 11, "tpi_llm_baseline_GB": 3.1 / 0.1}


# ---------------------------------------------------------------------------------------------------------
# CoDe: collaborative decoding of a next-scale (VAR) model

VAR_SCALES = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # token-map sides of VAR at 256x256 (patch_nums)


def _var_arch(depth: int):
    return bidirectional_transformer(
        f"var-d{depth}", hidden=64 * depth, layers=depth, heads=depth, mlp_width=256 * depth, out_dim=4096,
        notes=(f"VAR-d{depth} (FoundationVision/VAR build_vae_var): width 64 d = {64 * depth}, {depth} heads, MLP 4x, "
               "codebook 4,096; each scale's tokens attend to every earlier scale and to their own scale (the "
               "'square' convention over C + T keys is VAR's block-causal mask); adaLN not counted",))


def _var_seconds(dep, batch: int, scales, prefix: int = 0) -> float:
    """Decode `scales` in turn for `batch` sequences; `prefix` tokens of earlier scales are already cached."""
    if not scales:
        return 0.0
    sides = np.asarray(scales, dtype=float)
    tokens = sides * sides
    ctx = prefix + np.concatenate(([0.0], np.cumsum(tokens)[:-1]))
    return float(dep.step(batch, tokens, ctx, n_logit=tokens).time_s.sum())


@scenario("code-var-collaborative-decoding", ["CoDe, \"Collaborative Decoding\" for VAR (002)"], 19,
          "VAR at 256x256 (10 scales, 680 tokens per image) on one RTX 4090 in bf16, 64 images per batch with CFG "
          "(batch 128): VAR-d30 (2B) decoding every scale against CoDe, where VAR-d30 drafts the first K scales and "
          "VAR-d16 (0.3B) refines the rest after prefilling the drafted tokens into its own KV cache; images/s and "
          "the KV cache per image for K = 4-8. The claimed 1.7x (2.9x with fewer drafting steps) and 41 images/s "
          "do not state the batch; quality (FID) is out of scope.")
def code_var():
    from model.api import deployment

    batch = 128  # 64 images x (conditional + unconditional)
    big = deployment(_var_arch(30), "rtx-4090", attention_convention="square")
    small = deployment(_var_arch(16), "rtx-4090", attention_convention="square")
    base = _var_seconds(big, batch, VAR_SCALES)
    out = {"baseline_images_per_s": 64 / base}
    for k in (4, 5, 6, 7, 8):
        drafted = sum(s * s for s in VAR_SCALES[:k])
        draft = _var_seconds(big, batch, VAR_SCALES[:k])
        refill = float(small.step(batch, drafted, 0, n_logit=1).time_s[0])  # refiner prefills the drafted tokens
        refine = _var_seconds(small, batch, VAR_SCALES[k:], prefix=drafted)
        out[f"code_k{k}_speedup"] = base / (draft + refill + refine)
        out[f"code_k{k}_images_per_s"] = 64 / (draft + refill + refine)
    total_tokens = sum(s * s for s in VAR_SCALES)
    out["kv_per_image_MB_d30"] = 2 * total_tokens * 30 * 2 * 1920 * 2 / 1e6
    out["weights_GB_d30_plus_d16"] = (dit_step(big, 1).weights_bytes + dit_step(small, 1).weights_bytes) / 1e9
    return out


NOT_EXPRESSIBLE = {
    "Streamlined video diffusion, \"Fast and Memory-Efficient Video Diffusion\" (000, 003)": (
        "its claim is peak memory (AnimateDiff 42 GB -> 11 GB with feature slicing and operator grouping): that needs "
        "the live activation set of a video U-Net (motion modules, per-frame feature maps, eager attention maps) and "
        "how slicing divides it; the planner's memory model holds weights, KV and one operator's workspace",
        "an activation-liveness (peak working set) model of U-Net/video-U-Net forwards with slicing factors, and an "
        "AnimateDiff config"),
    "Video-Infinity (003)": (
        "clip parallelism of a video U-Net (VideoCrafter2) with dual-scope temporal attention exchanging boundary "
        "context between GPUs; the library has DiT patch parallelism and image U-Nets but no video U-Net with "
        "temporal attention layers nor a clip-exchange model (its 2,300 frames in ~5 min on 8 RTX 6000 Ada is "
        "checked as arithmetic in SEED-A34)",
        "a video U-Net config (temporal attention over frames) and clip-parallel context exchange"),
    "SwiftDiffusion (003)": (
        "its gains come from serving add-ons: ControlNets run in parallel on other GPUs and LoRAs applied without "
        "load/patch overhead, measured on production traces; the diffusion model here covers one pipeline's "
        "steps, not add-on branches, LoRA patching cost or a request queue",
        "ControlNet branch cost (a U-Net encoder copy per ControlNet), LoRA load/patch time, and a trace-driven "
        "serving queue for diffusion requests"),
}


