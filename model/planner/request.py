"""What a plan is asked for: traffic per model, an SLO, candidate GPUs, precisions, roles and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.hardware.db import load_device
from model.serving.estimate import SLO
from model.serving.workload import Lengths

ROLES = ("aggregated", "prefill", "decode")
OBJECTIVES = ("cost", "gpus", "power", "goodput")
DEFAULT_PRECISIONS = (("bf16", "bf16"), ("fp8", "fp8"), ("int4", "bf16"), ("fp8", "bf16"))


@dataclass(frozen=True)
class Traffic:
    """Requests for one model: a rate (requests/s) with an input/output length distribution."""

    model: str
    rate_per_s: float
    lengths: Lengths

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise RidgeplanError("model", f"must be a model id, got {self.model!r}")
        require_positive("rate", self.rate_per_s)
        if not isinstance(self.lengths, Lengths):
            raise RidgeplanError("lengths", f"must be a Lengths, got {type(self.lengths).__name__}")


@dataclass(frozen=True)
class GpuOption:
    """A candidate GPU type with its price (default: hardware_db's reference price) and availability."""

    gpu: str
    usd_per_hour: float | None = None
    available: int | None = None  # at most this many GPUs of this type (None: unlimited)

    def __post_init__(self) -> None:
        if not isinstance(self.gpu, str) or not self.gpu:
            raise RidgeplanError("gpus", f"must be a device id, got {self.gpu!r}")
        if self.usd_per_hour is not None:
            require_positive("usd_per_hour", self.usd_per_hour)  # a free GPU would make every fleet cost $0
        if self.available is not None:
            require_positive("available", self.available, integer=True, allow_zero=True)

    @cached_property
    def device(self):
        return load_device(self.gpu)

    @cached_property
    def price(self) -> float:
        if self.usd_per_hour is not None:
            return self.usd_per_hour
        dev = self.device
        if dev.price is None:
            raise RidgeplanError("price", f"{dev.name} has no reference price in hardware_db; pass one (gpu=ID:USD_PER_HOUR)")
        return dev.price.usd_per_hour


@dataclass(frozen=True)
class PlanRequest:
    traffic: tuple[Traffic, ...]
    slo: SLO
    gpus: tuple[GpuOption, ...]
    precisions: tuple[tuple[str, str], ...] = DEFAULT_PRECISIONS  # (weights, kv) pairs
    roles: tuple[str, ...] = ROLES
    max_accuracy_risk: int = 3  # drop precisions whose published risk exceeds this (0 none .. 3 high)
    gpus_per_instance: tuple[int, ...] = (1, 2, 4, 8)
    pipeline_depths: tuple[int, ...] = (1, 2)
    engine: str = "vllm"
    budget_usd_per_hour: float | None = None
    power_cap_w: float | None = None
    objective: str = "cost"
    max_buckets: int = 16  # request-size buckets per model
    slices_per_bucket: int = 4  # rate slices per bucket (Melange-style; matters when slices may not split)
    split_slices: bool = True  # a slice may be spread over several configurations
    kv_placement: str = "across_nodes"  # where prefill->decode KV hand-offs travel
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.slo, SLO):
            raise RidgeplanError("slo", f"must be an SLO, got {type(self.slo).__name__}")
        if not self.traffic:
            raise RidgeplanError("model", "need traffic for at least one model")
        if not self.gpus:
            raise RidgeplanError("gpus", "need at least one candidate GPU type")
        if self.slo.ttft_s is None and self.slo.tpot_s is None:
            raise RidgeplanError("slo", "give a TTFT and/or a TPOT target")
        for r in self.roles:
            if r not in ROLES:
                raise RidgeplanError("roles", f"unknown role {r!r}", ROLES)
        if "aggregated" not in self.roles and not {"prefill", "decode"} <= set(self.roles):
            raise RidgeplanError("roles", "need aggregated instances or both prefill and decode pools")
        if self.objective not in OBJECTIVES:
            raise RidgeplanError("objective", f"unknown objective {self.objective!r}", OBJECTIVES)
        if self.objective == "goodput" and self.budget_usd_per_hour is None:
            raise RidgeplanError("budget", "the goodput objective maximises served traffic under a budget: give one")
        if self.budget_usd_per_hour is not None:
            require_positive("budget", self.budget_usd_per_hour)
        if self.power_cap_w is not None:
            require_positive("power_cap", self.power_cap_w)
        require_positive("max_accuracy_risk", self.max_accuracy_risk, integer=True, allow_zero=True)
        if self.max_accuracy_risk > 3:
            raise RidgeplanError("max_accuracy_risk", f"must be 0..3, got {self.max_accuracy_risk}")
        for name, bound in (("max_buckets", 256), ("slices_per_bucket", 64)):
            require_positive(name, getattr(self, name), integer=True)
            if getattr(self, name) > bound:
                raise RidgeplanError(name, f"must be at most {bound}, got {getattr(self, name)!r}")
        for name in ("gpus_per_instance", "pipeline_depths"):
            values = getattr(self, name)
            if not isinstance(values, (tuple, list)) or not values:
                raise RidgeplanError(name, f"must be a non-empty tuple of whole numbers, got {values!r}")
            for v in values:
                require_positive(name, v, integer=True)
        from model.serving.policy import engine_policy

        engine_policy(self.engine)  # an unknown engine fails here, naming the engines
        for g in self.gpus:
            g.price  # noqa: B018  (fail early with a clear message when a price is missing)
        names = [g.gpu for g in self.gpus]
        if len(set(names)) != len(names):
            raise RidgeplanError("gpus", "a GPU type is listed twice")


@dataclass(frozen=True)
class Slice:
    """A share of one model's traffic: requests of one size bucket at `rate_per_s`."""

    model: str
    bucket: int
    input_len: float
    output_len: float
    rate_per_s: float


def buckets(lengths: Lengths, max_buckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge a length distribution into at most `max_buckets` (input, output) buckets, weight-preserving:
    bins are grouped by quantiles of their total tokens and each group keeps its weighted mean lengths."""
    i, o, w = lengths.input_len, lengths.output_len, lengths.weight
    if i.size <= max_buckets:
        return i, o, w
    order = np.argsort(i + o)
    cum = np.cumsum(w[order])
    group = np.minimum((cum * max_buckets / cum[-1] - 1e-12).astype(int), max_buckets - 1)
    bi, bo, bw = [], [], []
    for g in range(max_buckets):
        rows = order[group == g]
        if rows.size == 0:
            continue
        ww = w[rows]
        bi.append(float(ww @ i[rows] / ww.sum()))
        bo.append(float(ww @ o[rows] / ww.sum()))
        bw.append(float(ww.sum()))
    return np.array(bi), np.array(bo), np.array(bw)


def slices(request: PlanRequest) -> list[Slice]:
    out: list[Slice] = []
    for t in request.traffic:
        bi, bo, bw = buckets(t.lengths, request.max_buckets)
        for b, (ii, oo, ww) in enumerate(zip(bi, bo, bw)):
            n = request.slices_per_bucket if not request.split_slices else 1
            out += [Slice(t.model, b, float(ii), float(oo), t.rate_per_s * ww / n) for _ in range(n)]
    return out
