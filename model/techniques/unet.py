"""U-Nets and VAE decoders of latent diffusion, counted layer by layer from their configs and timed with the
roofline ("UNet: per-step FLOPs from resolution, plus its attention blocks").

The structure follows diffusers' `UNet2DConditionModel` and the autoencoder's `Decoder`:
- ResBlock(c_in, c_out) at P positions: GroupNorm+SiLU, conv3x3 (P 9 c_in c_out MACs), time-embedding add,
  GroupNorm+SiLU, conv3x3 (P 9 c_out^2), a 1x1 skip conv when c_in != c_out, residual add;
- Transformer2D(c, depth) at P positions: GroupNorm, proj_in (P c^2), then per layer self-attention (q, k, v, o:
  4 P c^2; core QK^T + AV: 2 P^2 c MACs), cross-attention to T text tokens (q, o: 2 P c^2; k, v: 2 T c_x c; core
  2 P T c), a GEGLU feed-forward (P c 8c + P 4c c), three LayerNorms and residual adds; proj_out (P c^2);
- down blocks: `layers_per_block` ResBlocks (+ a transformer each where the level has attention) and a stride-2
  conv; mid block: ResBlock, transformer, ResBlock; up blocks: `layers_per_block + 1` ResBlocks on the
  concatenated skip, an upsampling conv3x3 at the finer level;
- VAE decoder: conv_in, mid (ResBlock, one single-head attention over all positions, ResBlock), then per level
  `layers_per_block + 1` ResBlocks and an upsampling conv3x3, GroupNorm+SiLU, conv_out.
Counts at 512x512 agree with public ones within ~2% (tests/test_diffusion.py): the SD-v1.4 U-Net's conv and linear
layers 339 GMACs per sample (BK-SDM's thop count; the attention matmuls add 63 GMACs), its VAE decoder 1,257 vs
1,272 GMACs (onnx-tool's profile of the SD-v1.4 ONNX export, which also counts element-wise ops), SDXL's weights
2.54B vs 2.567B (the time-embedding projections are not counted).

Cost model: every conv/linear is a GEMM (convs as implicit GEMMs, m = batch x positions, n = c_out,
k = taps x c_in) timed as max(FLOPs / (peak x eta_gemm(m, n)), (weights + activations) / (eta_m BW)); attention
cores run on the attention path (flash kernels, fraction `attention_eta(P)` of peak); norms, activations and adds
are memory-bound passes over the feature maps (eager PyTorch: GroupNorm and SiLU as separate kernels); every
kernel pays the device's kernel floor and every forward the engine's step overhead. With activations narrower
than 16 bits (W8A8, W4A4) each GEMM input is quantized by an extra pass (read 16-bit, write the narrow format)
and attention stays 16-bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.errors import RidgeplanError
from model.hardware.db import load_device
from model.hardware.schema import Device
from model.precision import Precision, number_format
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_sets import efficiency_for
from model.roofline.evaluator import context_for, resolve_precision
from model.roofline.kernel import compute_eta, kernel_time
from model.techniques.encoder import keys_per_query

_KINDS = ("gemm", "attention", "elementwise", "quantize")


@dataclass(frozen=True)
class UNetConfig:
    """A latent-diffusion U-Net (diffusers UNet2DConditionModel layout)."""

    name: str
    block_out_channels: tuple[int, ...]
    transformer_layers: tuple[int, ...]  # transformer layers per attention block at each level (0: none)
    layers_per_block: int = 2
    mid_transformer_layers: int = 1
    in_channels: int = 4
    cross_attention_dim: int = 768
    text_tokens: int = 77
    ff_mult: int = 4  # GEGLU inner width = ff_mult x channels
    attention_head_dim: int | None = 64  # channels per head (SD v2, SDXL); None: channels / attention_heads
    attention_heads: int = 8  # heads per attention layer when attention_head_dim is None (SD v1)
    params: float = 0.0  # published parameter count (memory); 0: the counted conv/linear weights
    vae_factor: int = 8
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.block_out_channels) != len(self.transformer_layers):
            raise RidgeplanError("transformer_layers", "needs one entry per level of block_out_channels")


@dataclass(frozen=True)
class VAEDecoderConfig:
    """An autoencoder decoder (diffusers `Decoder`); `block_out_channels` in encoder order (finest first)."""

    name: str
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    out_channels: int = 3
    factor: int = 8
    source: str = ""


# Configs (diffusers config.json of each checkpoint):
SD_V1 = UNetConfig(
    "sd-v1.5-unet", (320, 640, 1280, 1280), (1, 1, 1, 0), cross_attention_dim=768, params=859.52e6,
    attention_head_dim=None, attention_heads=8,
    source="runwayml/stable-diffusion-v1-5 unet/config.json: block_out_channels [320, 640, 1280, 1280], "
           "CrossAttnDownBlock2D x3 + DownBlock2D, layers_per_block 2, 8 heads, cross_attention_dim 768; 859.52M "
           "parameters (onnx-tool profile of SD-v1.4, same architecture)")
SD_V2 = UNetConfig(
    "sd-v2.1-unet", (320, 640, 1280, 1280), (1, 1, 1, 0), cross_attention_dim=1024, params=865.91e6,
    source="stabilityai/stable-diffusion-2-1-base unet/config.json (also sd-turbo): as SD v1 with "
           "cross_attention_dim 1024 and linear projections; 865.9M parameters")
SDXL = UNetConfig(
    "sdxl-unet", (320, 640, 1280), (0, 2, 10), mid_transformer_layers=10, cross_attention_dim=2048,
    params=2.567e9,
    source="stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (also sdxl-turbo): block_out_channels "
           "[320, 640, 1280], DownBlock2D + CrossAttnDownBlock2D x2, transformer_layers_per_block [1, 2, 10], "
           "cross_attention_dim 2048; 2.567B parameters (SDXL report)")
SD_VAE_DECODER = VAEDecoderConfig(
    "sd-vae-decoder", source="stabilityai/sd-vae-ft-mse config.json: block_out_channels [128, 256, 512, 512], "
                             "layers_per_block 2, latent_channels 4 (the SDXL and FLUX VAEs share the layout)")


@dataclass
class _Ops:
    """Operator rows (one per layer instance) for one forward of a conv net at a fixed batch and size."""

    batch: int
    kind: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    params: list[float] = field(default_factory=list)
    act_in: list[float] = field(default_factory=list)  # elements read
    act_out: list[float] = field(default_factory=list)  # elements written
    m: list[float] = field(default_factory=list)
    n: list[float] = field(default_factory=list)

    def _add(self, kind, name, flops=0.0, params=0.0, act_in=0.0, act_out=0.0, m=0.0, n=0.0) -> None:
        self.kind.append(kind)
        self.name.append(name)
        self.flops.append(float(flops))
        self.params.append(float(params))
        self.act_in.append(float(act_in))
        self.act_out.append(float(act_out))
        self.m.append(float(m))
        self.n.append(float(n))

    # building blocks (positions P, channels c; every count is for the whole batch)
    def conv(self, name, cin, cout, P, taps=9) -> None:
        b = self.batch
        self._add("gemm", name, 2 * b * P * taps * cin * cout, taps * cin * cout, b * P * cin, b * P * cout,
                  b * P, cout)

    def linear(self, name, cin, cout, rows) -> None:
        self._add("gemm", name, 2 * rows * cin * cout, cin * cout, rows * cin, rows * cout, rows, cout)

    def passes(self, name, elements, reads=1, writes=1) -> None:
        self._add("elementwise", name, elements * (reads + writes), 0.0, elements * reads, elements * writes)

    def attention(self, name, queries, keys, c) -> None:
        b = self.batch
        self._add("attention", name, 4 * b * queries * keys * c, 0.0, b * (queries + 2 * keys) * c, b * queries * c,
                  queries, c)

    def resblock(self, name, cin, cout, P) -> None:
        e_in, e_out = self.batch * P * cin, self.batch * P * cout
        self.passes(f"{name}.norm1", e_in)
        self.passes(f"{name}.silu1", e_in)
        self.conv(f"{name}.conv1", cin, cout, P)
        self.passes(f"{name}.temb_add", e_out)
        self.passes(f"{name}.norm2", e_out)
        self.passes(f"{name}.silu2", e_out)
        self.conv(f"{name}.conv2", cout, cout, P)
        if cin != cout:
            self.conv(f"{name}.skip", cin, cout, P, taps=1)
        self.passes(f"{name}.residual", e_out, reads=2)

    def transformer(self, name, c, depth, P, text_tokens, cross_dim, ff_mult, keys=None) -> None:
        b = self.batch
        rows = b * P
        e = rows * c
        self.passes(f"{name}.norm", e)
        self.linear(f"{name}.proj_in", c, c, rows)
        for i in range(depth):
            t = f"{name}.{i}"
            self.passes(f"{t}.ln1", e)
            self.linear(f"{t}.qkv", c, 3 * c, rows)
            self.attention(f"{t}.self_attn", P, P if keys is None else min(P, keys(c, P)), c)
            self.linear(f"{t}.o", c, c, rows)
            self.passes(f"{t}.add1", e, reads=2)
            self.passes(f"{t}.ln2", e)
            self.linear(f"{t}.q_cross", c, c, rows)
            self.linear(f"{t}.kv_cross", cross_dim, 2 * c, b * text_tokens)
            self.attention(f"{t}.cross_attn", P, text_tokens, c)
            self.linear(f"{t}.o_cross", c, c, rows)
            self.passes(f"{t}.add2", e, reads=2)
            self.passes(f"{t}.ln3", e)
            self.linear(f"{t}.ff_in", c, 2 * ff_mult * c, rows)
            self.passes(f"{t}.geglu", rows * ff_mult * c, reads=2)
            self.linear(f"{t}.ff_out", ff_mult * c, c, rows)
            self.passes(f"{t}.add3", e, reads=2)
        self.linear(f"{name}.proj_out", c, c, rows)
        self.passes(f"{name}.residual", e, reads=2)

    def arrays(self) -> dict[str, np.ndarray]:
        keys = ("flops", "params", "act_in", "act_out", "m", "n")
        return {k: np.asarray(getattr(self, k), dtype=float) for k in keys}


def unet_ops(cfg: UNetConfig, latent_h: int, latent_w: int, batch: int = 1, *, attention: str = "full",
             keep: float | None = None, window: int | None = None) -> _Ops:
    """One forward of the U-Net on `batch` latents of latent_h x latent_w. `attention`: full | sparse (keep) |
    local (window keys) | linear (a head_dim x head_dim state per head: FLOPs of attention over head_dim keys)."""
    ops = _Ops(batch)

    def keys(c: int, P: float) -> int:
        head_dim = cfg.attention_head_dim or c // cfg.attention_heads
        w = keys_per_query(attention, int(P), head_dim, keep=keep, window=window)
        return int(P) if w is None else w

    chs = cfg.block_out_channels
    n_levels = len(chs)
    if latent_h % 2 ** (n_levels - 1) or latent_w % 2 ** (n_levels - 1):
        raise RidgeplanError("resolution", f"latent {latent_h}x{latent_w} must be divisible by {2 ** (n_levels - 1)}")
    pos = [latent_h * latent_w / 4 ** i for i in range(n_levels)]
    tx = dict(text_tokens=cfg.text_tokens, cross_dim=cfg.cross_attention_dim, ff_mult=cfg.ff_mult,
              keys=None if attention == "full" else keys)
    ops.conv("conv_in", cfg.in_channels, chs[0], pos[0])
    skips, prev = [chs[0]], chs[0]
    for i, c in enumerate(chs):
        for j in range(cfg.layers_per_block):
            ops.resblock(f"down{i}.res{j}", prev, c, pos[i])
            if cfg.transformer_layers[i]:
                ops.transformer(f"down{i}.attn{j}", c, cfg.transformer_layers[i], pos[i], **tx)
            prev = c
            skips.append(c)
        if i < n_levels - 1:
            ops.conv(f"down{i}.downsample", c, c, pos[i + 1])
            skips.append(c)
    last = n_levels - 1
    ops.resblock("mid.res0", prev, prev, pos[last])
    if cfg.mid_transformer_layers:
        ops.transformer("mid.attn", prev, cfg.mid_transformer_layers, pos[last], **tx)
    ops.resblock("mid.res1", prev, prev, pos[last])
    for i in reversed(range(n_levels)):
        c = chs[i]
        for j in range(cfg.layers_per_block + 1):
            ops.resblock(f"up{i}.res{j}", prev + skips.pop(), c, pos[i])
            if cfg.transformer_layers[i]:
                ops.transformer(f"up{i}.attn{j}", c, cfg.transformer_layers[i], pos[i], **tx)
            prev = c
        if i > 0:
            ops.passes(f"up{i}.upsample_nearest", batch * pos[i] * c, reads=1, writes=4)
            ops.conv(f"up{i}.upsample", c, c, pos[i - 1])
    ops.passes("out.norm", batch * pos[0] * chs[0])
    ops.passes("out.silu", batch * pos[0] * chs[0])
    ops.conv("conv_out", chs[0], cfg.in_channels, pos[0])
    return ops


def vae_decoder_ops(cfg: VAEDecoderConfig, latent_h: int, latent_w: int, batch: int = 1) -> _Ops:
    """One decode of `batch` latents of latent_h x latent_w into images `factor` times larger per side."""
    ops = _Ops(batch)
    chs = tuple(reversed(cfg.block_out_channels))
    P = float(latent_h * latent_w)
    ops.conv("conv_in", cfg.latent_channels, chs[0], P)
    c = chs[0]
    ops.resblock("mid.res0", c, c, P)
    ops.passes("mid.attn.norm", batch * P * c)
    ops.linear("mid.attn.qkv", c, 3 * c, batch * P)
    ops.attention("mid.attn.core", P, P, c)
    ops.linear("mid.attn.o", c, c, batch * P)
    ops.passes("mid.attn.residual", batch * P * c, reads=2)
    ops.resblock("mid.res1", c, c, P)
    prev = c
    for i, c in enumerate(chs):
        for j in range(cfg.layers_per_block + 1):
            ops.resblock(f"up{i}.res{j}", prev, c, P)
            prev = c
        if i < len(chs) - 1:
            ops.passes(f"up{i}.upsample_nearest", batch * P * c, reads=1, writes=4)
            P *= 4
            ops.conv(f"up{i}.upsample", c, c, P)
    ops.passes("out.norm", batch * P * prev)
    ops.passes("out.silu", batch * P * prev)
    ops.conv("conv_out", prev, cfg.out_channels, P)
    return ops


@dataclass(frozen=True)
class ConvNetCost:
    """Roofline cost of one forward of a conv net (all times in seconds)."""

    name: str
    time_s: float
    gemm_s: float
    attention_s: float
    elementwise_s: float  # norms, activations, adds and (narrow activations) quantization passes
    floor_s: float  # kernel floors and the engine's step overhead
    flops: float
    macs: float
    weight_params: float  # conv and linear weights counted from the config
    weight_bytes: float  # resident weights in the deployment's format (the published count when given)
    kernels: int
    assumptions: tuple[str, ...] = ()

    @property
    def attention_share(self) -> float:
        return self.attention_s / self.time_s


def conv_net_cost(ops: _Ops, device: str | Device, precision: Precision | None = None, *, name: str = "",
                  params: float = 0.0, efficiency: Efficiency | None = None) -> ConvNetCost:
    """Time one forward of `ops` on `device` at `precision` (16-bit weights and activations by default)."""
    dev = load_device(device) if isinstance(device, str) else device
    sixteen = "bf16" if dev.supports("bf16") else "fp16"
    prec = precision or Precision(weights=sixteen, kv=sixteen, embeddings=sixteen)
    rp = resolve_precision(prec, dev)
    eff = efficiency or efficiency_for(dev)
    ctx = context_for(dev, rp, efficiency=eff)
    a = ops.arrays()
    kinds = np.array(ops.kind)
    b_w = number_format(prec.weights).bytes_per_element
    b_a = 2.0
    b_in = min(number_format(rp.activations).bytes_per_element, b_a) if rp.activations not in ("fp32",) else 4.0
    narrow = b_in < b_a
    is_gemm = kinds == "gemm"
    is_attn = kinds == "attention"
    is_elem = kinds == "elementwise"
    bw = dev.memory.bandwidth_bytes_per_s

    # GEMMs: inputs in the activation format, outputs 16-bit, weights in the weight format
    g_bytes = a["params"] * b_w + a["act_in"] * b_in + a["act_out"] * b_a
    safe_m, safe_n = np.where(is_gemm, a["m"], 1.0), np.where(is_gemm, a["n"], 1.0)
    act_bytes = (a["act_in"] + a["act_out"]) * b_a

    def busy(rows, flops, nbytes, peak, eta) -> np.ndarray:
        kt = kernel_time(np.where(rows, flops, 0.0), np.where(rows, nbytes, 0.0), peak_flop_per_s=peak,
                         eta_compute=eta, bandwidth_bytes_per_s=bw, eff=eff, kernels=0.0)
        return kt.busy_s

    gemm_t = busy(is_gemm, a["flops"], g_bytes, ctx.peak_flop_per_s["dense"],
                  compute_eta("gemm", safe_m, safe_n, eff, gemm_max=ctx.gemm_max["dense"],
                              weight_only=bool(ctx.weight_only["dense"])))
    attn_t = busy(is_attn, a["flops"], act_bytes, ctx.peak_flop_per_s["attention"],
                  compute_eta("attention", np.where(is_attn, a["m"], 1.0), None, eff))
    elem_t = busy(is_elem, a["flops"], act_bytes, ctx.peak_flop_per_s["vector"], compute_eta("elementwise", None, None, eff))
    # quantize each GEMM input (read 16-bit, write the narrow format) when activations are narrow
    q_bytes = np.where(is_gemm, a["act_in"] * (b_a + b_in), 0.0) if narrow else np.zeros_like(g_bytes)
    q_mem = busy(q_bytes > 0, 0.0, q_bytes, 1.0, 1.0)
    kernels = int(len(kinds) + (int(is_gemm.sum()) if narrow else 0))
    floor = kernels * eff.kernel_floor_s + eff.step_overhead_s
    total = float(gemm_t.sum() + attn_t.sum() + elem_t.sum() + q_mem.sum() + floor)
    counted = float(a["params"].sum())
    notes = (*rp.assumptions, f"{dev.name}: efficiency {eff.source}",
             f"{kernels} kernels at {eff.kernel_floor_s * 1e6:.1f} us each plus {eff.step_overhead_s * 1e3:.1f} ms "
             "per forward")
    return ConvNetCost(
        name=name, time_s=total, gemm_s=float(gemm_t.sum()), attention_s=float(attn_t.sum()),
        elementwise_s=float(elem_t.sum() + q_mem.sum()), floor_s=float(floor),
        flops=float(a["flops"][is_gemm | is_attn].sum()),
        macs=float(a["flops"][is_gemm | is_attn].sum() / 2), weight_params=counted,
        weight_bytes=(params or counted) * b_w, kernels=kernels, assumptions=notes)


def unet_step_cost(cfg: UNetConfig, device: str | Device, precision: Precision | None = None, *, height: int,
                   width: int, batch: int = 1, attention: str = "full", keep: float | None = None,
                   window: int | None = None, efficiency: Efficiency | None = None) -> ConvNetCost:
    """One U-Net forward for `batch` images of height x width pixels (attention variants as in `unet_ops`)."""
    f = cfg.vae_factor
    if height % f or width % f:
        raise RidgeplanError("resolution", f"{height}x{width} must be divisible by the VAE factor {f}")
    ops = unet_ops(cfg, height // f, width // f, batch, attention=attention, keep=keep, window=window)
    return conv_net_cost(ops, device, precision, name=cfg.name, params=cfg.params, efficiency=efficiency)


def vae_decode_cost(cfg: VAEDecoderConfig, device: str | Device, precision: Precision | None = None, *,
                    height: int, width: int, batch: int = 1, efficiency: Efficiency | None = None) -> ConvNetCost:
    """Decoding `batch` images of height x width pixels."""
    f = cfg.factor
    if height % f or width % f:
        raise RidgeplanError("resolution", f"{height}x{width} must be divisible by the VAE factor {f}")
    return conv_net_cost(vae_decoder_ops(cfg, height // f, width // f, batch), device, precision, name=cfg.name,
                         efficiency=efficiency)
