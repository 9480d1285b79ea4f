"""The one kernel-time primitive: every time the library predicts for a kernel comes from `kernel_time`.

    t = (t_c^p + t_m^p)^(1/p) + kernels x kernel_floor_s          (only for kernels that do work)
    t_c = FLOPs / (peak x eta_c(kind, shape)),   t_m = bytes / (bandwidth x eta_m(bytes))

with the shape-dependent efficiencies of `model.roofline.efficiency` (GEMM tile fill and saturation, attention
query packing, size-dependent bandwidth) and the soft roofline corner p. The step evaluator applies it to every
operator of the graph; kernel tables (validation, calibration), the U-Net/VAE path and the analyses in
`model.techniques` apply it to the kernels they describe, so none of them writes max(compute, memory) by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.roofline.efficiency_forms import (attention_eta, combine_roofline, gemm_eta, gemm_k_loop_s, gemm_sustain,
                                             memory_eta, sustains)

KINDS = ("gemm", "attention", "linear_attention", "elementwise", "embedding", "copy")


@dataclass(frozen=True)
class KernelTime:
    """Roofline terms of kernels (arrays broadcast over the inputs), in seconds."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    busy_s: np.ndarray  # compute and memory combined at the soft corner
    floor_s: np.ndarray  # launch/ramp floor of the kernels that do work

    @property
    def time_s(self) -> np.ndarray:
        return self.busy_s + self.floor_s


def roofline_terms(flops, nbytes, peak_flop_per_s, eta_compute, bandwidth_bytes_per_s, eff, eta_memory_scale=1.0,
                   extra_compute_s=0.0):
    """(compute_s, memory_s): FLOPs at eta_compute of peak, bytes at the size-dependent eta_m of bandwidth (times
    `eta_memory_scale`: Efficiency.attention_mem_scale for attention kernels); `extra_compute_s`: issue time the
    kernel's SMs spend beside its FLOPs (a decode attention call's per-work-item cost, Efficiency.decode_item_s),
    added to the compute term."""
    flops, nbytes = np.asarray(flops, dtype=float), np.asarray(nbytes, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        compute = np.where(flops > 0, flops / (peak_flop_per_s * eta_compute), 0.0)
        if np.any(np.asarray(extra_compute_s) != 0):  # skipped at 0: the hand-set classes stay bit-identical
            compute = compute + np.where(flops > 0, extra_compute_s, 0.0)
        # a scaled memory ceiling (attention_mem_scale > 1 where attention reads stream better than copies) stops at
        # the nominal bandwidth
        eta_m = np.minimum(memory_eta(nbytes, eff) * eta_memory_scale, 1.0)
        memory = np.where(nbytes > 0, nbytes / (bandwidth_bytes_per_s * eta_m), 0.0)
    return compute, memory


def kernel_time(flops, nbytes, *, peak_flop_per_s, eta_compute, bandwidth_bytes_per_s, eff, kernels=1.0,
                extra_busy_s=0.0, extra_floor_s=0.0, eta_memory_scale=1.0, floor_s=None, roofline_p=None,
                extra_compute_s=0.0) -> KernelTime:
    """Time of kernels doing `flops` and moving `nbytes` (see the module docstring).

    `extra_busy_s`: another term the kernel waits on (a collective's network time), combined as a hard max.
    `extra_floor_s`: seconds of a serial companion kernel (the activation quantization a kernel table times with
    each FP8 GEMM), counted with the floor of the kernels that do work. `eta_memory_scale`: see roofline_terms.
    `floor_s`: each kernel's launch floor where it is not eff.kernel_floor_s (collectives:
    Efficiency.collective_floor). `roofline_p`: the corner exponent per kernel where it is not eff.roofline_p
    (attention kernels: Efficiency.attention_p). `extra_compute_s`: see roofline_terms."""
    compute, memory = roofline_terms(flops, nbytes, peak_flop_per_s, eta_compute, bandwidth_bytes_per_s, eff,
                                     eta_memory_scale, extra_compute_s)
    extra = np.asarray(extra_busy_s, dtype=float)
    # one corner for every kernel where they agree: numpy squares a scalar exponent of 2 exactly, an array one through
    # pow (last-bit differences), and the hand-set classes must stay bit-identical
    same = roofline_p is None or bool(np.all(np.asarray(roofline_p) == np.asarray(eff.roofline_p)))
    p = eff.roofline_p if same else roofline_p
    busy = np.maximum(combine_roofline(compute, memory, p), extra)
    active = (np.asarray(flops) > 0) | (np.asarray(nbytes) > 0) | (extra > 0)
    kernels = np.asarray(kernels, dtype=float)
    per_kernel = eff.kernel_floor_s if floor_s is None else np.asarray(floor_s, dtype=float)
    floor = np.where(active, kernels * per_kernel + np.asarray(extra_floor_s, dtype=float), 0.0)
    return KernelTime(compute, memory, busy, floor)


def compute_eta(kind, m, n, eff, *, gemm_max=1.0, weight_only=False, tile=None, depth=None, mla=False,
                gemv=True) -> np.ndarray:
    """eta_c of one kernel kind: GEMMs by (m, n), dtype ceiling and tile rows `tile` (less the dequantisation
    penalty for weight-only formats), attention by query rows per KV head m, keys per query n and head dimension
    `depth` (None or 0 when not known), MLA attention (`mla`) at mla_attention_scale of that ceiling,
    mla_d_half_scale, mla_kv_half_scale and mla_q_half_scale of its head-dimension, KV-length and query-row
    half-points, element-wise kernels at the vector ceiling."""
    if kind == "gemm":
        eta = gemm_eta(m, n, gemm_max, eff, tile, gemv)
        return np.where(weight_only, eta * (1 - eff.dequant_penalty), eta)
    if kind == "attention":
        top = eff.attention_max * np.where(mla, eff.mla_attention_scale, 1.0)
        d_half = eff.attention_d_half * np.where(mla, eff.mla_d_half_scale, 1.0)
        kv_half = eff.attention_kv_half * np.where(mla, eff.mla_kv_half_scale, 1.0)
        q_half = eff.attention_q_half * np.where(mla, eff.mla_q_half_scale, 1.0)
        # no kernel beats the peak: an MLA scale above 1 (with its larger head-dimension half-point) stops there
        return np.minimum(attention_eta(m, top, eff, n, depth, d_half, kv_half, q_half), 1.0)
    if kind == "linear_attention":
        return attention_eta(m, eff.linear_attention_max, eff)
    if kind in ("elementwise", "embedding", "copy"):
        return np.asarray(eff.vector_max, dtype=float)
    raise RidgeplanError("kernel", f"unknown kernel kind {kind!r}", KINDS)


def gemm_time(m, n, k, *, device: Device, dtype: str, eff, bytes_per_weight: float, bytes_per_activation=2.0,
              kernels=1.0, weight_only=False) -> KernelTime:
    """A GEMM (m x k) @ (k x n) on `device` at `dtype`: 2mnk FLOPs, k n weights plus m (k + n) activations."""
    m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
    flops = 2 * m * n * k
    nbytes = k * n * bytes_per_weight + m * (k + n) * bytes_per_activation
    eta = compute_eta("gemm", m, n, eff, gemm_max=eff.gemm_max(dtype), weight_only=weight_only,
                      tile=eff.gemm_tile(dtype))
    eta = eta * gemm_sustain(flops / np.asarray(kernels, dtype=float), device.peak(dtype), eff, sustains(dtype))
    # no activation-quantization call here (Efficiency.gemm_quant): a step adds it where its engine does not fuse it
    # into the kernel before (evaluator.ExecContext.dense_quant; model.engines.step_quant_flags)
    return kernel_time(flops, nbytes, peak_flop_per_s=device.peak(dtype), eta_compute=eta,
                       bandwidth_bytes_per_s=device.memory.bandwidth_bytes_per_s, eff=eff, kernels=kernels,
                       eta_memory_scale=eff.gemm_mem_scale(m),
                       extra_busy_s=gemm_k_loop_s(k, eff, eff.gemm_k_scale(dtype)))


def memory_time(nbytes, *, bandwidth_bytes_per_s: float, eff, kernels=1.0) -> KernelTime:
    """A memory-bound kernel (copy, scan, optimizer update) moving `nbytes` at the size-dependent bandwidth."""
    return kernel_time(0.0, nbytes, peak_flop_per_s=1.0, eta_compute=1.0,
                       bandwidth_bytes_per_s=bandwidth_bytes_per_s, eff=eff, kernels=kernels)


def large_gemm_flop_per_s(device: Device, dtype: str, eff) -> float:
    """The asymptotic rate of large GEMMs: peak x the dtype's GEMM ceiling (what throughput ceilings use)."""
    return device.peak(dtype) * eff.gemm_max(dtype)


def streaming_bytes_per_s(bandwidth_bytes_per_s, eff) -> np.ndarray:
    """The asymptotic rate of large memory-bound kernels: bandwidth x the memory ceiling."""
    return np.asarray(bandwidth_bytes_per_s, dtype=float) * eff.mem_max
