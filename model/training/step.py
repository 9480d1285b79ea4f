"""Time, memory and utilisation of one training step, for many layouts at once (numpy over candidates).

The forward pass of one micro-batch on one rank is the operator graph evaluated at B = micro-batch,
T = seq_len / sp, C = 0, logits at every position, and the layout's tp/ep; the roofline evaluator turns it into
per-operator times at the device's own efficiencies (large GEMMs at its measured GEMM ceiling). The backward
is the same graph with each operator's work scaled (`formulas`: GEMMs x2, flash attention x2.5 hardware
FLOPs, element-wise x2, plus the gradient-accumulation traffic of every weight) and run through the same
evaluator. Recomputation adds forward work; collectives come from `comm`; stages from the serving layer's
`stage_counts`; the pipeline schedule from `formulas.pipeline_time_s`.

MFU is an output: model FLOPs (3 x the forward's GEMM and attention FLOPs, causal attention) divided by
step time x GPUs x the 16-bit dense peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.architecture.config import Architecture
from model.operators.compiled import QUANTITIES, OpArrays, compile_graph
from model.precision import Precision
from model.roofline.efficiency_sets import ARCH_DEFAULTS, efficiency_for
from model.roofline.evaluator import context_for, evaluate
from model.placement.layout import stage_counts
from model.training import comm
from model.training.config import Candidates, TrainingSettings
from model.training.formulas import (
    ATTENTION_BACKWARD_HARDWARE, GEMM_BACKWARD, MODEL_FLOPS_PER_FORWARD, in_flight_micro_batches, pipeline_time_s,
)
from model.training.memory import (
    B_A, B_W, activation_bytes_per_layer, attention_widths, head_activation_bytes, model_state_bytes,
    optimizer_state_elements,
)
from model.placement.topology import host_tier
from model.training.cluster import Cluster
from model.roofline.kernel import streaming_bytes_per_s

_Q = {q: i for i, q in enumerate(QUANTITIES)}
ATTENTION_KINDS = ("attention", "linear_attention")
BREAKDOWN = ("compute_s", "tp_comm_s", "cp_comm_s", "p2p_s", "activation_swap_s", "bubble_s", "dp_comm_s",
             "optimizer_s", "offload_stall_s")


@dataclass(frozen=True)
class StepArrays:
    """Per-candidate results (arrays of length S). Memory is per GPU on the fullest pipeline stage."""

    weights_bytes: np.ndarray
    grads_bytes: np.ndarray
    optimizer_bytes: np.ndarray
    activation_bytes: np.ndarray
    buffer_bytes: np.ndarray
    host_bytes: np.ndarray
    nvme_bytes: np.ndarray
    usable_bytes: float
    step_time_s: np.ndarray
    breakdown: dict[str, np.ndarray]  # seconds per step attributed to each term (sums to step_time_s)
    model_flops_per_step: np.ndarray
    hardware_flops_per_step: np.ndarray
    peak_flop_per_s: float
    gpus: np.ndarray
    tokens_per_step: np.ndarray
    bubble_fraction: np.ndarray
    stage_imbalance: np.ndarray  # 1 − mean/max of stage times

    @property
    def total_bytes(self) -> np.ndarray:
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activation_bytes + self.buffer_bytes

    @property
    def headroom_bytes(self) -> np.ndarray:
        return self.usable_bytes - self.total_bytes

    @property
    def fits(self) -> np.ndarray:
        return self.headroom_bytes >= 0

    @property
    def mfu(self) -> np.ndarray:
        return self.model_flops_per_step / (self.step_time_s * self.gpus * self.peak_flop_per_s)

    @property
    def hfu(self) -> np.ndarray:
        return self.hardware_flops_per_step / (self.step_time_s * self.gpus * self.peak_flop_per_s)

    @property
    def tokens_per_s(self) -> np.ndarray:
        return self.tokens_per_step / self.step_time_s


def training_precision(device, dtype: str) -> tuple[Precision, str]:
    """The Precision the GEMMs run at, and the 16-bit dtype MFU is measured against."""
    sixteen = "bf16" if device.supports("bf16") else "fp16"
    if dtype in ("auto", sixteen) or (dtype == "bf16" and not device.supports("bf16")):
        return Precision(weights=sixteen, activations=sixteen, kv=sixteen, embeddings=sixteen), sixteen
    if dtype == "fp8":  # 16-bit master weights cast to FP8 per GEMM (Transformer Engine style)
        return Precision(weights=sixteen, activations="fp8", kv=sixteen, embeddings=sixteen), sixteen
    return Precision(weights=dtype, activations=dtype, kv=dtype, embeddings=dtype), sixteen


def graph_symbols(c: Candidates, settings: TrainingSettings) -> dict[str, np.ndarray | float]:
    tokens_local = c.seq_len / c.sp
    ep_on = c.ep > 1
    return {
        "B": c.micro_batch, "T": tokens_local, "C": 0.0, "n_logit": tokens_local,
        "causal": 0.0 if settings.attention_kernel == "materialized" else 1.0,
        "tp": c.tp, "ep": c.ep, "etp": np.where(ep_on, 1.0, c.tp), "dp_attn": np.where(ep_on, c.ep / c.tp, 1.0),
        "gamma_moe": 1.0, "b_w": B_W, "b_e": B_W, "b_emb": B_W, "b_a": B_A, "b_kv": B_A, "b_state": 4.0,
        # expert parallelism moves tokens by dispatch/combine all-to-all (normal kernels, 16-bit)
        "moe_a2a": np.where(ep_on, 1.0, 0.0), "ll_decode": 0.0, "ll_prefill": 0.0, "b_disp": B_A,
    }


def forward_arrays(arch: Architecture, c: Candidates, settings: TrainingSettings) -> OpArrays:
    """The forward pass of one micro-batch on one rank, with training's corrections to the serving graph."""
    graph = compile_graph(arch)
    sym = graph_symbols(c, settings)
    ops = graph.evaluate(sym)
    values = ops.values.copy()
    kinds = np.array([op.kind for op in ops.ops])
    attn = np.isin(kinds, ATTENTION_KINDS)
    if np.any(c.sp > 1):  # every local query attends over the whole sequence: 1/sp of the full attention work
        full = graph.evaluate({**sym, "T": c.seq_len, "n_logit": c.seq_len})
        values[_Q["flops"], attn] = full.flops[attn] / c.sp
    if settings.attention_kernel == "materialized":  # scores written, softmaxed (read + write) and read by PV
        for i, op in enumerate(ops.ops):
            if op.kind == "attention":
                heads = arch.groups[op.group].attention.num_heads
                values[_Q["act_bytes"], i] += c.micro_batch * heads / c.tp * c.seq_len / c.sp * c.seq_len * 4 * B_A
    for i, op in enumerate(ops.ops):
        if op.name == "sampling":  # the vocab-parallel cross-entropy works on V/tp logits per rank
            values[_Q["flops"], i] /= c.tp
            values[_Q["act_bytes"], i] /= c.tp
    return OpArrays(ops.ops, ops.counts, values)


def backward_arrays(fwd: OpArrays, settings: TrainingSettings) -> OpArrays:
    """Backward work per operator: GEMMs x2 FLOPs and activations, plus reading the weight once and
    accumulating its gradient; flash attention x2.5 FLOPs; element-wise x2 traffic."""
    v = fwd.values.copy()
    kinds = np.array([op.kind for op in fwd.ops])
    gemm = kinds == "gemm"
    attn = np.isin(kinds, ATTENTION_KINDS)
    other = ~(gemm | attn | (kinds == "collective"))
    params = fwd.resident_bytes / B_W
    v[_Q["flops"], gemm] *= GEMM_BACKWARD
    v[_Q["act_bytes"], gemm] *= 2.0
    v[_Q["weight_bytes"], gemm] += params[gemm] * settings.grad_accum_bytes
    v[_Q["flops"], attn] *= ATTENTION_BACKWARD_HARDWARE
    v[_Q["act_bytes"], attn] *= 2.0
    v[_Q["kv_read_bytes"], attn] *= 2.0  # read K, V; write dK, dV
    v[_Q["kv_write_bytes"], attn] = 0.0
    v[_Q["flops"], other] *= 2.0
    v[_Q["act_bytes"], other] *= 2.0
    return OpArrays(fwd.ops, fwd.counts, v)


def model_flops_per_sequence(arch: Architecture, seq_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward GEMM + attention FLOPs of one whole sequence (no parallelism, causal attention): (all operators,
    the decoder layers only, which is what full recomputation repeats)."""
    ops = compile_graph(arch).evaluate(B=1.0, T=seq_len, C=0.0, n_logit=seq_len, causal=1.0)
    rows = np.array([op.kind in ("gemm", *ATTENTION_KINDS) for op in ops.ops])
    layers = rows & np.array([op.group >= 0 for op in ops.ops])
    return ops.counts[rows] @ ops.flops[rows], ops.counts[layers] @ ops.flops[layers]


def _group_rows(arch: Architecture, ops: OpArrays) -> tuple[np.ndarray, list[int]]:
    """(n_groups, n_ops) 0/1 membership of layer operators in layer groups, and each group's attention row."""
    member = np.zeros((len(arch.groups), len(ops.ops)))
    attention_row = [-1] * len(arch.groups)
    for i, op in enumerate(ops.ops):
        if op.group >= 0:
            member[op.group, i] = 1.0
            if op.kind in ATTENTION_KINDS and attention_row[op.group] < 0:
                attention_row[op.group] = i
    return member, attention_row


@dataclass(frozen=True)
class _OpTerms:
    """Per-operator seconds of one micro-batch on one rank (n_ops, S), and per-layer-group memory terms."""

    fwd: np.ndarray
    bwd: np.ndarray
    compute: np.ndarray  # forward + backward + recomputation
    collective: np.ndarray  # TP/EP collectives, all passes, after overlap
    context: np.ndarray  # CP/SP communication (on each group's attention row)
    swap: np.ndarray  # exposed activation swapping (on each group's attention row)
    stored: np.ndarray  # (n_groups, S) activation bytes kept per layer and micro-batch
    working: np.ndarray  # (n_groups, S) one layer rematerialised under full recomputation
    member: np.ndarray  # (n_groups, n_ops)

    def take(self, idx: np.ndarray) -> _OpTerms:
        """The columns (candidates) `idx` of every per-candidate array."""
        per_candidate = {f: getattr(self, f)[:, idx] for f in self.__dataclass_fields__ if f != "member"}
        return _OpTerms(**per_candidate, member=self.member)


def _op_terms(arch: Architecture, cluster: Cluster, c: Candidates, settings: TrainingSettings, fwd_ops: OpArrays,
              ctx) -> _OpTerms:
    topo = cluster.topology
    fwd = evaluate(fwd_ops, ctx).time_s
    bwd = evaluate(backward_arrays(fwd_ops, settings), ctx).time_s
    kinds = np.array([op.kind for op in fwd_ops.ops])
    attn_rows = np.isin(kinds, ATTENTION_KINDS)[:, None]
    materialized = settings.attention_kernel == "materialized"
    layer_rows = np.array([op.group >= 0 for op in fwd_ops.ops])[:, None]  # the LM head is never recomputed
    rc = np.where((c.recompute == 2) & layer_rows, fwd,
                  np.where((c.recompute == 1) & materialized & attn_rows, fwd, 0.0))
    compute = fwd + bwd + rc
    passes = 2.0 + (c.recompute == 2)  # forward, backward, recomputed forward
    collective = comm.layer_collective_s(fwd_ops, c, topo) * passes * (1 - settings.tp_overlap)
    member, attention_row = _group_rows(arch, fwd_ops)
    context = np.zeros_like(fwd)
    swap = np.zeros_like(fwd)
    stored, working = [], []
    offload = np.any(c.offload_activations > 0) or np.any(c.offload_optimizer > 0) or np.any(c.offload_params > 0)
    host = host_tier(cluster.device) if offload else None
    for g, group in enumerate(arch.groups):
        st, wk = activation_bytes_per_layer(group, arch, c.micro_batch, c.seq_len, c.tp, c.sp, c.sequence_parallel,
                                            c.recompute, attention_kernel=settings.attention_kernel,
                                            dropout=settings.dropout)
        stored.append(st)
        working.append(wk)
        row = attention_row[g]
        if row < 0:
            continue
        qkv, out, _ = attention_widths(group)
        uly = comm.ulysses_s(c, topo, qkv, out) * passes * (1 - settings.tp_overlap)
        kv = _kv_elements_per_token_per_rank(group, c.tp)
        ring = (comm.ring_exposed_s(c, topo, kv, fwd[row]) * (passes - 1)
                + comm.ring_exposed_s(c, topo, kv, bwd[row], passes=2.0))
        context[row] = np.where(c.sp_kind == 0, uly, ring)
        if host is not None:  # MEMO-style swap: out after the forward, back before the backward, per layer
            hidden_behind = member[g] @ compute
            exposed = np.maximum(2.0 * st / host.bandwidth_bytes_per_s - hidden_behind, 0.0)
            swap[row] = np.where(c.offload_activations > 0, exposed, 0.0)
    return _OpTerms(fwd, bwd, compute, collective, context, swap, np.array(stored), np.array(working), member)


def _kv_elements_per_token_per_rank(group, tp) -> np.ndarray:
    """K and V elements one rank passes around the ring per token: its KV heads (at least one when n_kv < tp),
    or the MLA latent (replicated); a linear-attention layer passes none (its state is not modelled here)."""
    a = group.attention
    if a.kind == "mla":
        return np.full_like(np.asarray(tp, float), a.kv_lora_rank + a.qk_rope_head_dim)
    if a.kind == "linear":
        return np.zeros_like(np.asarray(tp, float))
    return np.maximum(a.num_kv_heads / np.asarray(tp, float), 1.0) * a.kv_features_per_head


def _pipeline_group(arch: Architecture, cluster: Cluster, cs: Candidates, settings: TrainingSettings,
                    ops: OpArrays, t: _OpTerms, pp: int) -> dict[str, np.ndarray]:
    """Everything per candidate for the candidates sharing one pipeline depth (stage assignment is per pp)."""
    dev, topo, spec = cluster.device, cluster.topology, settings.optimizer
    eff = efficiency_for(dev)
    counts = stage_counts(arch, ops.ops, pp)
    if settings.vocab_parallel:
        for i, op in enumerate(ops.ops):
            if op.group < 0:
                counts[:, i] = op.count / pp
    m, v = cs.micro_batches, cs.virtual_stages
    cols = np.arange(len(cs))
    out: dict[str, np.ndarray] = {}

    # time: per-micro-batch stage times, then the schedule
    compute = counts @ t.compute
    per_mb = {"compute_s": compute, "tp_comm_s": counts @ t.collective, "cp_comm_s": counts @ t.context,
              "activation_swap_s": counts @ t.swap,
              "p2p_s": 2.0 * v * comm.pp_p2p_s(cs, topo, arch.hidden_size) * np.ones_like(compute)}
    t_stage = sum(per_mb.values())
    t_pipe = pipeline_time_s(t_stage, m, v)
    slow = np.argmax(t_stage, axis=0)
    for key, arr in per_mb.items():
        out[key] = m * arr[slow, cols]
    out["bubble_s"] = t_pipe - m * t_stage.max(axis=0)
    out["imbalance"] = 1.0 - t_stage.mean(axis=0) / t_stage.max(axis=0)

    # memory of every stage, then the fullest one
    params = ops.resident_bytes / B_W
    expert = np.array([op.weight_role == "expert" for op in ops.ops])[:, None]
    state_elems = counts @ optimizer_state_elements(ops, spec)
    p_dense = counts @ np.where(expert, 0.0, params)
    p_expert = counts @ np.where(expert, params, 0.0)
    shard_dense = cs.dp * cs.sp
    shard_expert = np.where(cs.ep > 1, cs.dp * cs.sp * cs.tp / cs.ep, shard_dense)
    w, g, o, buf, cpu, nvme = model_state_bytes(
        p_dense, p_expert, shard_dense, shard_expert, cs.zero, spec, state_elements=state_elems,
        largest_layer_params=(t.member @ params).max(axis=0), grad_bytes=settings.grad_bytes,
        offload_optimizer=cs.offload_optimizer, offload_params=cs.offload_params)
    layers = counts[:, [int(np.argmax(row)) for row in t.member]]  # (pp, n_groups) layers per stage
    stages = np.arange(pp)[:, None]
    flight = np.where(cs.schedule == 1, m, in_flight_micro_batches(pp, m, v, "1f1b", stages))
    kept = (layers @ t.stored) * flight
    act = np.where(cs.offload_activations > 0, 2.0 * t.stored.max(axis=0), kept) + t.working.max(axis=0)
    act = act + np.where(stages == pp - 1, head_activation_bytes(arch, cs.micro_batch, cs.seq_len, cs.tp, cs.sp), 0.0)
    cpu = cpu + np.where(cs.offload_activations > 0, kept, 0.0)
    worst = np.argmax(w + g + o + buf + act, axis=0)
    for key, arr in (("weights", w), ("grads", g), ("optimizer", o), ("buffer", buf), ("activation", act),
                     ("host", cpu), ("nvme", nvme)):
        out[key] = np.broadcast_to(arr, act.shape)[worst, cols]

    # data parallelism, the optimizer update and offload, for the stage holding the most parameters
    big = np.argmax(p_dense + p_expert, axis=0)
    pd, pe = p_dense[big, cols], p_expert[big, cols]
    sync, gather = comm.dp_sync_s(cs, topo, pd, pe, settings)
    exposed_sync = np.maximum(sync - settings.dp_overlap * (counts @ t.bwd).max(axis=0), 0.0)
    exposed_gather = m * np.maximum(gather - settings.dp_overlap * compute.max(axis=0), 0.0)
    out["dp_comm_s"] = exposed_sync + exposed_gather
    local = pd / np.where(cs.zero >= 1, shard_dense, 1.0) + pe / np.where(cs.zero >= 1, shard_expert, 1.0)
    frac = local / np.maximum(pd + pe, 1e-30)
    # the update reads and writes states and master weights, reads the gradient, writes the 16-bit weight
    touched = (2.0 * (state_elems[big, cols] * frac * spec.state_element_bytes + local * spec.master_bytes)
               + local * (settings.grad_bytes + B_W))
    out["optimizer_s"] = np.where(cs.offload_optimizer > 0, 0.0, touched / streaming_bytes_per_s(dev.memory.bandwidth_bytes_per_s, eff))
    t_gpu = t_pipe + out["dp_comm_s"] + out["optimizer_s"]
    per_node = np.minimum(cs.gpus, cluster.gpus_per_node)  # GPUs sharing one host's memory and drives
    cpu_adam = touched * per_node / max(float(streaming_bytes_per_s(cluster.host_memory_bytes_per_s, ARCH_DEFAULTS["generic"])), 1.0)
    host_b, nvme_b = comm.offload_traffic_bytes(local, cs, spec.full_rank_state_bytes, settings.grad_bytes)
    t_host = host_b / host_tier(dev).bandwidth_bytes_per_s if np.any(host_b > 0) else np.zeros_like(t_gpu)
    t_nvme = nvme_b * per_node / max(cluster.nvme_bytes_per_s * settings.nvme_drives_per_node, 1.0)
    t_cpu = np.where(cs.offload_optimizer > 0, cpu_adam, 0.0)
    out["offload_stall_s"] = np.maximum.reduce([t_gpu, t_host, t_nvme, t_cpu]) - t_gpu
    out["t_gpu"] = t_gpu
    return out


def evaluate_candidates(arch: Architecture, cluster: Cluster, c: Candidates, settings: TrainingSettings) -> StepArrays:
    """Memory, step time and FLOPs of every candidate layout (see the module docstring)."""
    dev = cluster.device
    precision, sixteen = training_precision(dev, settings.dtype)
    ctx = context_for(dev, precision, efficiency=efficiency_for(dev))
    fwd_ops = forward_arrays(arch, c, settings)
    terms = _op_terms(arch, cluster, c, settings, fwd_ops, ctx)
    keys = ("weights", "grads", "optimizer", "activation", "buffer", "host", "nvme", "t_gpu", "imbalance", *BREAKDOWN)
    out = {k: np.zeros(len(c)) for k in keys}
    for pp in np.unique(c.pp):
        idx = np.flatnonzero(c.pp == pp)
        ops = OpArrays(fwd_ops.ops, fwd_ops.counts, fwd_ops.values[:, :, idx])
        for key, value in _pipeline_group(arch, cluster, c.take(idx), settings, ops, terms.take(idx), int(pp)).items():
            out[key][idx] = value

    step = out["t_gpu"] + out["offload_stall_s"]
    seq_flops, layer_flops = model_flops_per_sequence(arch, c.seq_len)
    model_flops = MODEL_FLOPS_PER_FORWARD * seq_flops * c.global_batch
    rc_flops = np.where(c.recompute == 2, layer_flops, 0.0) * c.global_batch
    return StepArrays(
        weights_bytes=out["weights"], grads_bytes=out["grads"], optimizer_bytes=out["optimizer"],
        activation_bytes=out["activation"], buffer_bytes=out["buffer"], host_bytes=out["host"],
        nvme_bytes=out["nvme"], usable_bytes=dev.memory.total_bytes * settings.memory_utilization,
        step_time_s=step, breakdown={k: out[k] for k in BREAKDOWN}, model_flops_per_step=model_flops,
        hardware_flops_per_step=model_flops + rc_flops, peak_flop_per_s=dev.peak(sixteen), gpus=c.gpus,
        tokens_per_step=c.global_batch * c.seq_len,
        bubble_fraction=out["bubble_s"] / step, stage_imbalance=out["imbalance"],
    )
