"""PIM, NPU + PIM, FPGA and edge devices.

- Two resources working on one step: run one after the other, a step costs t_a + t_b; overlapped (two
  sub-batches interleaved, NeuPIMs-style), about max(t_a, t_b) plus a pipeline fill. The gain
  (t_a + t_b) / max(t_a, t_b) = 1 + min/max is at most 2, and a gain g needs min/max = g - 1.
- DRAM-PIM: a GEMV streams its matrix at the bank-internal bandwidth (N_units x BW_int), not over the pins.
- NPU + PIM decode: the GEMMs (QKV, projections, FFN) run on the NPU, attention's GEMVs over the KV cache run
  in the PIM stacks holding it; blocked = T_gemm + T_gemv, concurrent = pipeline of k sub-batches.
- Batch-1 decode on FPGAs and edge parts: tok/s ~= eta BW / bytes per token; energy efficiency tok/J = tok/s /
  power; cost efficiency = tok/s / price. The step's arithmetic intensity (FLOP / byte) below the device's
  ridge (peak / BW) means memory-bound.
- Many weak devices: tensor parallelism costs sum_layers T_layer / N + 2 L T_allreduce per token; pipeline
  parallelism at batch 1 runs the stages one after another, L T_layer + (N - 1) T_p2p. Over a slow link with a
  large per-message latency alpha, a star all-reduce (2 alpha + (N - 1) M / beta) beats a ring
  (2 (N - 1) alpha + 2 (N - 1) / N M / beta). Weights streamed from disk through a window of w layers keep
  w x layer_bytes / N (+ buffers) per device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.hardware.schema import Device
from model.roofline.collectives import Tier, collective_time
from model.roofline.efficiency_sets import efficiency_for
from model.serving.deployment import Deployment
from model.roofline.kernel import streaming_bytes_per_s


def overlap_gain(t_a, t_b, fill_s=0.0) -> np.ndarray:
    """Blocked over overlapped time of two resources: (t_a + t_b) / (max(t_a, t_b) + fill); <= 2 with no fill."""
    a, b = np.asarray(t_a, dtype=float), np.asarray(t_b, dtype=float)
    return (a + b) / (np.maximum(a, b) + np.asarray(fill_s, dtype=float))


def balance_for_gain(gain) -> np.ndarray:
    """min/max time ratio two overlapped resources need for a gain g over running them in turn: g - 1."""
    g = np.asarray(gain, dtype=float)
    if np.any((g < 1) | (g > 2)):
        raise RidgeplanError("gain", "an overlap of two resources gains between 1x and 2x")
    return g - 1


def pim_gemv_s(matrix_bytes, pim: Device, units: int = 1) -> np.ndarray:
    """Seconds to stream `matrix_bytes` through a GEMV inside `units` PIM devices at their internal bandwidth
    (the device class's streaming efficiency applied)."""
    require_positive("units", units, integer=True)
    if pim.kind != "pim":
        raise RidgeplanError("pim", f"{pim.id} is a {pim.kind}, not a processing-in-memory device")
    eff = efficiency_for(pim)
    return np.asarray(matrix_bytes, dtype=float) / streaming_bytes_per_s(pim.memory.bandwidth_bytes_per_s * units, eff)


def _split(d: Deployment, batch, context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(GEMM seconds, attention seconds, KV bytes read by attention) of a decode step on `d`."""
    _, _, exposed = d.op_seconds(batch, 1.0, context)
    ops = d.graph.evaluate({**d.symbols(), "B": batch, "T": 1.0, "C": context})
    counts = d.counts.sum(axis=0)
    att = d.per_sequence_ops
    return (counts[~att] @ exposed[~att] + d.eff.step_overhead_s, counts[att] @ exposed[att],
            counts[att] @ (ops.kv_read_bytes[att] + ops.kv_write_bytes[att]))


@dataclass(frozen=True)
class NpuPimStep:
    gemm_s: float  # NPU part (whole batch)
    gemv_s: float  # PIM part (whole batch)
    npu_only_s: float  # attention on the NPU as well
    blocked_s: float  # NPU then PIM
    concurrent_s: float  # sub-batches interleaved

    @property
    def gain_over_blocked(self) -> float:
        return self.blocked_s / self.concurrent_s

    @property
    def gain_over_npu_only(self) -> float:
        return self.npu_only_s / self.concurrent_s


def npu_pim_step(npu: Deployment, pim: Device, pim_units: int, batch: int, context: int,
                 sub_batches: int = 2) -> NpuPimStep:
    """A decode step of `batch` sequences at `context` tokens with GEMMs on `npu` and attention GEMVs over the KV
    in `pim_units` PIM devices. Concurrent: k sub-batches interleaved layer by layer (one sub-batch's attention
    on the PIM while another's GEMMs run on the NPU), max(k g_k, v) + min(g_k, v_k) per step, where g_k is one
    sub-batch's GEMM time (each sub-batch re-reads the weights), v the whole batch's GEMV time and the min term
    the pipeline fill."""
    require_positive("sub_batches", sub_batches, integer=True)
    g, a, kv = _split(npu, float(batch), float(context))
    gemv = float(pim_gemv_s(kv, pim, pim_units)[0])
    g_k = float(_split(npu, batch / sub_batches, float(context))[0][0])
    v_k = gemv / sub_batches
    concurrent = max(sub_batches * g_k, gemv) + min(g_k, v_k)
    return NpuPimStep(float(g[0]), gemv, float(g[0] + a[0]), float(g[0]) + gemv, concurrent)


@dataclass(frozen=True)
class Batch1Efficiency:
    tokens_per_s: float
    power_w: float | None
    usd_per_hour: float | None

    @property
    def tokens_per_joule(self) -> float | None:
        return None if not self.power_w else self.tokens_per_s / self.power_w

    @property
    def tokens_per_usd(self) -> float | None:
        return None if not self.usd_per_hour else self.tokens_per_s * 3600 / self.usd_per_hour


def batch1_efficiency(d: Deployment, context: int = 512, power_w: float | None = None,
                      usd_per_hour: float | None = None) -> Batch1Efficiency:
    """Batch-1 decode tokens/s at `context` cached tokens, per joule (TDP unless `power_w` is given) and per
    dollar (the hardware file's rental price unless `usd_per_hour` is given)."""
    tps = 1.0 / float(d.step(1, 1, context).time_s[0])
    power = power_w if power_w is not None else (d.device.power.tdp_w if d.device.power else None)
    price = usd_per_hour if usd_per_hour is not None else (d.device.price.usd_per_hour if d.device.price else None)
    return Batch1Efficiency(tps, power, price)


def decode_intensity(d: Deployment, batch: int = 1, context: int = 512) -> tuple[float, float]:
    """(FLOP per byte of a decode step, the device's ridge point for the dense compute dtype)."""
    ops = d.graph.evaluate({**d.symbols(), "B": float(batch), "T": 1.0, "C": float(context)})
    counts = d.counts.sum(axis=0)
    intensity = float(counts @ ops.flops[:, 0]) / float(counts @ ops.bytes[:, 0])
    ridge = d.device.peak(d.resolved.dense_dtype) / d.device.memory.bandwidth_bytes_per_s
    return intensity, ridge


# ---------------------------------------------------------------------------------------------------------
# many weak devices

def allreduce_s(message_bytes: float, devices: int, tier: Tier, algorithm: str) -> float:
    return float(collective_time("all_reduce", message_bytes, devices, intra=tier, algorithm=algorithm))


def star_terms(message_bytes: float, devices: int, tier: Tier) -> tuple[float, float]:
    """(latency term 2 alpha, bandwidth term (N - 1) M / beta) of a star all-reduce."""
    return 2 * float(tier.latency_s), (devices - 1) * message_bytes / float(tier.bandwidth_bytes_per_s)


def tp_token_s(layer_s: float, layers: int, devices: int, allreduce_time_s: float) -> float:
    """Batch-1 token latency with tensor parallelism: every device runs 1/N of each layer, two all-reduces per layer."""
    return layers * layer_s / devices + 2 * layers * allreduce_time_s


def pp_token_s(layer_s: float, layers: int, devices: int, p2p_time_s: float) -> float:
    """Batch-1 token latency with pipeline parallelism: the stages run one after another."""
    return layers * layer_s + (devices - 1) * p2p_time_s


def window_memory_bytes(layer_bytes: float, window: int, devices: int, buffers_bytes: float = 0.0) -> float:
    """Per-device memory of sliding-window weight streaming: w layers, each split over N devices, plus buffers."""
    return window * layer_bytes / devices + buffers_bytes


def max_window(layer_bytes: float, devices: int, budget_bytes: float, buffers_bytes: float = 0.0) -> float:
    """Largest window (in layers, not rounded) whose streamed weights and buffers fit `budget_bytes` per device."""
    return (budget_bytes - buffers_bytes) * devices / layer_bytes


def step_bytes(d: Deployment, batch: float = 1.0, context: float = 512.0) -> float:
    """Bytes one decode step moves (weights in the deployment's formats, KV, activations), whole step."""
    ops = d.graph.evaluate({**d.symbols(), "B": float(batch), "T": 1.0, "C": float(context)})
    return float(d.counts.sum(axis=0) @ ops.bytes[:, 0])


def bandwidth_bound_tokens_per_s(device: Device, bytes_per_token: float) -> float:
    """Batch-1 decode rate of a memory-bound device: eta_m BW / bytes per token (eta_m of its efficiency class)."""
    require_positive("bytes_per_token", bytes_per_token)
    return float(streaming_bytes_per_s(device.memory.bandwidth_bytes_per_s, efficiency_for(device))) / bytes_per_token
