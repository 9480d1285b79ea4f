"""Lambdify an operator graph once and evaluate it over numpy arrays of scenarios."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.operators.formulas import Operator
from model.operators.graph import build_graph
from model.operators.symbols import DEFAULTS, SCENARIO_SYMBOLS, SYMBOL_NAMES

QUANTITIES = ("flops", "weight_bytes", "act_bytes", "kv_read_bytes", "kv_write_bytes", "comm_bytes", "m", "n", "k",
              "resident_bytes", "cache_bytes")


@dataclass(frozen=True)
class OpArrays:
    """Per-operator, per-scenario quantities: each array has shape (n_ops, n_scenarios), per instance."""

    ops: tuple[Operator, ...]
    counts: np.ndarray  # (n_ops,) instances per forward pass
    values: np.ndarray  # (len(QUANTITIES), n_ops, n_scenarios)

    def __getattr__(self, name: str) -> np.ndarray:
        if name in QUANTITIES:
            return self.values[QUANTITIES.index(name)]
        raise AttributeError(name)

    @property
    def bytes(self) -> np.ndarray:
        v = self.values
        return v[1] + v[2] + v[3] + v[4]

    @property
    def n_scenarios(self) -> int:
        return self.values.shape[2]

    def total(self, quantity: str) -> np.ndarray:
        """Whole-step total of a quantity: Σ over operators of count × per-instance value, per scenario."""
        arr = self.bytes if quantity == "bytes" else getattr(self, quantity)
        return self.counts @ arr


class CompiledOps:
    """Operators with every quantity lambdified to one numpy function (a whole graph: CompiledGraph; a fragment,
    e.g. one MoE layer's expert kernels: model.calibration.moe_rows)."""

    def __init__(self, ops):
        self.ops = ops
        self.counts = np.array([op.count for op in self.ops], dtype=float)
        exprs = [sp.sympify(op.resident if q == "resident_bytes" else getattr(op, q)) for q in QUANTITIES for op in self.ops]
        self._fn = sp.lambdify(SCENARIO_SYMBOLS, exprs, modules="numpy", cse=True)

    def evaluate(self, scenario: Mapping[str, object] | None = None, *, rows=None, **values: object) -> OpArrays:
        """Evaluate every operator for the scenario(s): values are scalars or 1-D arrays of equal length.

        `rows` (a boolean mask or indices over `ops`): return only those operators, in graph order (a caller that
        reads a few rows, e.g. the per-sequence attention of an iteration, skips copying and timing the rest)."""
        merged = dict(DEFAULTS)
        for name, value in {**(scenario or {}), **values}.items():
            if name not in merged:
                raise RidgeplanError("scenario", f"unknown symbol {name!r}", SYMBOL_NAMES)
            merged[name] = value
        arrays = [np.asarray(merged[name], dtype=float) for name in SYMBOL_NAMES]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        if len(shape) > 1:
            raise RidgeplanError("scenario", f"values must be scalars or 1-D arrays, got shape {shape}")
        n = shape[0] if shape else 1
        arrays = [np.broadcast_to(a, (n,)) for a in arrays]
        with np.errstate(divide="ignore", invalid="ignore"):
            flat = self._fn(*arrays)
        n_ops = len(self.ops)
        keep = np.arange(n_ops) if rows is None else np.arange(n_ops)[rows]
        out = np.empty((len(QUANTITIES), keep.size, n))
        for q in range(len(QUANTITIES)):
            for j, op in enumerate(keep):
                out[q, j] = flat[q * n_ops + op]
        if rows is None:
            return OpArrays(self.ops, self.counts, out)
        return OpArrays(tuple(self.ops[k] for k in keep), self.counts[keep], out)


class CompiledGraph(CompiledOps):
    """An architecture's operator graph with every quantity lambdified to one numpy function."""

    def __init__(self, arch: Architecture, unquantized: tuple[str, ...] = ()):
        self.arch = arch
        super().__init__(build_graph(arch, unquantized))


@lru_cache(maxsize=128)
def compile_graph(arch: Architecture, unquantized: tuple[str, ...] = ()) -> CompiledGraph:
    """`unquantized`: the modules the checkpoint leaves in 16 bits (model.operators.graph.MODULES)."""
    return CompiledGraph(arch, unquantized)
