"""What the serving core reads of a deployment: one typing Protocol that `Deployment`, `StackedDeployment` (many
deployments of one model as arrays over scenarios) and `SymbolOverride` (a deployment with overridden byte widths)
all satisfy, so serving functions are typed against it instead of against one concrete class."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from model.architecture.config import Architecture
from model.operators.compiled import CompiledGraph, OpArrays
from model.roofline.efficiency import Efficiency
from model.roofline.evaluator import ExecContext, OpTimes


class LayoutView(Protocol):
    """The layout fields serving arithmetic needs (scalars, or arrays over scenarios for GPUs per replica)."""

    @property
    def pp(self) -> int: ...

    @property
    def gpus_per_replica(self) -> int | np.ndarray: ...


@runtime_checkable
class CostedDeployment(Protocol):
    """A model placed on devices whose iteration cost and memory the serving core can evaluate."""

    @property
    def arch(self) -> Architecture: ...

    @property
    def graph(self) -> CompiledGraph: ...

    @property
    def counts(self) -> np.ndarray: ...

    @property
    def per_sequence_ops(self) -> np.ndarray: ...

    @property
    def layout(self) -> LayoutView: ...

    @property
    def eff(self) -> Efficiency: ...

    @property
    def context(self) -> ExecContext: ...

    @property
    def capacity_bytes(self) -> float | np.ndarray: ...

    @property
    def kv_residual_tokens(self) -> int: ...

    def symbols(self) -> dict[str, float | np.ndarray]: ...

    def op_seconds(self, batch, new_tokens, context, n_logit=1.0, *,
                   rows=None) -> tuple[OpArrays, OpTimes, np.ndarray]: ...

    def p2p_seconds(self, tokens) -> np.ndarray: ...
