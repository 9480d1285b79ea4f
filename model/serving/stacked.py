"""Many deployments of one model evaluated in one vectorized pass.

`StackedDeployment` looks like a `Deployment` to the serving functions (`iteration_cost`, `kv_capacity`,
`steady_state`) but every quantity is an array over scenarios, scenario s belonging to deployment
`index[s]`. The planner uses it to evaluate hundreds of candidate configurations (GPU type x layout x precision)
at once with the same code that serves a single estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model.lru import LRU
from model.errors import RidgeplanError
from model.operators.compiled import CompiledGraph
from model.roofline.efficiency import Efficiency
from model.roofline.evaluator import ExecContext, evaluate, stack_contexts, take_context
from model.serving.deployment import Deployment


@dataclass(frozen=True)
class StackedLayout:
    """What the serving functions read of a layout, per scenario: the pipeline depth (shared) and GPUs per replica."""

    pp: int
    gpus_per_replica: np.ndarray
    attention_dp: np.ndarray  # attention data-parallel ranks meeting at every MoE layer


@dataclass(frozen=True)
class StackedDeployment:
    deployments: tuple[Deployment, ...]
    index: np.ndarray  # deployment of each scenario

    def __post_init__(self) -> None:
        if not self.deployments:
            raise RidgeplanError("candidates", "need at least one deployment")
        first = self.deployments[0]
        for d in self.deployments[1:]:
            if d.arch != first.arch:
                raise RidgeplanError("candidates", "stacked deployments must share one model")
            if d.layout.pp != first.layout.pp:
                raise RidgeplanError("candidates", "stacked deployments must share one pipeline depth")
        object.__setattr__(self, "index", np.asarray(self.index, dtype=int))

    @classmethod
    def repeat(cls, deployments: list[Deployment], per_deployment: int) -> StackedDeployment:
        """Each deployment repeated for `per_deployment` consecutive scenarios."""
        return cls(tuple(deployments), np.repeat(np.arange(len(deployments)), per_deployment))

    # -- the Deployment interface the serving functions use ---------------------------------------------
    @property
    def arch(self):
        return self.deployments[0].arch

    @property
    def graph(self) -> CompiledGraph:
        return self.deployments[0].graph

    @property
    def counts(self) -> np.ndarray:
        return self.deployments[0].counts

    @property
    def per_sequence_ops(self) -> np.ndarray:
        return self.deployments[0].per_sequence_ops

    @property
    def layout(self) -> StackedLayout:
        return StackedLayout(pp=self.deployments[0].layout.pp, gpus_per_replica=self.gpus_per_replica,
                             attention_dp=self._columns.attention_dp[self.index])

    @property
    def kv_residual_tokens(self) -> int:
        return 0

    @cached_property
    def _columns(self) -> _Columns:
        return _columns(self.deployments)

    @cached_property
    def gpus_per_replica(self) -> np.ndarray:
        return self._columns.gpus_per_replica[self.index]

    @cached_property
    def capacity_bytes(self) -> np.ndarray:
        return self._columns.capacity_bytes[self.index]

    @cached_property
    def context(self) -> ExecContext:
        return take_context(self._columns.context, self.index)

    @cached_property
    def eff(self) -> Efficiency:
        return self.context.eff

    @cached_property
    def _symbols(self) -> dict[str, np.ndarray]:
        return {k: v[self.index] for k, v in self._columns.symbols.items()}

    def symbols(self) -> dict[str, np.ndarray]:
        return dict(self._symbols)

    def op_seconds(self, batch, new_tokens, context, n_logit=1.0, *, rows=None):
        ops = self.graph.evaluate({**self._symbols, "B": batch, "T": new_tokens, "C": context, "n_logit": n_logit},
                                  rows=rows)
        times = evaluate(ops, self.context)
        return ops, times, times.time_s - times.comm_overlap * times.network_s

    def p2p_seconds(self, tokens) -> np.ndarray:
        """Pipeline hand-offs with each deployment's own link (as Deployment.p2p_seconds)."""
        tokens = np.asarray(tokens, dtype=float)
        if self.deployments[0].layout.pp == 1:
            return np.zeros_like(tokens)
        base, one = np.array([d.p2p_affine_s for d in self.deployments]).T[:, self.index]
        return base + one * tokens  # the alpha-beta hand-off is affine in the message size


@dataclass(frozen=True)
class _Columns:
    """What stacking reads of each deployment, one entry per deployment (indexed by scenario afterwards)."""

    context: ExecContext
    symbols: dict[str, np.ndarray]
    gpus_per_replica: np.ndarray
    capacity_bytes: np.ndarray
    attention_dp: np.ndarray


COLUMN_SETS = 8  # deployment lists whose columns are remembered (the planner stacks each list many times)
# keyed by the objects' ids; the entry keeps the objects themselves alive, so an id is not reused while remembered
_column_sets: LRU[tuple[int, ...], tuple[tuple[Deployment, ...], _Columns]] = LRU(COLUMN_SETS)


def _columns(deployments: tuple[Deployment, ...]) -> _Columns:
    """Each deployment's context, symbols and sizes as arrays, built once per list of deployment objects: the
    planner evaluates the same candidates on several scenario grids (coarse, fine, each role's), each a new
    StackedDeployment. A hit needs the very same objects (frozen), so nothing stale is reused."""
    key = tuple(map(id, deployments))
    hit = _column_sets.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], deployments)):
        return hit[1]
    per = [d.symbols() for d in deployments]
    cols = _Columns(
        context=stack_contexts([d.context for d in deployments]),
        symbols={k: np.array([p[k] for p in per], dtype=float) for k in per[0]},
        gpus_per_replica=np.array([d.layout.gpus_per_replica for d in deployments], dtype=float),
        capacity_bytes=np.array([d.capacity_bytes for d in deployments]),
        attention_dp=np.array([d.layout.attention_dp for d in deployments], dtype=float),
    )
    _column_sets.put(key, (deployments, cols))
    return cols
