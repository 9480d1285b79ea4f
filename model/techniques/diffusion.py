"""Diffusion and visual-generation cost: latent tokens, DiT steps through the operator
graph and roofline, guidance, step schedules, attention variants, quantization with a low-rank branch, patch
parallelism, and the Amdahl bookkeeping of partial speed-ups.

- Tokens: N = ceil(H/(f_s p)) ceil(W/(f_s p)) ceil(F'/p_t), with F' = ceil(F/f_t) latent frames (a causal video
  VAE keeps the first frame: F' = 1 + ceil((F - 1)/f_t)); MMDiTs add their text tokens to the sequence.
- A DiT step is one forward of a non-causal transformer over N tokens (`model.techniques.encoder`): per step
  ~ 2 P N + 4 L N^2 d FLOPs for full attention; evaluated by `Deployment.step(batch, N, 0, n_logit=N)` under
  the "square" convention, so every operator gets its own roofline time (GEMMs compute-bound at thousands of
  tokens, attention on the flash path).
- Latency: T = T_text + sum over steps of NFE x T_step + T_VAE. Classifier-free guidance evaluates the model
  twice per step (batched as batch 2, or sequentially); distilled or residual guidance (RCFG self-negative)
  once; RCFG one-time-negative once per step plus one negative pass.
- Attention variants (sparse keep ratio, local window, linear attention) become the number of keys per query.
- Quantization: W8A8/W4A4 run GEMMs on the narrow tensor cores (the step is compute-bound, so this is what
  speeds it up); weight-only (W4A16) keeps the 16-bit tensor path and mainly saves memory. SVDQuant's 16-bit
  low-rank branch adds 2 N r (k + n) FLOPs per linear layer, fused into the 4-bit kernels (Nunchaku).
- Patch parallelism over p devices: each device computes N/p queries (+ a halo share for convolutions) against
  its own keys plus the one-step-stale keys/values of a share c of the other patches (DistriFusion: c = 1;
  partial conditioning, PCPP: c < 1); every step all-gathers the fresh K/V of every layer. With the stale,
  asynchronous exchange T = max(T_compute, T_comm); synchronous exchange adds them.
- Amdahl: a part taking share f of the time cut by a fraction r gives 1/((1 - f) + f (1 - r)); the end-to-end
  reduction is f r.

Model configs (`DiTSpec`) carry their public sources. Cross-attention DiTs (PixArt, LTX-Video) fold the query and
output projections of cross-attention into the MLP width (same GEMM FLOPs and weights per token: a plain MLP of
width w has 2 d w weights, cross-attention's q and o 2 d^2); the cross-attention core (4 N T_text d per layer) and
the text K/V projections are left out (T_text/N of self-attention: ~2% for the configs here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.precision import number_format
from model.roofline.collectives import collective_time
from model.serving.deployment import Deployment
from model.techniques.encoder import bidirectional_transformer, keys_per_query
from model.roofline.kernel import large_gemm_flop_per_s

GUIDANCE = ("none", "distilled", "cfg", "cfg-sequential", "rcfg-self", "rcfg-onetime")


# ---------------------------------------------------------------------------------------------------------
# tokens and latents

def latent_tokens(height: int, width: int, frames: int = 1, *, spatial: int = 8, temporal: int = 1, patch: int = 1,
                  temporal_patch: int = 1, causal_first_frame: bool = False) -> int:
    """Transformer tokens of one image or clip: ceil(H/(f_s p)) ceil(W/(f_s p)) ceil(F'/p_t)."""
    for name, v in (("height", height), ("width", width), ("frames", frames), ("spatial", spatial),
                    ("temporal", temporal), ("patch", patch), ("temporal_patch", temporal_patch)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise RidgeplanError(name, f"must be a whole number >= 1, got {v!r}")
    h = math.ceil(height / (spatial * patch))
    w = math.ceil(width / (spatial * patch))
    if causal_first_frame:
        f_lat = 1 + math.ceil((frames - 1) / temporal)
    else:
        f_lat = math.ceil(frames / temporal)
    return h * w * math.ceil(f_lat / temporal_patch)


def latent_channels(spatial: int, temporal: int, compression: float, pixel_channels: int = 3) -> float:
    """Latent channels per token of a VAE that maps spatial^2 x temporal pixels (x channels) to one latent vector
    at a given compression ratio: f_s^2 f_t C / ratio (LTX-Video: 32 32 8 3 / 192 = 128)."""
    if compression <= 0:
        raise RidgeplanError("compression", f"must be > 0, got {compression}")
    return spatial * spatial * temporal * pixel_channels / compression


# ---------------------------------------------------------------------------------------------------------
# Amdahl bookkeeping

def amdahl_speedup(share, reduction) -> np.ndarray:
    """End-to-end speed-up when a part taking `share` of the time is cut by the fraction `reduction`."""
    f, r = np.asarray(share, float), np.asarray(reduction, float)
    if np.any((f < 0) | (f > 1)) or np.any((r < 0) | (r > 1)):
        raise RidgeplanError("amdahl", "share and reduction must lie in [0, 1]")
    return 1.0 / ((1.0 - f) + f * (1.0 - r))


def share_for_speedup(speedup, reduction) -> np.ndarray:
    """The time share f a part must have for a `reduction` of it to give `speedup`: f = (1 - 1/S)/r."""
    s, r = np.asarray(speedup, float), np.asarray(reduction, float)
    f = (1.0 - 1.0 / s) / r
    if np.any(f > 1 + 1e-12):
        raise RidgeplanError("speedup", "is larger than the whole part's removal allows (share > 1)")
    return f


def share_for_reduction(end_to_end_reduction, part_reduction) -> np.ndarray:
    """The time share f of a part whose reduction r gives the end-to-end reduction R = f r: f = R / r."""
    return np.asarray(end_to_end_reduction, float) / np.asarray(part_reduction, float)


# ---------------------------------------------------------------------------------------------------------
# diffusion transformers

@dataclass(frozen=True)
class DiTSpec:
    """A diffusion transformer as the per-token stack every token runs through, plus what it needs around it.

    `layers` counts the blocks a token passes (FLUX: 19 double-stream + 38 single-stream = 57); `extra_params`
    are weights resident but outside that per-token stack (FLUX: the text stream of the double blocks and the
    adaLN modulation layers; PixArt: cross-attention K/V, adaLN-single, caption projection)."""

    name: str
    hidden: int
    layers: int
    heads: int
    mlp_width: int
    out_channels: int  # values per token of the final projection (patch^2 x latent channels [x2 learned sigma])
    text_tokens: int = 0
    joint_text: bool = True  # text tokens join the self-attention sequence (MMDiT) rather than cross-attention
    extra_params: float = 0.0
    spatial: int = 8
    temporal: int = 1
    patch: int = 2
    temporal_patch: int = 1
    causal_first_frame: bool = False
    cross_attention: bool = False
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def stack_mlp_width(self) -> int:
        """MLP width of the per-token stack: cross-attention's q and o projections folded in (+ hidden)."""
        return self.mlp_width + (self.hidden if self.cross_attention else 0)

    def latent_tokens(self, height: int, width: int, frames: int = 1) -> int:
        return latent_tokens(height, width, frames, spatial=self.spatial, temporal=self.temporal, patch=self.patch,
                             temporal_patch=self.temporal_patch, causal_first_frame=self.causal_first_frame)

    def tokens(self, height: int, width: int, frames: int = 1) -> int:
        """Sequence length of one forward: latent tokens plus joint text tokens."""
        return self.latent_tokens(height, width, frames) + (self.text_tokens if self.joint_text else 0)

    def architecture(self, window: int | None = None) -> Architecture:
        return _dit_arch(self, window)

    def stack_params(self) -> float:
        """Weights of the per-token stack (attention 4 d^2, MLP 2 d w per layer)."""
        d = self.hidden
        return self.layers * (4 * d * d + 2 * d * self.stack_mlp_width)

    def total_params(self) -> float:
        return self.stack_params() + self.extra_params


@lru_cache(maxsize=64)
def _dit_arch(spec: DiTSpec, window: int | None) -> Architecture:
    notes = [f"{spec.name}: {spec.source}"] if spec.source else []
    if spec.cross_attention:
        notes.append("cross-attention q/o projections folded into the MLP width; cross-attention core and text K/V "
                     f"projections ({spec.text_tokens} text tokens) not counted")
    if spec.extra_params:
        notes.append(f"{spec.extra_params / 1e9:.2f}B parameters outside the per-token stack are resident but not "
                     "in the step's GEMMs")
    return bidirectional_transformer(spec.name if window is None else f"{spec.name}-w{window}", hidden=spec.hidden,
                                     layers=spec.layers, heads=spec.heads, mlp_width=spec.stack_mlp_width,
                                     out_dim=spec.out_channels, window=window, notes=tuple(notes))


# Published configs (verify against the checkpoints' config files before relying on exact numbers):
FLUX1 = DiTSpec(
    "flux.1-dev", hidden=3072, layers=57, heads=24, mlp_width=12288, out_channels=64, text_tokens=512,
    joint_text=True, extra_params=19 * 12 * 3072**2 + 344 * 3072**2 + 0.06e9, spatial=8, patch=2,
    source="black-forest-labs/flux reference code / diffusers FluxTransformer2DModel: hidden 3072, 24 heads of "
           "128, 19 double-stream + 38 single-stream blocks, mlp_ratio 4, in/out 64 (16 latent channels x 2x2 "
           "patch), 512 T5 tokens (dev; schnell 256); extra = text stream of the double blocks (19 x 12 d^2) + "
           "adaLN modulation (344 d^2) + embedders (~0.06B) -> 11.9B total (published 12B)")
PIXART_ALPHA = DiTSpec(
    "pixart-alpha-xl-2", hidden=1152, layers=28, heads=16, mlp_width=4608, out_channels=32, text_tokens=120,
    joint_text=False, cross_attention=True, extra_params=28 * 2 * 1152**2 + 0.016e9, spatial=8, patch=2,
    source="PixArt-alpha PixArt_XL_2 (DiT-XL/2 layout): depth 28, hidden 1152, 16 heads, mlp_ratio 4, patch 2, "
           "4 latent channels with learned sigma (out 2x2x8 = 32), cross-attention to 120 T5 tokens; extra = "
           "cross-attention K/V (28 x 2 d^2) + adaLN-single and caption projection -> 0.61B (published 0.6B)")
PIXART_SIGMA = DiTSpec(
    "pixart-sigma-xl-2", hidden=1152, layers=28, heads=16, mlp_width=4608, out_channels=32, text_tokens=300,
    joint_text=False, cross_attention=True, extra_params=28 * 2 * 1152**2 + 0.016e9, spatial=8, patch=2,
    source="PixArt-Sigma XL/2: PixArt-alpha's transformer with 300 T5 tokens and the SDXL VAE (f = 8)")
COGVIDEOX_2B = DiTSpec(
    "cogvideox-2b", hidden=1920, layers=30, heads=30, mlp_width=7680, out_channels=64, text_tokens=226,
    joint_text=True, extra_params=30 * 2 * 512 * 6 * 1920 + 0.01e9, spatial=8, temporal=4, patch=2,
    causal_first_frame=True,
    source="THUDM/CogVideoX-2b transformer/config.json: 30 layers, 30 heads of 64 (d 1920), FFN 4d (GELU), patch 2, "
           "16 latent channels, 226 T5 tokens in full 3D attention, VAE 8x8 spatial and 4x temporal (causal first "
           "frame); extra = expert adaLN (2 x 512 -> 6d per layer)")
COGVIDEOX_5B = DiTSpec(
    "cogvideox-5b", hidden=3072, layers=42, heads=48, mlp_width=12288, out_channels=64, text_tokens=226,
    joint_text=True, extra_params=42 * 2 * 512 * 6 * 3072 + 0.015e9, spatial=8, temporal=4, patch=2,
    causal_first_frame=True,
    source="THUDM/CogVideoX-5b transformer/config.json: 42 layers, 48 heads of 64 (d 3072), FFN 4d, otherwise as 2B")
LTX_VIDEO = DiTSpec(
    "ltx-video-2b", hidden=2048, layers=28, heads=32, mlp_width=8192, out_channels=128, text_tokens=128,
    joint_text=False, cross_attention=True, extra_params=28 * 2 * 2048**2 + 0.04e9, spatial=32, temporal=8,
    patch=1, causal_first_frame=True,
    source="Lightricks/LTX-Video transformer/config.json (LTXVideoTransformer3DModel): 28 layers, 32 heads of 64 "
           "(d 2048), FFN 4d (gelu-approximate), cross_attention_dim 2048 to 128 T5 tokens, in/out 128 channels, "
           "patch 1: the VAE does 32x32x8 pixels per token")
OPEN_SORA_PROXY = DiTSpec(
    "open-sora-stdit-proxy", hidden=1152, layers=28, heads=16, mlp_width=12 * 1152, out_channels=32,
    text_tokens=300, joint_text=False, extra_params=28 * 4 * 1152**2, spatial=8, temporal=4, patch=2,
    source="proxy for Open-Sora's STDiT (28 spatial + 28 temporal blocks, d 1152, 16 heads, MLP 4d, cross-attention "
           "to 300 T5 tokens, 1.1B): the temporal block's GEMMs and cross-attention q/o are folded into the MLP "
           "width (28 d^2 of GEMM weights per token per block pair); spatial attention per frame is expressed as a "
           "window of one frame's tokens, the temporal attention core (F keys) is not counted")


def dit_deployment(spec: DiTSpec, gpu="h100-sxm", *, window: int | None = None, weights: str | None = None,
                   activations: str | None = None, tp: int = 1, node: str | None = None,
                   calibration=None) -> Deployment:
    """A Deployment of the DiT's per-token stack (non-causal, "square" attention)."""
    from model.serving.deployment import deployment

    return deployment(spec.architecture(window), gpu, weights=weights, activations=activations, tp=tp, node=node,
                      attention_convention="square", calibration=calibration)


@dataclass(frozen=True)
class StepCost:
    """One forward over `tokens` tokens for `batch` latents (seconds, FLOPs, bytes)."""

    time_s: float
    flops: float
    attention_s: float
    gemm_s: float
    other_s: float  # norms, element-wise kernels, collectives and the engine overhead
    weights_bytes: float  # resident weights of the stack plus the spec's extra parameters
    tokens: int
    batch: int

    @property
    def attention_share(self) -> float:
        return self.attention_s / self.time_s

    def mfu(self, peak_flop_per_s: float) -> float:
        return self.flops / (self.time_s * peak_flop_per_s)


def dit_step(dep: Deployment, tokens: int, batch: int = 1, *, context: int = 0, extra_params: float = 0.0) -> StepCost:
    """One DiT forward (every token's output projected: n_logit = tokens). `context`: keys per query beyond the
    step's own tokens (stale neighbours in patch parallelism)."""
    s = dep.step(batch, tokens, context, n_logit=tokens)
    per_op = s.op_step_s()[:, 0]
    kinds = np.array([op.kind for op in s.ops.ops])
    attn = float(per_op[np.isin(kinds, ("attention", "linear_attention"))].sum())
    gemm = float(per_op[kinds == "gemm"].sum())
    total = float(s.time_s[0])
    b_w = number_format(dep.precision.weights).bytes_per_element
    return StepCost(time_s=total, flops=float(s.ops.total("flops")[0]), attention_s=attn, gemm_s=gemm,
                    other_s=total - attn - gemm, weights_bytes=float(s.memory.weights_bytes[0]) + extra_params * b_w,
                    tokens=int(tokens), batch=int(batch))


def attention_window(spec: DiTSpec, kind: str, tokens: int, *, keep: float | None = None,
                     window: int | None = None) -> int | None:
    """Keys per query for an attention variant of this DiT at `tokens` tokens (None: full attention)."""
    w = keys_per_query(kind, tokens, spec.head_dim, keep=keep, window=window)
    return None if w is None or w >= tokens else w


# ---------------------------------------------------------------------------------------------------------
# sampling: steps x guidance, schedules

def evaluations_per_step(guidance: str, steps: int) -> tuple[int, float]:
    """(batch multiplier per evaluation, model evaluations per step) of a guidance mode."""
    if guidance not in GUIDANCE:
        raise RidgeplanError("guidance", f"unknown guidance mode {guidance!r}", GUIDANCE)
    if guidance == "cfg":
        return 2, 1.0  # conditional and unconditional in one batch
    if guidance == "cfg-sequential":
        return 1, 2.0
    if guidance == "rcfg-onetime":
        return 1, 1.0 + 1.0 / steps  # one negative-conditioned pass for the whole sampling loop
    return 1, 1.0


def sampling_seconds(step_seconds: Callable[[int], float], steps: int, guidance: str = "cfg", batch: int = 1) -> float:
    """Denoising time: steps x evaluations per step x T_step(batch x multiplier)."""
    if steps < 1:
        raise RidgeplanError("steps", f"must be >= 1, got {steps}")
    mult, evals = evaluations_per_step(guidance, steps)
    return steps * evals * step_seconds(batch * mult)


def schedule_seconds(step_seconds_at: Callable[[int], float], schedule: Sequence[tuple[int, int]]) -> float:
    """A resolution schedule: sum over (steps, tokens) stages of steps x T_step(tokens) (Bottleneck Sampling's
    high-low-high schedules; token merging)."""
    return float(sum(n * step_seconds_at(t) for n, t in schedule))


# ---------------------------------------------------------------------------------------------------------
# quantization: SVDQuant's low-rank branch

def linear_shapes(spec: DiTSpec) -> list[tuple[int, int]]:
    """(k, n) of every linear layer a token passes in the per-token stack."""
    d, w = spec.hidden, spec.stack_mlp_width
    return [(d, 3 * d), (d, d), (d, w), (w, d)] * spec.layers


def low_rank_branch(spec: DiTSpec, dep: Deployment, tokens: int, rank: int, batch: int = 1) -> dict[str, float]:
    """The 16-bit low-rank branch L1 L2 (rank r) beside every quantized linear layer: 2 N r (k + n) FLOPs and
    r (k + n) 16-bit weights per layer. Nunchaku fuses the down-projection into the activation quantization and
    the up-projection into the 4-bit GEMM, so the branch runs at the 16-bit tensor rate (large-GEMM efficiency)
    with no extra activation traffic."""
    if rank < 1:
        raise RidgeplanError("rank", f"must be >= 1, got {rank}")
    sum_kn = sum(k + n for k, n in linear_shapes(spec))
    rows = tokens * batch
    flops = 2.0 * rows * rank * sum_kn
    sixteen = "bf16" if dep.device.supports("bf16") else "fp16"
    eff = dep.eff
    peak = large_gemm_flop_per_s(dep.device, sixteen, eff)
    return {"flops": flops, "seconds": flops / peak, "params": float(rank * sum_kn),
            "bytes": float(rank * sum_kn * 2)}


# ---------------------------------------------------------------------------------------------------------
# patch parallelism

@dataclass(frozen=True)
class PatchParallel:
    """Split the latent into `devices` patches (DistriFusion / PCPP).

    conditioned: share of the other patches' keys/values each patch attends to (1.0 = all, DistriFusion;
    PCPP conditions on part of its neighbours); halo: extra tokens computed per patch as a share of the patch
    (convolution borders of U-Nets; 0 for DiTs); stale: the exchange is asynchronous and one step stale, so it
    overlaps the step's compute."""

    devices: int
    conditioned: float = 1.0
    halo: float = 0.0
    stale: bool = True

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise RidgeplanError("devices", f"must be >= 1, got {self.devices}")
        if not 0 <= self.conditioned <= 1:
            raise RidgeplanError("conditioned", f"must be in [0, 1], got {self.conditioned}")
        if self.halo < 0:
            raise RidgeplanError("halo", f"must be >= 0, got {self.halo}")


def patch_parallel_step(dep: Deployment, tokens: int, plan: PatchParallel, batch: int = 1) -> dict[str, float]:
    """One denoising step split over `plan.devices` devices of `dep`'s type, linked by its scale-up tier (or
    PCIe). Returns compute, communication and step seconds, bytes exchanged per device and the speed-up over
    one device."""
    p = plan.devices
    single = dit_step(dep, tokens, batch).time_s
    if p == 1:
        return {"compute_s": single, "comm_s": 0.0, "step_s": single, "speedup": 1.0, "comm_bytes": 0.0,
                "single_s": single}
    own = math.ceil(tokens / p * (1 + plan.halo))
    others = round(plan.conditioned * (tokens - tokens / p))
    compute = dit_step(dep, own, batch, context=others).time_s
    arch = dep.arch
    layers = arch.num_layers
    kv_width = sum(g.count * g.attention.kv_width
                   for g in arch.groups) / max(layers, 1)
    b_a = dep.symbols()["b_a"]
    # every device needs the fresh K/V of the conditioned share of the whole latent: an all-gather per layer
    gathered = layers * batch * plan.conditioned * tokens * kv_width * b_a
    tier = dep.tiers.intra
    comm = float(collective_time("all_gather", gathered, p, intra=tier)) if plan.conditioned > 0 else 0.0
    step = max(compute, comm) if plan.stale else compute + comm
    return {"compute_s": compute, "comm_s": comm, "step_s": step, "speedup": single / step,
            "comm_bytes": gathered * (p - 1) / p, "single_s": single}
