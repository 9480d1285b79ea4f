"""Serving techniques the planner can switch on: speculative decoding and offload tiers.

(Quantization and KV precision live in `model.precision` and the Deployment; prefix reuse in the Workload.)

Speculative decoding: with acceptance rate alpha and draft length k, one verification yields
E = (1 - alpha^(k+1)) / (1 - alpha) tokens per sequence; a step costs k draft steps plus one target step over
k + 1 tokens per sequence. It pays while the target step stays memory-bound; at high batch the verification of
B (k + 1) tokens turns compute-bound and the gain falls below 1.

Offload: weights, KV cache or MoE experts kept on a slower tier (host DRAM, NVMe, a computational storage drive)
and moved over the GPU's host link every iteration they are needed; transfer and compute overlap (the step costs
the larger of the two) unless `overlap` is off (the sum). A computational storage drive can instead run decode
attention in place at its internal flash bandwidth, so only queries and attention outputs cross PCIe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.hardware.db import get_link, load_device
from model.hardware.schema import Device

OFFLOAD_TARGETS = ("weights", "kv", "experts")


def expected_tokens_per_step(alpha, k) -> np.ndarray:
    """Tokens a sequence gains per verification: (1 - alpha^(k+1)) / (1 - alpha) (k + 1 when alpha = 1)."""
    a = np.asarray(alpha, dtype=float)
    k = np.asarray(k, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1 - a ** (k + 1)) / (1 - a)
    return np.where(a >= 1, k + 1, e)


def speculative_step_s(k, draft_step_s, verify_step_s):
    """One speculation round: k draft steps, then the target verifies k + 1 tokens per sequence."""
    return np.asarray(k, dtype=float) * draft_step_s + verify_step_s


def speculative_speedup(alpha, k, draft_step_s, verify_step_s, autoregressive_step_s):
    """Tokens per second with speculation over tokens per second without: E x t_AR / (k t_draft + t_verify)."""
    return expected_tokens_per_step(alpha, k) * autoregressive_step_s / speculative_step_s(k, draft_step_s, verify_step_s)


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding with acceptance rate `alpha` and draft length `k`.

    The draft is a separate model (`draft_model`, a catalogue id, run on the same GPUs with its own layout
    TP) or, for self-drafting / multi-token prediction heads, a cost ratio: one draft token costs
    `draft_cost_ratio` of a target decode step.
    """

    alpha: float
    k: int
    draft_model: str | None = None
    draft_cost_ratio: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise RidgeplanError("spec_alpha", f"acceptance rate must be in [0, 1], got {self.alpha}")
        require_positive("spec_k", self.k, integer=True)
        if self.draft_model is None and self.draft_cost_ratio is None:
            object.__setattr__(self, "draft_cost_ratio", 0.05)
        if self.draft_cost_ratio is not None and not 0 <= self.draft_cost_ratio <= 1:
            raise RidgeplanError("draft_cost_ratio", f"must be in [0, 1], got {self.draft_cost_ratio}")

    @property
    def tokens_per_step(self) -> float:
        return float(expected_tokens_per_step(self.alpha, self.k))

    def describe(self) -> str:
        draft = (f"draft model {self.draft_model}" if self.draft_model
                 else f"a self-draft costing {self.draft_cost_ratio:.0%} of a target step per token")
        return (f"speculative decoding: alpha {self.alpha:.2f}, k {self.k}, {self.tokens_per_step:.2f} tokens per "
                f"verification, {draft}")


@dataclass(frozen=True)
class Offload:
    """Keep `fraction` of the `target` (weights | kv | experts) on `tier` (a hardware_db device id of kind cpu,
    ssd or csd; `devices` of them striped together)."""

    target: str
    tier: str = "host-xeon-8480"
    fraction: float = 1.0
    devices: int = 1
    hit_rate: float = 0.0  # experts: share of needed experts already cached on the GPU
    overlap: bool = True
    in_place_attention: bool = False  # kv on a CSD: attention runs on the drive
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.target not in OFFLOAD_TARGETS:
            raise RidgeplanError("offload", f"unknown offload target {self.target!r}", OFFLOAD_TARGETS)
        if not 0 < self.fraction <= 1:
            raise RidgeplanError("offload_fraction", f"must be in (0, 1], got {self.fraction}")
        if not 0 <= self.hit_rate < 1:
            raise RidgeplanError("hit_rate", f"must be in [0, 1), got {self.hit_rate}")
        require_positive("offload_devices", self.devices, integer=True)
        tier = load_device(self.tier, field="offload_tier")
        if tier.kind not in ("cpu", "ssd", "csd"):
            raise RidgeplanError("offload_tier", f"{tier.id} is a {tier.kind}, not a storage tier", ["cpu", "ssd", "csd"])
        if self.in_place_attention and (tier.kind != "csd" or self.target != "kv"):
            raise RidgeplanError("in_place_attention", "needs target kv on a computational storage drive (kind csd)")

    @property
    def tier_device(self) -> Device:
        return load_device(self.tier, field="offload_tier")

    def link_bytes_per_s(self, gpu: Device) -> float:
        """Achievable bytes/s between the tier and one GPU: the tier's (striped) read bandwidth, capped by the
        GPU's host link (and the drives' own PCIe links) after bus efficiency."""
        tier = self.tier_device
        tier_bw = tier.memory.bandwidth_bytes_per_s * self.devices
        if tier.memory.external_bandwidth_bytes_per_s:
            tier_bw = min(tier_bw, tier.memory.external_bandwidth_bytes_per_s * self.devices)
        if gpu.host_link is None:
            raise RidgeplanError("offload", f"{gpu.name} has no host link in its hardware file")
        host = gpu.host_link.bandwidth_bytes_per_s_per_direction * get_link(gpu.host_link.link).bus_efficiency
        return min(tier_bw, host)

    def in_place_bytes_per_s(self) -> float:
        """Internal (flash) bandwidth of the drives for in-place attention."""
        return self.tier_device.memory.bandwidth_bytes_per_s * self.devices

    def describe(self) -> str:
        mode = "attention computed in place" if self.in_place_attention else (
            "transfers overlapped with compute" if self.overlap else "transfers serialised with compute")
        extra = f", expert cache hit rate {self.hit_rate:.0%}" if self.target == "experts" else ""
        return f"offload {self.fraction:.0%} of {self.target} to {self.devices} x {self.tier} ({mode}{extra})"
