"""Parameter counts derived from the operator graph (one source of truth for weights)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from model.architecture.config import Architecture
from model.operators.graph import build_graph
from model.operators.symbols import ep, etp, tp, e_red

_SINGLE_RANK = {tp: 1, ep: 1, etp: 1, e_red: 0}


@dataclass(frozen=True)
class ParameterCounts:
    total: float  # every parameter of the model (tied embeddings counted once)
    active: float  # parameters one token touches (MoE: shared + top-k experts; embeddings included)
    embedding: float  # input embedding (+ learned positions) and an untied LM head
    by_operator: dict[str, float]  # total per operator name, summed over layers

    vocab_matrix: float = 0.0  # parameters of one vocabulary matrix (V x d)

    @property
    def non_embedding(self) -> float:
        return self.total - self.embedding

    def active_excluding(self, excludes: str) -> float:
        """Active count under a publisher's convention: none | one_vocab_matrix | both_vocab_matrices."""
        drop = {"none": 0, "one_vocab_matrix": 1, "both_vocab_matrices": 2}[excludes]
        return self.active - drop * self.vocab_matrix


@lru_cache(maxsize=256)
def parameter_counts(arch: Architecture) -> ParameterCounts:
    total = active = embedding = 0.0
    by_op: dict[str, float] = {}
    for op in build_graph(arch):
        resident = float(sp.sympify(op.params).subs(_SINGLE_RANK)) * op.count
        touched = float(sp.sympify(op.active_params)) * op.count
        total += resident
        active += touched
        by_op[op.name] = by_op.get(op.name, 0.0) + resident
        if op.name in ("embedding", "position_embedding", "lm_head"):
            embedding += resident
    return ParameterCounts(total=total, active=active, embedding=embedding, by_operator=by_op,
                           vocab_matrix=float(arch.vocab_size * arch.hidden_size))
