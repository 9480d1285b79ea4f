"""Training memory per GPU: weights, gradients, optimizer states, activations, and what offload moves away.

Parameters per pipeline stage come from the operator graph's resident bytes (one source of truth for
weights; 16-bit storage, so params = bytes / 2). On top of them:
- model states per parameter: 16-bit weights b_w, gradients b_g and the optimizer's bytes (AdamW mixed
  precision: fp32 master + m + v = 12, so 2 + 2 + 12 = 16 B/param); ZeRO-1 shards the optimizer bytes over
  the data-parallel group, ZeRO-2 the gradients too, ZeRO-3 (FSDP) the weights too, and ZeRO-3 keeps two
  layers gathered (the one computing and the one prefetched);
- activations per micro-batch and layer, generalising Korthikanti et al. 2022 ("Reducing Activation
  Recomputation", eq. 1-2): with 16-bit activations a GPT layer stores s·b·h·(34 + 5·a·s/h) bytes; the
  10·s·b·h of norm inputs, GEMM inputs and dropout masks outside the tensor-parallel region is split by TP
  only with sequence parallelism; the 24·s·b·h inside it (Q, K, V, attention output, MLP intermediates) and
  the 5·a·s²·b of materialised attention scores are split by TP. Flash attention stores no s² term.
  Selective recompute drops the s² term; full recompute keeps each layer's input (2·s·b·h) plus one layer's
  full set while it is recomputed. Sequence/context parallelism splits everything by sp.
- a pipeline stage holds the activations of its in-flight micro-batches (`formulas.in_flight_micro_batches`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.architecture.config import Architecture, LayerGroup
from model.operators.compiled import OpArrays
from model.training.config import OptimizerSpec

B_A = 2.0  # bytes per stored activation element (16-bit training)
B_W = 2.0  # bytes per stored weight element (16-bit copy the GEMMs read)
MASK_BYTES = 1.0  # one byte per dropout-mask element
LOGIT_BYTES = 4.0  # fp32 logits kept for the vocab-parallel cross-entropy (its gradient is written in place)


# ---------------------------------------------------------------------------------------------------------
# activations

def attention_widths(g: LayerGroup) -> tuple[float, float, float]:
    """(Q + K + V elements per token, attention-output elements per token, heads with s x s scores)."""
    a = g.attention
    if a.kind == "mla":
        qk = a.num_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        return 2 * qk + a.num_heads * a.v_head_dim, a.num_heads * a.v_head_dim, a.num_heads
    if a.kind == "linear":  # the output gate z is stored with the output; a recurrent state has no s x s scores
        qkv = 2 * a.linear_key_heads * a.linear_key_dim + a.linear_value_heads * a.linear_value_dim
        return qkv, 2 * a.linear_value_heads * a.linear_value_dim, 0.0
    q = a.num_heads * a.head_dim * (2 if a.output_gate else 1)
    return q + a.kv_width, a.num_heads * a.v_head_dim, a.num_heads


def _mlp_width(g: LayerGroup, hidden: int) -> float:
    """MLP elements per token inside the TP region: act input(s) and the down-projection input."""
    m = g.mlp
    if m.kind == "dense":
        return (3 if m.gated else 2) * m.intermediate_size
    per_expert = (3 if m.gated else 2) * m.expert_intermediate_size
    shared = (3 if m.gated else 2) * m.shared_intermediate_size
    # each token's dispatched copy of the hidden state plus its experts' intermediates (top_k of them)
    return m.top_k * (hidden + per_expert) + shared


def activation_bytes_per_layer(g: LayerGroup, arch: Architecture, micro_batch, seq_len, tp, sp, sequence_parallel,
                               recompute, *, attention_kernel: str = "flash", dropout: bool = False):
    """(stored, working) bytes per GPU for one layer and one micro-batch; `recompute` is a RECOMPUTE index.

    stored: kept until the layer's backward. working: the layer's full set, rematerialised under full recompute.
    """
    d = arch.hidden_size
    tokens = np.asarray(micro_batch, float) * np.asarray(seq_len, float) / np.asarray(sp, float)
    tp = np.asarray(tp, float)
    split_outside = np.where(np.asarray(sequence_parallel, float) > 0, tp, 1.0)
    gemm_inputs = 1 if g.parallel_block else 2  # attention and MLP inputs (shared in a parallel block)
    outside = (g.norms_per_layer + gemm_inputs) * d * B_A + (2 * d * MASK_BYTES if dropout else 0.0)
    qkv, out, score_heads = attention_widths(g)
    inside = (qkv + out + _mlp_width(g, d)) * B_A
    keys = np.asarray(seq_len, float)
    if g.attention.window:
        keys = np.minimum(keys, g.attention.window)
    # materialised softmax output (input of the PV GEMM), plus the dropout mask and dropped copy if dropout
    score_bytes = score_heads * keys * (B_A + (MASK_BYTES + B_A if dropout else 0.0))
    if attention_kernel == "flash":
        score_bytes = 0.0
    full = tokens * (outside / split_outside + (inside + score_bytes) / tp)
    rc = np.asarray(recompute)
    selective = full - tokens * score_bytes / tp
    layer_input = tokens * d * B_A / split_outside
    stored = np.where(rc == 2, layer_input, np.where(rc == 1, selective, full))
    working = np.where(rc == 2, selective, 0.0)
    return stored, working


def head_activation_bytes(arch: Architecture, micro_batch, seq_len, tp, sp):
    """Last stage: fp32 logits of one micro-batch (vocab split over TP) plus the final norm's input."""
    tokens = np.asarray(micro_batch, float) * np.asarray(seq_len, float) / np.asarray(sp, float)
    return tokens * (arch.vocab_size / np.asarray(tp, float) * LOGIT_BYTES + arch.hidden_size * B_A)


# ---------------------------------------------------------------------------------------------------------
# model states

def optimizer_state_elements(ops: OpArrays, spec: OptimizerSpec) -> np.ndarray:
    """(n_ops, S) optimizer state elements per operator instance on one rank (moments and projectors).

    Full-rank: states x params. Low-rank (rank r) on weight matrices of m x n (m <= n): a projector of m·r plus
    `states` moments of r·n, never more than full rank; embeddings and vectors keep full-rank states.
    """
    params = ops.resident_bytes / B_W
    full = spec.states * params
    if spec.rank is None:
        return full
    r = float(spec.rank)
    kinds = np.array([op.kind for op in ops.ops])
    roles = np.array([op.weight_role for op in ops.ops])
    matrix = ((kinds == "gemm") & ((roles == "dense") | (roles == "expert")))[:, None]
    k, n = ops.k, ops.n
    lo, hi = np.minimum(k, n), np.maximum(k, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_element = np.where(k * n > 0, (lo * r + spec.states * r * hi) / (k * n), spec.states)
    low = params * np.minimum(per_element, spec.states)
    return np.where(matrix, low, full)


@dataclass(frozen=True)
class StageMemory:
    """Bytes per GPU on each pipeline stage (arrays of shape (pp, S)) and host-side bytes per GPU."""

    weights_bytes: np.ndarray
    grads_bytes: np.ndarray
    optimizer_bytes: np.ndarray
    activation_bytes: np.ndarray
    buffer_bytes: np.ndarray  # ZeRO-3 gathered layers, logits
    host_bytes: np.ndarray  # offloaded to CPU memory
    nvme_bytes: np.ndarray  # offloaded to NVMe

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activation_bytes + self.buffer_bytes


def model_state_bytes(params_dense, params_expert, shard_dense, shard_expert, zero, spec: OptimizerSpec, *,
                      state_elements, largest_layer_params, grad_bytes: float = 2.0, offload_optimizer=0,
                      offload_params=0):
    """(weights, grads, optimizer, gather buffer, cpu, nvme) bytes per GPU for the parameters it holds.

    `state_elements`: the optimizer's moment/projector elements for those parameters (low-rank aware);
    `shard_*`: ranks holding replicas of the dense / expert parameters (the ZeRO partition group).
    Offload (index into OFFLOAD: 0 none, 1 cpu, 2 nvme): optimizer bytes and gradients leave the GPU
    (ZeRO-Offload); with `offload_params` the 16-bit weights too (ZeRO-Infinity), leaving the gather buffer.
    """
    zero = np.asarray(zero, float)
    pd, pe = np.asarray(params_dense, float), np.asarray(params_expert, float)
    params = pd + pe
    z1 = np.where(zero >= 1, 1.0, 0.0)
    z2 = np.where(zero >= 2, 1.0, 0.0)
    z3 = np.where(zero >= 3, 1.0, 0.0)

    def sharded(on):  # parameter count after a stage's partitioning is switched on
        return pd / np.where(on > 0, shard_dense, 1.0) + pe / np.where(on > 0, shard_expert, 1.0)

    frac_opt = np.where(params > 0, sharded(z1) / np.maximum(params, 1e-30), 1.0)
    weights = sharded(z3) * B_W
    grads = sharded(z2) * grad_bytes
    if spec.layerwise_update:  # only one layer's gradient exists at a time
        grads = np.minimum(grads, largest_layer_params * grad_bytes)
    optimizer = (np.asarray(state_elements, float) * spec.state_element_bytes + params * spec.master_bytes) * frac_opt
    buffer = z3 * 2.0 * largest_layer_params * B_W
    off_opt = np.asarray(offload_optimizer, float)
    off_par = np.asarray(offload_params, float)
    cpu = np.where(off_opt == 1, optimizer, 0.0) + np.where(off_par == 1, weights, 0.0)
    nvme = np.where(off_opt == 2, optimizer, 0.0) + np.where(off_par == 2, weights, 0.0)
    cpu = cpu + np.where(off_opt > 0, grads, 0.0)  # gradients go to host memory (and on to NVMe with the states)
    on_gpu = lambda x, off: np.where(off > 0, 0.0, x)  # noqa: E731
    return on_gpu(weights, off_par), on_gpu(grads, off_opt), on_gpu(optimizer, off_opt), buffer, cpu, nvme


def model_state_bytes_per_param(spec: OptimizerSpec, zero: int = 0, shard: float = 1.0,
                                grad_bytes: float = 2.0) -> float:
    """Bytes per parameter of weights + gradients + full-rank optimizer states on one GPU (no offload).

    AdamW mixed precision, no sharding: 2 + 2 + 12 = 16 (catalogue 13, 18); ZeRO-3 over N ranks: 16/N."""
    w = B_W / (shard if zero >= 3 else 1.0)
    g = grad_bytes / (shard if zero >= 2 else 1.0)
    o = spec.full_rank_state_bytes / (shard if zero >= 1 else 1.0)
    return w + g + o
