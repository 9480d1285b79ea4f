"""Zeroth-order fine-tuning with layer streaming (ZO2).

A zeroth-order (MeZO-style) step runs two forward passes with opposite random perturbations and keeps no
gradients, optimizer states or stored activations. With the weights in CPU memory, each decoder layer is
copied to the GPU once per step and used by both forwards, while the next layer is prefetched:
- GPU memory at peak: `resident_layers` layers (the one computing and the one arriving; 2 by default), the
  embedding and LM head kept resident, and the largest activation workspace of one forward over the step's
  tokens (`model.operators.memory.memory_per_rank`);
- per layer: compute = 2 x the layer's forward time at the step's tokens (the roofline evaluator), transfer =
  layer bytes / host-link bandwidth (nominal x bus efficiency); the stall is max(0, transfer − compute);
- the closed-form threshold (`formulas.streaming_no_stall_tokens`): no stall when tokens >= b_w·F/(4·β) at peak
  FLOP/s, so the roofline (below peak) hides the transfer already at that token count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.serving.deployment import deployment
from model.errors import RidgeplanError, require_positive
from model.hardware.db import get_link
from model.operators.memory import memory_per_rank
from model.training.formulas import streaming_no_stall_tokens


@dataclass(frozen=True)
class ZerothOrderStreaming:
    """One zeroth-order step with layer streaming (bytes per GPU, seconds per layer)."""

    tokens: float
    layer_bytes: float
    resident_layers: int
    other_weight_bytes: float  # embeddings, LM head, final norm (kept on the GPU)
    activation_bytes: float
    compute_s_per_layer: float  # two forwards
    transfer_s_per_layer: float
    link_bytes_per_s: float
    threshold_tokens: float  # b_w·F/(4·β) at the device's dense peak

    @property
    def peak_bytes(self) -> float:
        return self.resident_layers * self.layer_bytes + self.other_weight_bytes + self.activation_bytes

    @property
    def stall_s_per_layer(self) -> float:
        return max(0.0, self.transfer_s_per_layer - self.compute_s_per_layer)


def zeroth_order_streaming(model, gpu, tokens: float, *, batch: int = 1, weights: str = "fp16",
                           resident_layers: int = 2) -> ZerothOrderStreaming:
    """Memory and per-layer stall of a zeroth-order step over `tokens` tokens (`batch` sequences of
    tokens/batch), weights streamed from host memory over the GPU's host link."""
    require_positive("tokens", tokens)
    require_positive("batch", batch, integer=True)
    require_positive("resident_layers", resident_layers, integer=True)
    d = deployment(model, gpu, weights=weights)
    dev = d.device
    if dev.host_link is None:
        raise RidgeplanError("gpu", f"{dev.name} has no host link in its hardware file to stream weights over")
    seq = float(tokens) / batch
    ops, _, exposed = d.op_seconds(float(batch), seq, 0.0, n_logit=seq)
    layer_rows = np.array([op.group == 0 for op in ops.ops])
    other_rows = np.array([op.group < 0 for op in ops.ops])
    layer_bytes = float(ops.resident_bytes[layer_rows, 0].sum())
    other = float(ops.counts[other_rows] @ ops.resident_bytes[other_rows, 0])
    link = get_link(dev.host_link.link)
    bw = dev.host_link.bandwidth_bytes_per_s_per_direction * link.bus_efficiency
    b_w = d.symbols()["b_w"]
    return ZerothOrderStreaming(
        tokens=float(tokens), layer_bytes=layer_bytes, resident_layers=int(resident_layers), other_weight_bytes=other,
        activation_bytes=float(memory_per_rank(ops).activation_bytes[0]),
        compute_s_per_layer=2.0 * float(exposed[layer_rows, 0].sum()), transfer_s_per_layer=layer_bytes / bw,
        link_bytes_per_s=bw,
        threshold_tokens=float(streaming_no_stall_tokens(b_w, dev.peak(d.resolved.dense_dtype), bw)))
