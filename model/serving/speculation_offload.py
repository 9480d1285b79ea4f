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

from model.errors import RidgeplanError, require_fraction, require_positive
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
    mtp: bool = False  # draft with the checkpoint's multi-token-prediction modules (model.serving.mtp)

    def __post_init__(self) -> None:
        require_fraction("spec_alpha", self.alpha)
        require_positive("spec_k", self.k, integer=True)
        if self.draft_model == "mtp":
            object.__setattr__(self, "draft_model", None)
            object.__setattr__(self, "mtp", True)
        if self.draft_model is None and self.draft_cost_ratio is None and not self.mtp:
            object.__setattr__(self, "draft_cost_ratio", 0.05)
        if self.draft_cost_ratio is not None:
            require_fraction("draft_cost_ratio", self.draft_cost_ratio)
        if self.draft_model is not None and not isinstance(self.draft_model, str):
            raise RidgeplanError("spec_draft", f"must be a model id, got {self.draft_model!r}")

    @property
    def tokens_per_step(self) -> float:
        return float(expected_tokens_per_step(self.alpha, self.k))

    @classmethod
    def multi_token_prediction(cls, k: int = 1, alpha: float | None = None) -> Speculation:
        """MTP drafting at the sourced default acceptance for k drafts (model.serving.mtp.mtp_acceptance) unless
        given."""
        from model.serving.mtp import mtp_acceptance

        return cls(mtp_acceptance(k) if alpha is None else alpha, k, mtp=True)

    def describe(self) -> str:
        if self.mtp:
            from model.serving.mtp import MTP_ACCEPTANCE_SOURCE, mtp_acceptance

            src = f" (default from {MTP_ACCEPTANCE_SOURCE})" if self.alpha == mtp_acceptance(self.k) else ""
            return (f"speculative decoding with the checkpoint's MTP module(s): alpha {self.alpha:.2f}{src}, k {self.k}, "
                    f"{self.tokens_per_step:.2f} tokens per verification; the MTP weights and their KV layer are "
                    "held on the last stage; each draft forward costs one MoE layer, eh_proj and the LM head, the first "
                    "over the k + 1 verified positions per sequence (TensorRT-LLM MTPEagleWorker)")
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
        if not isinstance(self.target, str) or self.target not in OFFLOAD_TARGETS:
            raise RidgeplanError("offload", f"unknown offload target {self.target!r}", OFFLOAD_TARGETS)
        require_fraction("offload_fraction", self.fraction, low_open=True)
        require_fraction("hit_rate", self.hit_rate, high_open=True)
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
