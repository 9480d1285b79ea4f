"""Closed-form training identities: FLOP conventions, pipeline bubbles, stage imbalance, compression, offload.

Each is a small pure function of its inputs (scalars or numpy arrays) with the derivation in its docstring;
tests/test_training_formulas.py checks each against a hand calculation and the catalogue's checks.
"""

from __future__ import annotations

import numpy as np

from model.errors import RidgeplanError

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY

# Backward FLOPs per forward FLOP. A linear layer y = xW needs dX = dY W^T and dW = X^T dY: two GEMMs of the
# forward's size. Flash attention's backward runs five matmuls (recomputed QK^T, dV = P^T dO, dP = dO V^T,
# dQ = dS K, dK = dS^T Q) against the forward's two (QK^T, PV): 5/2 = 2.5 hardware FLOPs, of which 2 count as
# model FLOPs (the same convention as the linear layers, so model FLOPs = 3 x forward).
GEMM_BACKWARD = 2.0
ATTENTION_BACKWARD_HARDWARE = 2.5
ATTENTION_BACKWARD_MODEL = 2.0
MODEL_FLOPS_PER_FORWARD = 1.0 + GEMM_BACKWARD  # 3: the "6 N D" rule is 3 x the forward's 2 N per token


def six_nd_flops(params, tokens):
    """Training FLOPs by the 6·N·D rule: 2·N per token forward, 4·N backward (attention excluded)."""
    return 6.0 * np.asarray(params, dtype=float) * np.asarray(tokens, dtype=float)


def attention_training_flops_per_token(layers, heads, head_dim, seq_len, causal: bool = True):
    """Model FLOPs per token of the attention core in training: 3 x forward.

    Forward per query: QK^T and PV over S keys = 4·n_h·d_h·S per layer (full square); the causal average sees
    (S+1)/2 keys. Catalogue section 18 writes the causal total as 3 x 2·L·n_h·d_h·S per token.
    """
    keys = (np.asarray(seq_len, float) + 1) / 2 if causal else np.asarray(seq_len, float)
    return MODEL_FLOPS_PER_FORWARD * 4.0 * layers * heads * head_dim * keys


def megatron_flops_per_iteration(batch, seq_len, layers, hidden, vocab):
    """Megatron-LM's count (Narayanan et al. 2021, eq. 3) with full activation recomputation:
    96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)). Per layer and token the forward is 24·h² (QKV 6h², output 2h²,
    4h MLP 16h²) plus 4·s·h of attention (full square); x4 for forward, backward and the recomputed forward.
    The LM head 2·h·V per token is counted x3 (it is not recomputed)."""
    b, s, l, h, v = (np.asarray(x, dtype=float) for x in (batch, seq_len, layers, hidden, vocab))
    return 96.0 * b * s * l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * l * h))


def time_to_train_s(total_flops, gpus, peak_flop_per_s, mfu):
    """T = FLOPs / (N · F · MFU): the identity behind every "days to train" figure (MFU given, not predicted)."""
    return np.asarray(total_flops, float) / (np.asarray(gpus, float) * np.asarray(peak_flop_per_s, float)
                                             * np.asarray(mfu, float))


def achieved_fraction(aggregate_flop_per_s, gpus, peak_flop_per_s):
    """Fraction of peak from a reported aggregate rate: (F_total / N) / F_peak."""
    return np.asarray(aggregate_flop_per_s, float) / np.asarray(gpus, float) / np.asarray(peak_flop_per_s, float)


# ---------------------------------------------------------------------------------------------------------
# pipelines

def bubble_fraction(pp, micro_batches, virtual_stages=1, schedule: str = "1f1b"):
    """Idle share of a pipeline step.

    GPipe and 1F1B (Huang et al. 2019; Narayanan et al. 2021): (p−1)/(m+p−1) of the step is bubble, i.e. the
    bubble time is (p−1)/m of the ideal time. Interleaved 1F1B with v chunks per rank shrinks the bubble time
    to (p−1)/(v·m) of the ideal, so its fraction of the step is (p−1)/(v·m + p − 1).
    """
    p = np.asarray(pp, float)
    m = np.asarray(micro_batches, float)
    v = np.asarray(virtual_stages, float) if schedule == "1f1b" else 1.0
    return (p - 1) / (v * m + p - 1)


def in_flight_micro_batches(pp, micro_batches, virtual_stages=1, schedule: str = "1f1b", stage=0):
    """Micro-batches whose activations a stage holds at its peak.

    GPipe runs all m forwards before any backward: m. 1F1B: stage s warms up with p − s forwards, so it holds
    min(m, p − s). Interleaving holds (1 + (p−1)/(p·v)) times that on the first stage (Korthikanti et al. 2022,
    section 4.2.3); the same factor is applied to every stage here.
    """
    p = np.asarray(pp, float)
    m = np.asarray(micro_batches, float)
    if schedule == "gpipe":
        return m + 0 * p
    v = np.asarray(virtual_stages, float)
    base = np.minimum(m, p - np.asarray(stage, float))
    return base * np.where(v > 1, 1 + (p - 1) / (p * v), 1.0)


def pipeline_time_s(stage_time_s, micro_batches, virtual_stages=1):
    """Step time of a pipeline whose stages take stage_time_s (shape (p, ...)) per micro-batch.

    With balanced stages t: (m + (p−1)/v)·t. Unbalanced: the slowest stage paces the m micro-batches and the
    others add their fill/drain once: m·t_max + (Σ t_s − t_max)/v.
    """
    t = np.asarray(stage_time_s, float)
    t_max = t.max(axis=0)
    return np.asarray(micro_batches, float) * t_max + (t.sum(axis=0) - t_max) / np.asarray(virtual_stages, float)


def stage_imbalance_loss(stage_work):
    """Throughput lost to unequal stages: 1 − mean stage / max stage."""
    w = np.asarray(stage_work, float)
    return 1.0 - w.mean(axis=0) / w.max(axis=0)


def lm_head_layer_equivalents(vocab, hidden):
    """The LM head's 2·d·V FLOPs per token in units of a layer's 24·d² (d_ff = 4d): V / (12·d)."""
    return np.asarray(vocab, float) / (12.0 * np.asarray(hidden, float))


# ---------------------------------------------------------------------------------------------------------
# gradient compression and local updates

def compression_volume_reduction(ratio, warmup_fraction=0.0):
    """Average volume reduction of compressed DP traffic: 1 / (w + (1 − w)/c) for warm-up share w (sent
    uncompressed) and compression ratio c (1-bit Adam: c = 16 or 32 against fp16/fp32)."""
    c = np.asarray(ratio, float)
    w = np.asarray(warmup_fraction, float)
    return 1.0 / (w + (1.0 - w) / c)


def warmup_for_reduction(reduction, ratio):
    """The warm-up share w that gives an average reduction R at ratio c: w = (1/R − 1/c) / (1 − 1/c)."""
    r = np.asarray(reduction, float)
    c = np.asarray(ratio, float)
    return (1.0 / r - 1.0 / c) / (1.0 - 1.0 / c)


def speedup_from_comm_reduction(comm_share, reduction):
    """Step speed-up when communication (share s of the step, not overlapped) shrinks R-fold: 1/((1−s) + s/R)."""
    s = np.asarray(comm_share, float)
    return 1.0 / ((1.0 - s) + s / np.asarray(reduction, float))


def comm_share_for_speedup(speedup, reduction):
    """Inverse of `speedup_from_comm_reduction`: s = (1 − 1/G) / (1 − 1/R)."""
    g = np.asarray(speedup, float)
    r = np.asarray(reduction, float)
    if np.any(g > r):
        raise RidgeplanError("speedup", "cannot exceed the communication reduction itself")
    return (1.0 - 1.0 / g) / (1.0 - 1.0 / r)


def local_update_bandwidth_bytes_per_s(params, bytes_per_param, sync_every, step_time_s):
    """Average DP bandwidth of a method that synchronises every H steps (DiLoCo, CO2): P·b / (H · T_step)."""
    return (np.asarray(params, float) * np.asarray(bytes_per_param, float)
            / (np.asarray(sync_every, float) * np.asarray(step_time_s, float)))


def min_local_steps_to_hide(allreduce_s, step_time_s):
    """Local-update DP hides its all-reduce once τ·T_step ≥ T_allreduce: τ_min = T_allreduce / T_step."""
    return np.asarray(allreduce_s, float) / np.asarray(step_time_s, float)


# ---------------------------------------------------------------------------------------------------------
# streaming weights

def streaming_no_stall_tokens(bytes_per_weight, peak_flop_per_s, link_bytes_per_s, flops_per_param_per_token=4.0):
    """Tokens per step above which streaming each layer's weights over a link hides behind its compute.

    A layer of P weights costs f·P FLOPs per token (zeroth-order fine-tuning: 2 forwards = 4) and b_w·P bytes
    to stream once; no stall when T·f·P / F ≥ b_w·P / β, i.e. T ≥ b_w·F / (f·β).
    """
    return (np.asarray(bytes_per_weight, float) * np.asarray(peak_flop_per_s, float)
            / (flops_per_param_per_token * np.asarray(link_bytes_per_s, float)))
