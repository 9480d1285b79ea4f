"""Hard throughput ceilings of a deployment: what no schedule can beat (NanoFlow).

Per replica of N GPUs, for tokens at a given cached context:
- compute ceiling:  tok/s <= N·F / (FLOPs per token), FLOPs per token = 2·P_act (the weights' GEMMs, from the
  operator graph) plus, optionally, the attention FLOPs at that context. F is the dense peak of the dtype the
  GEMMs run at; with `efficiency` the large-GEMM ceiling η_c of the device scales it (what a perfect schedule
  of today's kernels could reach);
- memory ceiling at a batch of B sequences: tok/s <= N·BW·B / (W + B·KV), with W the weight bytes and KV the
  cache bytes one sequence reads per step (all GPUs together), at peak bandwidth (or η_m·BW with
  `efficiency`).
NanoFlow's "optimal throughput" is the compute ceiling without attention at peak: for LLaMA-2-70B on 8 x A100
8 x 312e12 / (2 x 69e9) ≈ 18,100 tok/s. A measured or predicted throughput above the ceiling is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.errors import RidgeplanError
from model.operators.memory import kv_bytes_per_token
from model.serving.deployment import Deployment
from model.roofline.kernel import large_gemm_flop_per_s

MATMUL_KINDS = ("gemm",)
ATTENTION_KINDS = ("attention", "linear_attention")


@dataclass(frozen=True)
class Ceiling:
    """Ceilings of one replica in tokens/s; FLOPs and bytes per token are totals over the replica's GPUs."""

    gpus: int
    peak_flop_per_s: float  # per GPU, the dense peak of the GEMM dtype
    gemm_flops_per_token: float  # 2·P_act
    attention_flops_per_token: float  # at the context asked for
    compute_tokens_per_s: float  # without attention (NanoFlow's definition)
    compute_with_attention_tokens_per_s: float
    weight_bytes: float  # all GPUs
    kv_bytes_per_token_of_context: float  # all GPUs

    def memory_tokens_per_s(self, batch, context, bandwidth_bytes_per_s: float) -> np.ndarray:
        """N·BW·B / (W + B·KV(context)): every step reads the weights once and each sequence's cache."""
        b = np.asarray(batch, dtype=float)
        kv = self.kv_bytes_per_token_of_context * np.asarray(context, dtype=float)
        return self.gpus * bandwidth_bytes_per_s * b / (self.weight_bytes + b * kv)


def throughput_ceiling(d: Deployment, context: float = 0.0, *, efficiency: bool = False) -> Ceiling:
    """Compute ceilings of deployment `d` for tokens at `context` cached tokens (see the module docstring)."""
    if context < 0:
        raise RidgeplanError("context", f"must be >= 0, got {context}")
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": float(context), "n_logit": 1.0,
                            "tp": 1.0, "ep": 1.0, "etp": 1.0, "dp_attn": 1.0})
    counts = np.array([op.count for op in ops.ops], dtype=float)
    kinds = np.array([op.kind for op in ops.ops])
    gemm = np.isin(kinds, MATMUL_KINDS)
    attn = np.isin(kinds, ATTENTION_KINDS)
    gemm_flops = float(counts[gemm] @ ops.flops[gemm, 0])
    attn_flops = float(counts[attn] @ ops.flops[attn, 0])
    dtype = d.resolved.dense_dtype
    peak = d.device.peak(dtype)
    rate = large_gemm_flop_per_s(d.device, dtype, d.eff) if efficiency else peak
    gpus = d.layout.gpus_per_replica
    weights = float(counts @ ops.resident_bytes[:, 0])
    kv_per_token = kv_bytes_per_token(d.arch, b_kv=d.symbols()["b_kv"])
    return Ceiling(gpus, peak, gemm_flops, attn_flops, gpus * rate / gemm_flops,
                   gpus * rate / (gemm_flops + attn_flops), weights, kv_per_token)
