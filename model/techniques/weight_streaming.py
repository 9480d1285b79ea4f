"""Layer streaming from a slower tier.

Weights kept off the GPU cross the host link once per forward pass; with prefetch the pass costs
max(T_compute, bytes_streamed / beta). Keeping k of L layers resident needs k x layer_bytes + a prefetch
buffer of w layers (+ embeddings and head); streaming the other L - k layers is hidden once the tokens in the
pass reach the break-even count, where a layer's GEMMs take as long as its weights take to arrive:
2 P_layer tokens / F_eff = P_layer b_w / beta, i.e. tokens* = F_eff b_w / (2 beta) (F_eff: the GEMM ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.serving.deployment import Deployment
from model.serving.speculation_offload import Offload
from model.roofline.kernel import large_gemm_flop_per_s


def layer_bytes(d: Deployment) -> float:
    """Weight bytes of one decoder layer on one GPU (all layer operators / layers; embeddings and head excluded)."""
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": 0.0})
    layer_rows = np.array([op.group >= 0 for op in ops.ops])
    total = float(ops.counts[layer_rows] @ ops.resident_bytes[layer_rows, 0])
    return total / d.arch.num_layers / d.layout.pp


def other_weight_bytes(d: Deployment) -> float:
    """Embeddings, final norm and head on one GPU (kept resident)."""
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": 0.0})
    rows = np.array([op.group < 0 for op in ops.ops])
    return float(ops.counts[rows] @ ops.resident_bytes[rows, 0])


@dataclass(frozen=True)
class ResidentPlan:
    resident_layers: int
    offload: Offload | None  # the streamed share of the weights, None when every layer is resident
    weight_memory_bytes: float  # per GPU: resident layers + prefetch buffer + embeddings/head


def resident_plan(d: Deployment, resident_layers: int, tier: str = "host-xeon-8480",
                  prefetch_layers: int = 1) -> ResidentPlan:
    """Keep `resident_layers` of the model's layers on the GPU and stream the rest from `tier`."""
    layers = d.arch.num_layers
    if not 0 <= resident_layers <= layers:
        raise RidgeplanError("resident_layers", f"must be between 0 and {layers}, got {resident_layers}")
    require_positive("prefetch_layers", prefetch_layers, integer=True)
    lb = layer_bytes(d)
    other = other_weight_bytes(d)
    if resident_layers == layers:
        return ResidentPlan(layers, None, layers * lb + other)
    streamed = (layers - resident_layers) * lb / (layers * lb + other)
    buffer = min(prefetch_layers, layers - resident_layers) * lb
    return ResidentPlan(resident_layers, Offload("weights", tier, streamed), resident_layers * lb + buffer + other)


def break_even_tokens(d: Deployment, link_bytes_per_s: float) -> float:
    """Tokens per forward pass above which a layer's GEMMs hide its weights streaming over the link:
    F_eff b_w / (2 beta), with F_eff the dense dtype's peak times the large-GEMM ceiling."""
    require_positive("link_bytes_per_s", link_bytes_per_s)
    f_eff = large_gemm_flop_per_s(d.device, d.resolved.dense_dtype, d.eff)
    return f_eff * d.symbols()["b_w"] / (2 * link_bytes_per_s)
