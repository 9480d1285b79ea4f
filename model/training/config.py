"""What a training run is made of: the optimizer's state layout, the parallel layout and the knobs around them.

A `TrainingLayout` is one user-chosen configuration (validated against the model, errors name the field).
`Candidates` holds many layouts as numpy arrays, one per column, so memory and time are evaluated for
thousands of layouts in one vectorized pass (the planner's search space, or a single estimate as a 1-column
batch).

Rank order, as in Megatron-LM ("tp-cp-dp-pp"): tensor-parallel ranks are adjacent (stride 1), then sequence/
context-parallel ranks (stride tp), then data-parallel replicas (stride tp*sp), then pipeline stages
(stride tp*sp*dp). Which network tier a group crosses follows from that order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from model.architecture.config import Architecture
from model.errors import RidgeplanError, require_positive
from model.placement.layout import Layout

RECOMPUTE = ("none", "selective", "full")
SCHEDULES = ("1f1b", "gpipe")
SP_KINDS = ("ulysses", "ring")
OFFLOAD = ("none", "cpu", "nvme")
ATTENTION_KERNELS = ("flash", "materialized")
ZERO_STAGES = (0, 1, 2, 3)


# ---------------------------------------------------------------------------------------------------------
# optimizers

@dataclass(frozen=True)
class OptimizerSpec:
    """Bytes an optimizer keeps per parameter, besides the 16-bit weights and gradients.

    Full-rank optimizers keep `states` moments of `state_element_bytes` each per parameter. Low-rank ones
    (GaLore, APOLLO) keep, per m x n weight matrix (m <= n), a projector of m*r and `states` moments of r*n
    elements; embeddings and vectors keep full-rank states, as in the GaLore paper.
    """

    name: str
    states: int  # moments per parameter (AdamW: m and v)
    state_element_bytes: float  # 4 fp32, 1 for 8-bit block-quantized states
    master_bytes: float  # fp32 master copy of the weights (mixed precision) or 0 (pure 16-bit training)
    rank: int | None = None  # low-rank projection rank; None = full rank
    layerwise_update: bool = False  # weights updated during backward, so the full gradient is never held
    description: str = ""

    @property
    def full_rank_state_bytes(self) -> float:
        """Optimizer bytes per parameter with full-rank states: moments plus master copy."""
        return self.states * self.state_element_bytes + self.master_bytes

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_OPTIMIZERS = {
    "adamw": OptimizerSpec("adamw", 2, 4.0, 4.0, description="AdamW, mixed precision: fp32 master + m + v = 12 B/param"),
    "adamw8bit": OptimizerSpec("adamw8bit", 2, 1.0, 4.0,
                               description="AdamW with 8-bit block-quantized m and v (bitsandbytes) + fp32 master"),
    "sgd": OptimizerSpec("sgd", 0, 4.0, 4.0, description="SGD without momentum, mixed precision (fp32 master only)"),
    "galore": OptimizerSpec("galore", 2, 4.0, 0.0, rank=128, layerwise_update=True,
                            description="GaLore: Adam moments in a rank-r gradient subspace (fp32), pure BF16 weights, "
                                        "per-layer weight updates"),
    "galore8bit": OptimizerSpec("galore8bit", 2, 1.0, 0.0, rank=128, layerwise_update=True,
                                description="8-bit GaLore: 8-bit low-rank moments, per-layer updates"),
    "apollo-mini": OptimizerSpec("apollo-mini", 2, 4.0, 0.0, rank=1,
                                 description="APOLLO-Mini: rank-1 auxiliary state (SGD-level memory), pure BF16 weights"),
}
OPTIMIZERS = tuple(_OPTIMIZERS)


def optimizer_spec(name: str | OptimizerSpec, *, rank: int | None = None,
                   master_weights: bool | None = None) -> OptimizerSpec:
    """An optimizer by name, with an optional low-rank `rank` and a master-weights override."""
    if isinstance(name, OptimizerSpec):
        spec = name
    else:
        try:
            spec = _OPTIMIZERS[str(name).lower()]
        except KeyError:
            raise RidgeplanError("optimizer", f"unknown optimizer {name!r}", OPTIMIZERS) from None
    if rank is not None:
        if spec.rank is None:
            raise RidgeplanError("rank", f"{spec.name} keeps full-rank states; a rank applies to galore/apollo-mini")
        require_positive("rank", rank, integer=True)
        spec = replace(spec, rank=int(rank))
    if master_weights is not None:
        spec = replace(spec, master_bytes=4.0 if master_weights else 0.0)
    return spec


# ---------------------------------------------------------------------------------------------------------
# settings that are not searched

@dataclass(frozen=True)
class TrainingSettings:
    """Knobs of a run that the planner does not enumerate; every one is echoed in the assumptions."""

    optimizer: OptimizerSpec = _OPTIMIZERS["adamw"]
    dtype: str = "auto"  # GEMM dtype: auto (bf16, fp16 where there is no bf16), bf16, fp16, fp8
    grad_bytes: float = 2.0  # bytes per gradient element kept and reduced (16-bit)
    grad_accum_bytes: float = 8.0  # per parameter and micro-batch: fp32 main gradient read + written (Megatron)
    attention_kernel: str = "flash"
    dropout: bool = False  # dropout masks stored (1 B per element); modern LLM pre-training uses none
    tp_overlap: float = 0.0  # fraction of TP/EP/CP collective time hidden behind compute
    dp_overlap: float = 1.0  # fraction of the last backward available to hide the DP gradient reduction
    compression_ratio: float = 1.0  # DP gradient compression (1-bit style, sparsification): volume / c
    compression_warmup: float = 0.0  # fraction of steps before compression starts (uncompressed)
    sync_every: int = 1  # local-update methods (DiLoCo/CO2): gradients synchronised every H steps
    vocab_parallel: bool = False  # embedding and LM head spread evenly over pipeline stages
    memory_utilization: float = 0.90  # fraction of device memory usable (allocator fragmentation, workspace)
    nvme_drives_per_node: int = 1

    def __post_init__(self) -> None:
        if self.attention_kernel not in ATTENTION_KERNELS:
            raise RidgeplanError("attention_kernel", f"unknown kernel {self.attention_kernel!r}", ATTENTION_KERNELS)
        if self.dtype not in ("auto", "bf16", "fp16", "fp8"):
            raise RidgeplanError("dtype", f"unknown training dtype {self.dtype!r}", ("auto", "bf16", "fp16", "fp8"))
        for name in ("tp_overlap", "dp_overlap", "compression_warmup"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise RidgeplanError(name, f"must be between 0 and 1, got {value}")
        if not 0 < self.memory_utilization <= 1:
            raise RidgeplanError("memory_utilization", f"must be in (0, 1], got {self.memory_utilization}")
        if self.compression_ratio < 1:
            raise RidgeplanError("compression_ratio", f"is original/compressed volume and must be >= 1, got "
                                 f"{self.compression_ratio}")
        require_positive("sync_every", self.sync_every, integer=True)
        require_positive("nvme_drives_per_node", self.nvme_drives_per_node, integer=True)
        require_positive("grad_bytes", self.grad_bytes)


# ---------------------------------------------------------------------------------------------------------
# one layout

@dataclass(frozen=True)
class TrainingLayout:
    """One parallel layout and batch shape. GPUs = tp * pp * sp * dp."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    sp: int = 1  # sequence/context-parallel degree (an extra GPU dimension; Ulysses or ring attention)
    ep: int = 1  # expert-parallel degree (a multiple of tp, carved out of tp x dp as in the serving Layout)
    zero: int = 1
    micro_batch: int = 1
    global_batch: int = 1  # sequences per optimizer step
    seq_len: int = 2048
    recompute: str = "selective"
    virtual_stages: int = 1  # interleaved 1F1B: model chunks per pipeline rank (v)
    schedule: str = "1f1b"
    sp_kind: str = "ulysses"
    sequence_parallel: bool = True  # Megatron SP: norm/dropout activations split over the TP group
    offload_optimizer: str = "none"  # ZeRO-Offload/Infinity: fp32 states and gradients on cpu or nvme
    offload_params: str = "none"  # ZeRO-Infinity: 16-bit weights too (needs ZeRO-3)
    offload_activations: bool = False  # MEMO-style: stored activations swapped to host memory

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "sp", "ep", "micro_batch", "global_batch", "seq_len", "virtual_stages"):
            require_positive(name, getattr(self, name), integer=True)
        for name, value, allowed in (("recompute", self.recompute, RECOMPUTE), ("schedule", self.schedule, SCHEDULES),
                                     ("sp_kind", self.sp_kind, SP_KINDS),
                                     ("offload_optimizer", self.offload_optimizer, OFFLOAD),
                                     ("offload_params", self.offload_params, OFFLOAD)):
            if value not in allowed:
                raise RidgeplanError(name, f"unknown value {value!r}", allowed)
        if self.zero not in ZERO_STAGES:
            raise RidgeplanError("zero", f"unknown ZeRO stage {self.zero!r}", ZERO_STAGES)
        if self.offload_params != "none" and self.zero != 3:
            raise RidgeplanError("offload_params", "offloading the weights needs ZeRO stage 3", ["none"])

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.sp * self.dp

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline per optimizer step (gradient-accumulation steps)."""
        return self.global_batch // (self.micro_batch * self.dp)

    def label(self) -> str:
        parts = [f"TP{self.tp}", f"PP{self.pp}" + (f"v{self.virtual_stages}" if self.virtual_stages > 1 else "")]
        if self.sp > 1:
            parts.append(f"SP{self.sp}({self.sp_kind})")
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        parts.append(f"DP{self.dp}")
        return "x".join(parts) + f" ZeRO-{self.zero} mb{self.micro_batch} {self.recompute}"

    def check(self, arch: Architecture) -> None:
        """Reject layouts this model cannot be split into, naming the field and the allowed values."""
        Layout(tp=self.tp, pp=self.pp, ep=self.ep, dp=self.dp * self.sp).check(arch)
        per_replica = self.micro_batch * self.dp
        if self.global_batch % per_replica:
            raise RidgeplanError("global_batch", f"{self.global_batch} sequences do not split into micro-batches of "
                                 f"{self.micro_batch} over {self.dp} data-parallel replicas",
                                 [per_replica * k for k in (1, 2, 4, 8, 16)])
        if self.seq_len % self.sp:
            raise RidgeplanError("seq_len", f"{self.seq_len} tokens do not split over sp={self.sp} ranks",
                                 [self.sp * k for k in (512, 1024, 2048, 4096)])
        if self.sp > 1 and self.sp_kind == "ulysses":
            for g in arch.groups:
                heads = g.attention.num_heads
                if heads % (self.sp * self.tp):
                    raise RidgeplanError("sp", f"Ulysses needs the {heads} heads divisible by tp*sp = "
                                         f"{self.tp * self.sp}; use --sp-kind ring", _divisors(heads // self.tp))
        if self.virtual_stages > 1:
            if self.pp == 1 or self.schedule != "1f1b":
                raise RidgeplanError("virtual_stages", "interleaving needs pp > 1 and the 1f1b schedule", ["1"])
            if arch.num_layers % (self.pp * self.virtual_stages):
                raise RidgeplanError("virtual_stages", f"{arch.num_layers} layers do not split into "
                                     f"{self.pp} x {self.virtual_stages} model chunks",
                                     [v for v in range(1, 9) if arch.num_layers % (self.pp * v) == 0])
            if self.micro_batches % self.pp:
                raise RidgeplanError("global_batch", f"the interleaved schedule needs micro-batches per step "
                                     f"({self.micro_batches}) divisible by pp={self.pp}")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0 and d <= 64]


# ---------------------------------------------------------------------------------------------------------
# many layouts as arrays

_CODES = {"recompute": RECOMPUTE, "schedule": SCHEDULES, "sp_kind": SP_KINDS, "offload_optimizer": OFFLOAD,
          "offload_params": OFFLOAD}


@dataclass(frozen=True)
class Candidates:
    """Layouts as parallel numpy arrays (one column per layout); string fields are integer codes."""

    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    sp: np.ndarray
    ep: np.ndarray
    zero: np.ndarray
    micro_batch: np.ndarray
    global_batch: np.ndarray
    seq_len: np.ndarray
    recompute: np.ndarray  # index into RECOMPUTE
    virtual_stages: np.ndarray
    schedule: np.ndarray  # index into SCHEDULES
    sp_kind: np.ndarray  # index into SP_KINDS
    sequence_parallel: np.ndarray
    offload_optimizer: np.ndarray  # index into OFFLOAD
    offload_params: np.ndarray
    offload_activations: np.ndarray

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    @property
    def gpus(self) -> np.ndarray:
        return self.tp * self.pp * self.sp * self.dp

    @property
    def micro_batches(self) -> np.ndarray:
        return self.global_batch // (self.micro_batch * self.dp)

    @property
    def tokens_per_micro_batch(self) -> np.ndarray:
        """Tokens one rank processes per micro-batch (sequence split over sp)."""
        return self.micro_batch * self.seq_len / self.sp

    @classmethod
    def from_layouts(cls, layouts: list[TrainingLayout]) -> Candidates:
        cols = {}
        for f in fields(cls):
            values = [getattr(lay, f.name) for lay in layouts]
            if f.name in _CODES:
                values = [_CODES[f.name].index(v) for v in values]
            cols[f.name] = np.asarray(values, dtype=float)
        return cls(**cols)

    @classmethod
    def from_columns(cls, **columns) -> Candidates:
        """Broadcast scalar or array columns to a common length (defaults from TrainingLayout)."""
        base = TrainingLayout()
        raw = {}
        for f in fields(cls):
            v = columns.pop(f.name, getattr(base, f.name))
            if f.name in _CODES and isinstance(v, str):
                v = _CODES[f.name].index(v)
            raw[f.name] = np.asarray(v, dtype=float)
        if columns:
            raise RidgeplanError("candidates", f"unknown column {sorted(columns)[0]!r}", [f.name for f in fields(cls)])
        shape = np.broadcast_shapes(*(a.shape for a in raw.values()))
        return cls(**{k: np.broadcast_to(a, shape).astype(float) for k, a in raw.items()})

    def take(self, index: np.ndarray) -> Candidates:
        return Candidates(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def layout(self, i: int) -> TrainingLayout:
        """Column i as a TrainingLayout."""
        values = {}
        for f in fields(TrainingLayout):
            v = getattr(self, f.name)[i]
            if f.name in _CODES:
                values[f.name] = _CODES[f.name][int(v)]
            elif f.name in ("sequence_parallel", "offload_activations"):
                values[f.name] = bool(v)
            else:
                values[f.name] = int(v)
        return TrainingLayout(**values)
