"""Parallel layouts: tensor (TP), pipeline (PP), expert (EP, with attention data-parallel) and replicas (DP).

Conventions (as in vLLM and SGLang):
- GPUs per replica = tp * pp; a deployment of `dp` replicas uses tp * pp * dp GPUs.
- With ep > 1 the experts of every MoE layer are split over an EP group of `ep` ranks made of the TP ranks of
  ep / tp attention data-parallel replicas (DeepSeek-style "DP attention + EP"): each contributes its own batch
  of tokens to the all-to-all. With ep == 1 each expert is split tp-ways like a dense MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.architecture.config import Architecture
from model.errors import RidgeplanError, require_positive
from model.operators.formulas import Operator


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "ep", "dp"):
            require_positive(name, getattr(self, name), integer=True)

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def attention_dp(self) -> int:
        """Attention data-parallel replicas feeding one EP group (1 without EP)."""
        return max(self.ep // self.tp, 1) if self.ep > 1 else 1

    @property
    def expert_tp(self) -> int:
        """Tensor-parallel split inside each expert: tp without EP, 1 with it."""
        return 1 if self.ep > 1 else self.tp

    def label(self) -> str:
        parts = [f"TP{self.tp}"]
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
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
        if self.ep > 1:
            if not arch.is_moe:
                raise RidgeplanError("ep", f"{arch.name} has no experts to split", ["1"])
            experts = {g.mlp.num_experts for g in arch.groups if g.mlp.kind == "moe"}
            for e in experts:
                if e % self.ep:
                    raise RidgeplanError("ep", f"{self.ep} does not divide the {e} experts of {arch.name}", _divisors(e))
            if self.ep % self.tp:
                raise RidgeplanError("ep", f"the EP group ({self.ep}) must be a multiple of tp ({self.tp})",
                                     [self.tp * k for k in (1, 2, 4, 8)])
            if self.dp % self.attention_dp:
                raise RidgeplanError("dp", f"EP{self.ep} over TP{self.tp} needs attention-DP replicas in multiples "
                                     f"of {self.attention_dp}", [self.attention_dp * k for k in (1, 2, 4)])
        inter = {g.mlp.expert_intermediate_size for g in arch.groups if g.mlp.kind == "moe"}
        for i in inter:
            if i % self.expert_tp:
                raise RidgeplanError("tp", f"{self.expert_tp} does not divide the expert width {i}", _divisors(i))


def _divisors(n: int) -> list[int]:
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
