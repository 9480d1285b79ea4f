"""Memory fit questions: which weight format is the widest that fits a device set, and how
few devices hold a model.

    N_min >= ceil(weight bytes / device memory)                         (the pure-weights lower bound)
    a deployment fits when weights + KV of the batch + workspace <= usable memory on every GPU (static_batch)

`widest_fitting_format` answers "the planner's minimum precision to fit" (GLM-130B, GPTQ, LLM.int8()):
formats are tried from widest to narrowest and the first one whose static batch fits is returned, with the KV
headroom left.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from model.errors import RidgeplanError
from model.serving.deployment import Deployment
from model.serving.static import static_batch


def min_devices_for_bytes(total_bytes: float, device_bytes: float) -> int:
    """The pure-capacity lower bound ceil(total / per-device)."""
    if device_bytes <= 0:
        raise RidgeplanError("device_bytes", f"must be > 0, got {device_bytes}")
    return max(1, math.ceil(total_bytes / device_bytes - 1e-12))


@dataclass(frozen=True)
class FitResult:
    choice: object  # the format or device count found (None when nothing fits)
    deployment: Deployment | None
    headroom_bytes: float  # usable bytes per GPU left after weights, the batch's KV and workspace
    tried: dict  # choice -> (fits, total bytes per GPU)


def widest_fitting_format(make: Callable[[str], Deployment], formats: Sequence[str], *, batch: int = 1,
                          input_len: int = 512, output_len: int = 128) -> FitResult:
    """The first format of `formats` (give them widest first) whose deployment `make(format)` fits a static
    batch of `batch` requests of `input_len` + `output_len` tokens."""
    tried = {}
    for fmt in formats:
        d = make(fmt)
        est = static_batch(d, batch, input_len, output_len)
        tried[fmt] = (est.fits, est.memory.total_bytes)
        if est.fits:
            return FitResult(fmt, d, est.memory.headroom_bytes, tried)
    return FitResult(None, None, float("nan"), tried)


def fewest_devices(make: Callable[[int], Deployment], counts: Sequence[int], *, batch: int = 1,
                   input_len: int = 512, output_len: int = 128) -> FitResult:
    """The smallest device count of `counts` (ascending) whose deployment `make(n)` fits the static batch;
    counts the deployment cannot be split into (an error naming tp or pp) are skipped."""
    tried = {}
    for n in counts:
        try:
            d = make(n)
        except RidgeplanError as err:
            if err.field not in ("tp", "pp"):
                raise
            continue
        est = static_batch(d, batch, input_len, output_len)
        tried[n] = (est.fits, est.memory.total_bytes)
        if est.fits:
            return FitResult(n, d, est.memory.headroom_bytes, tried)
    return FitResult(None, None, float("nan"), tried)
