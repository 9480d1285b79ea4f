"""The hardware data model: devices, links and node types, validated as they are loaded.

Fields carry their units in their names. The TOML layout is documented in docs/hardware_db.md.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model.precision import COMPUTE_DTYPES

DEVICE_KINDS = ("gpu", "tpu", "accelerator", "npu", "fpga", "cpu", "ssd", "csd", "pim", "edge")
OP_CLASSES = ("all", "gemm", "gemv", "attention", "elementwise")
LINK_KINDS = ("scale_up", "scale_out", "host", "storage", "wireless")
TOPOLOGIES = ("switch", "ring", "mesh", "torus", "pcie")
MAX_DOMAIN_DEVICES = 100_000  # far above any scale-up domain (NVL576, TPU pods of 8,960 chips)
_NUMERIC_SECTIONS = ("peak_flop_per_s", "memory", "on_chip", "scale_up", "scale_out", "host_link", "power")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


class Memory(_Strict):
    capacity_bytes: float
    bandwidth_bytes_per_s: float
    type: str = ""
    write_bandwidth_bytes_per_s: float | None = None
    external_bandwidth_bytes_per_s: float | None = None
    runtime_total_bytes: float | None = None  # what the driver reports (nvidia-smi memory.total); fit checks use it

    @property
    def total_bytes(self) -> float:
        """Memory an engine can address: the runtime-reported total when known, else the marketed capacity."""
        return self.runtime_total_bytes or self.capacity_bytes

    @model_validator(mode="after")
    def _check(self) -> Memory:
        for name in ("capacity_bytes", "bandwidth_bytes_per_s", "write_bandwidth_bytes_per_s",
                     "external_bandwidth_bytes_per_s", "runtime_total_bytes"):
            _positive(name, getattr(self, name))
        return self


class OnChip(_Strict):
    l2_bytes: float | None = None
    sram_bytes: float | None = None
    compute_units: int | None = None

    @model_validator(mode="after")
    def _check(self) -> OnChip:
        for name in ("l2_bytes", "sram_bytes", "compute_units"):
            _positive(name, getattr(self, name))
        return self


class LinkAttachment(_Strict):
    link: str
    bandwidth_bytes_per_s_per_direction: float
    max_domain_devices: int | None = None

    @field_validator("bandwidth_bytes_per_s_per_direction")
    @classmethod
    def _bw(cls, v: float) -> float:
        return _positive("bandwidth_bytes_per_s_per_direction", v)  # type: ignore[return-value]

    @field_validator("max_domain_devices")
    @classmethod
    def _domain(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_DOMAIN_DEVICES:
            raise ValueError(f"max_domain_devices must be between 1 and {MAX_DOMAIN_DEVICES:,} devices, got {v}")
        return v


class Power(_Strict):
    tdp_w: float
    idle_w: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Power:
        _positive("tdp_w", self.tdp_w)
        if self.idle_w is not None and not (0 <= self.idle_w <= self.tdp_w):
            raise ValueError(f"idle_w must be between 0 and tdp_w, got {self.idle_w}")
        return self


class Price(_Strict):
    usd_per_hour: float
    date: str
    source: str

    @field_validator("usd_per_hour")
    @classmethod
    def _price(cls, v: float) -> float:
        return _positive("usd_per_hour", v)  # type: ignore[return-value]


class Device(_Strict):
    """One device (a GPU, or one GCD, or a CPU socket, an SSD, a PIM stack ...)."""

    schema_version: int = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    vendor: str
    kind: Literal[DEVICE_KINDS]  # type: ignore[valid-type]
    arch: str
    release_year: int | None = None
    unit_note: str = ""
    compute_ops: tuple[Literal[OP_CLASSES], ...] = ("all",)  # type: ignore[valid-type]
    notes: str = ""
    peak_flop_per_s: dict[str, float] = Field(default_factory=dict)
    memory: Memory
    on_chip: OnChip | None = None
    scale_up: LinkAttachment | None = None
    scale_out: LinkAttachment | None = None
    host_link: LinkAttachment | None = None
    power: Power | None = None
    price: Price | None = None
    efficiency: dict[str, float] | None = None
    sources: dict[str, str]

    @field_validator("release_year")
    @classmethod
    def _year(cls, v: int | None) -> int | None:
        if v is not None and not 1990 <= v <= 2100:
            raise ValueError(f"release_year must be between 1990 and 2100, got {v}")
        return v

    @field_validator("efficiency")
    @classmethod
    def _efficiency(cls, values: dict[str, float] | None) -> dict[str, float] | None:
        for key, value in (values or {}).items():
            _positive(f"efficiency.{key}", value)
        return values

    @field_validator("peak_flop_per_s")
    @classmethod
    def _peaks(cls, peaks: dict[str, float]) -> dict[str, float]:
        for dtype, value in peaks.items():
            if dtype not in COMPUTE_DTYPES:
                raise ValueError(f"unknown dtype {dtype!r} (allowed: {', '.join(COMPUTE_DTYPES)})")
            _positive(f"peak_flop_per_s.{dtype}", value)
        return peaks

    @model_validator(mode="after")
    def _sources_cover_sections(self) -> Device:
        for section in _NUMERIC_SECTIONS:
            present = getattr(self, section)
            if present and section not in self.sources:
                raise ValueError(f"section [{section}] has numbers but no entry in [sources]")
        return self

    # -- conveniences used by the roofline -------------------------------------------------------------
    def supports(self, dtype: str) -> bool:
        return dtype in self.peak_flop_per_s

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for `dtype`; raises a clear error when the device lacks it."""
        from model.errors import RidgeplanError

        try:
            return self.peak_flop_per_s[dtype]
        except KeyError:
            raise RidgeplanError(
                "dtype", f"{self.name} has no {dtype} support", sorted(self.peak_flop_per_s) or ["none"],
            ) from None

    @property
    def vector_flop_per_s(self) -> float:
        """Non-tensor (CUDA-core) rate used for element-wise work: the FP32 peak, else the best available."""
        peaks = self.peak_flop_per_s
        return peaks.get("fp32") or (max(peaks.values()) if peaks else 0.0)

    @property
    def ridge_flop_per_byte(self) -> dict[str, float]:
        return {d: p / self.memory.bandwidth_bytes_per_s for d, p in self.peak_flop_per_s.items()}

    def can_run(self, op_class: str) -> bool:
        return "all" in self.compute_ops or op_class in self.compute_ops


class Link(_Strict):
    schema_version: int = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    kind: Literal[LINK_KINDS]  # type: ignore[valid-type]
    bandwidth_bytes_per_s_per_direction: float
    latency_s: float
    bus_efficiency: float = 1.0
    notes: str = ""
    sources: dict[str, str]

    @model_validator(mode="after")
    def _check(self) -> Link:
        _positive("bandwidth_bytes_per_s_per_direction", self.bandwidth_bytes_per_s_per_direction)
        _positive("latency_s", self.latency_s)
        if not 0 < self.bus_efficiency <= 1:
            raise ValueError(f"bus_efficiency must be in (0, 1], got {self.bus_efficiency}")
        for key in ("bandwidth_bytes_per_s_per_direction", "latency_s"):
            if key not in self.sources:
                raise ValueError(f"{key} has no entry in [sources]")
        return self


class NodeType(_Strict):
    schema_version: int = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    device: str
    devices_per_node: int = Field(gt=0, le=MAX_DOMAIN_DEVICES)
    scale_up_topology: Literal[TOPOLOGIES]  # type: ignore[valid-type]
    scale_up_link: str | None = None
    scale_out_link: str | None = None
    nics_per_node: int | None = Field(default=None, gt=0, le=MAX_DOMAIN_DEVICES)
    host_device: str | None = None
    notes: str = ""
    sources: dict[str, str]
