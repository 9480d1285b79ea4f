"""Parallel layouts as the serving engines name them.

- Attention (and the dense layers, shared experts, embeddings and LM head): `tp`-way tensor parallel inside each
  of `attention_dp` attention data-parallel ranks; each attention-DP rank holds its own batch.
- MoE layers: the same tp x attention_dp GPUs split the experts `moe_ep` ways and each expert `moe_tp` ways, with
  moe_tp x moe_ep = tp x attention_dp (TensorRT-LLM's rule; SGLang's --tp/--dp/--enable-dp-attention/--ep-size
  and vLLM's --data-parallel-size/--enable-expert-parallel map onto it: model.engines).
- `pp` pipeline stages on top; `dp` independent replicas of the whole thing.
GPUs = tp x attention_dp x pp x dp. The serving model evaluates one attention-DP rank (tp x pp GPUs) and
multiplies by `batch_ranks` = attention_dp x dp.

Dense layers inside an MoE model (DeepSeek's first three) and shared experts run tp-way on each attention-DP
rank's own tokens (replicated across attention-DP ranks), as TensorRT-LLM does under attention DP and SGLang with
--moe-dense-tp-size 1.

Short form kept from the older API: `ep` alone. With ep > tp and no attention_dp, the EP group is made of
ep / tp attention-DP ranks (the DeepSeek "DP attention + EP" layout); with ep <= tp, experts are split ep ways
and tp / ep ways inside each expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.architecture.config import Architecture
from model.errors import MAX_PARALLEL, RidgeplanError, require_positive
from model.operators.formulas import Operator


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    ep: int = 1  # MoE expert-parallel degree (moe_ep)
    dp: int = 1  # independent replicas
    attention_dp: int | None = None  # None: ep / tp when ep > tp, else 1
    moe_tp: int | None = None  # None: tp x attention_dp / ep
    redundant_experts: int = 0  # extra copies of hot experts (EPLB), so E + redundant splits evenly over ep

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "ep", "dp"):
            require_positive(name, getattr(self, name), integer=True)
            if getattr(self, name) > MAX_PARALLEL:
                raise RidgeplanError(name, f"{getattr(self, name):g} exceeds the bound of {MAX_PARALLEL:,} GPUs")
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.attention_dp is None:
            adp = self.ep // self.tp if self.ep > self.tp and self.ep % self.tp == 0 else 1
            object.__setattr__(self, "attention_dp", adp)
        require_positive("attention_dp", self.attention_dp, integer=True)
        if self.moe_tp is None:
            group = self.tp * self.attention_dp
            if group % self.ep:
                raise RidgeplanError("moe_ep", f"{self.ep} does not divide the {group} GPUs of TP{self.tp} x "
                                     f"attention-DP{self.attention_dp} (MoE-TP x MoE-EP = TP x attention-DP)",
                                     _divisors(group))
            object.__setattr__(self, "moe_tp", group // self.ep)
        require_positive("moe_tp", self.moe_tp, integer=True)
        if self.moe_tp * self.ep != self.tp * self.attention_dp:
            raise RidgeplanError(
                "moe_tp", f"MoE-TP {self.moe_tp} x MoE-EP {self.ep} = {self.moe_tp * self.ep} must equal TP {self.tp} "
                f"x attention-DP {self.attention_dp} = {self.tp * self.attention_dp}: the MoE layers run on the "
                "attention GPUs", [f"{m}x{self.tp * self.attention_dp // m}" for m in _divisors(self.tp * self.attention_dp)])

    @property
    def moe_ep(self) -> int:
        return self.ep

    @property
    def gpus_per_replica(self) -> int:
        """GPUs of one attention-DP rank: the unit the serving model evaluates."""
        return self.tp * self.pp

    @property
    def moe_group(self) -> int:
        """GPUs of one MoE layer: tp x attention_dp = moe_tp x moe_ep."""
        return self.tp * self.attention_dp

    @property
    def batch_ranks(self) -> int:
        """Ranks that each hold their own batch: attention-DP ranks times independent replicas."""
        return self.attention_dp * self.dp

    @property
    def gpus(self) -> int:
        return self.tp * self.attention_dp * self.pp * self.dp

    @property
    def expert_tp(self) -> int:
        """Tensor-parallel split inside each expert (MoE-TP)."""
        return self.moe_tp

    def label(self) -> str:
        parts = [f"TP{self.tp}"]
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        if self.attention_dp > 1:
            parts.append(f"ADP{self.attention_dp}")
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        if self.ep > 1 and self.moe_tp > 1:
            parts.append(f"MoETP{self.moe_tp}")
        if self.redundant_experts:
            parts.append(f"R{self.redundant_experts}")
        if self.dp > 1:
            parts.append(f"DP{self.dp}")
        return "x".join(parts)

    def check(self, arch: Architecture) -> None:
        """Reject layouts the model cannot be split into, naming the field and the allowed values."""
        heads = {g.attention.num_heads for g in arch.groups}
        for h in heads:
            if h % self.tp:
                raise RidgeplanError("tp", f"{self.tp} does not divide the {h} attention heads of {arch.name}",
                                     _divisors(h))
        for g in arch.groups:
            a = g.attention
            if a.kind == "softmax" and a.num_kv_heads % self.tp and self.tp % a.num_kv_heads:
                raise RidgeplanError("tp", f"{self.tp} neither divides nor is a multiple of the {a.num_kv_heads} KV heads",
                                     sorted(set(_divisors(a.num_kv_heads)) | {a.num_kv_heads * k for k in (2, 4, 8)}))
            if a.kind == "linear" and (a.linear_key_heads % self.tp or a.linear_value_heads % self.tp):
                raise RidgeplanError("tp", f"{self.tp} does not divide the linear-attention heads "
                                     f"({a.linear_key_heads} key, {a.linear_value_heads} value)", _divisors(a.linear_key_heads))
        if self.pp > arch.num_layers:
            raise RidgeplanError("pp", f"{self.pp} stages for {arch.num_layers} layers", f"1..{arch.num_layers}")
        if not arch.is_moe:
            if self.ep > 1:
                raise RidgeplanError("ep", f"{arch.name} has no experts to split", ["1"])
            if self.attention_dp > 1:
                raise RidgeplanError("attention_dp", f"{arch.name} has no MoE layers: attention data-parallel ranks "
                                     "of a dense model are independent replicas", ["1 (use dp for replicas)"])
            return
        experts = {g.mlp.num_experts for g in arch.groups if g.mlp.kind == "moe"}
        if self.redundant_experts < 0:
            raise RidgeplanError("redundant_experts", f"must be >= 0, got {self.redundant_experts}")
        for e in experts:
            held = e + self.redundant_experts
            if held % self.ep:
                extra = (-held) % self.ep + self.redundant_experts
                raise RidgeplanError("ep", f"{self.ep} does not divide the {held} experts of {arch.name}"
                                     + (f" ({e} + {self.redundant_experts} redundant)" if self.redundant_experts else ""),
                                     _divisors(held), hint=f"or add redundant experts (redundant_experts={extra})")
        inter = {g.mlp.expert_intermediate_size for g in arch.groups if g.mlp.kind == "moe"}
        for i in inter:
            if i % self.moe_tp:
                raise RidgeplanError("moe_tp", f"{self.moe_tp} does not divide the expert width {i}", _divisors(i))


def _divisors(n: int) -> list[int]:
    n = int(n)
    return [d for d in range(1, n + 1) if n % d == 0 and d <= 64]


def stage_counts(arch: Architecture, ops: tuple[Operator, ...], pp: int) -> np.ndarray:
    """(pp, n_ops) instances of each operator on each pipeline stage.

    Layers are split as evenly as possible in order (earlier stages take the remainder, as vLLM does);
    embeddings go to the first stage and the final norm, LM head and sampling to the last.
    """
    order = arch.layer_order or tuple(i for i, g in enumerate(arch.groups) for _ in range(g.count))
    n_layers = len(order)
    base, extra = divmod(n_layers, pp)
    sizes = [base + (1 if s < extra else 0) for s in range(pp)]
    per_stage_group = np.zeros((pp, len(arch.groups)))
    start = 0
    for s, size in enumerate(sizes):
        for gi in order[start:start + size]:
            per_stage_group[s, gi] += 1
        start += size
    counts = np.zeros((pp, len(ops)))
    seen_layer_op = False
    for i, op in enumerate(ops):
        if op.group >= 0:
            counts[:, i] = per_stage_group[:, op.group]
            seen_layer_op = True
        else:
            counts[-1 if seen_layer_op else 0, i] = op.count
    return counts
