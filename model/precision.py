"""Number formats for weights, activations and the KV cache, and how they map onto tensor-core paths.

One place defines how many bytes an element of each format takes (payload plus group-scale overhead) and
which tensor-core peak a GEMM uses. Weights, activations and KV are separate knobs (PITFALLS: one precision
setting for all three is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.errors import RidgeplanError

# Peak-table keys a device may carry (see docs/hardware_db.md).
COMPUTE_DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp16_acc16", "fp8", "int8", "fp6", "fp4", "int4")


@dataclass(frozen=True)
class NumberFormat:
    """A storage format: `bits` of payload per element plus one scale (and zero point) per `group_size`."""

    name: str
    bits: int
    group_size: int | None = None  # elements sharing one scale; None: per-tensor/per-channel (negligible)
    scale_bits: int = 0  # bits of scale (+ zero point) per group
    compute_dtype: str = "bf16"  # tensor-core path when the GEMM's activations use this format too
    description: str = ""

    @property
    def bits_per_element(self) -> float:
        overhead = self.scale_bits / self.group_size if self.group_size else 0.0
        return self.bits + overhead

    @property
    def bytes_per_element(self) -> float:
        return self.bits_per_element / 8.0


_FORMATS = {
    f.name: f
    for f in (
        NumberFormat("fp32", 32, compute_dtype="fp32", description="IEEE single"),
        NumberFormat("bf16", 16, compute_dtype="bf16", description="bfloat16"),
        NumberFormat("fp16", 16, compute_dtype="fp16", description="IEEE half"),
        NumberFormat("fp8", 8, compute_dtype="fp8", description="FP8 e4m3, per-tensor or per-channel scales"),
        NumberFormat("int8", 8, compute_dtype="int8", description="INT8, per-channel scales"),
        NumberFormat(
            "int4", 4, group_size=128, scale_bits=20, compute_dtype="int4",
            description="INT4 GPTQ/AWQ-style, group 128, fp16 scale + 4-bit zero point per group (4.16 bits)",
        ),
        NumberFormat(
            "mxfp4", 4, group_size=32, scale_bits=8, compute_dtype="fp4",
            description="OCP MXFP4 (e2m1), one e8m0 scale per 32 elements (4.25 bits)",
        ),
        NumberFormat(
            "nvfp4", 4, group_size=16, scale_bits=8, compute_dtype="fp4",
            description="NVIDIA NVFP4 (e2m1), one fp8 scale per 16 elements (4.5 bits)",
        ),
        NumberFormat(
            "int3", 3, group_size=128, scale_bits=20, compute_dtype="int4",
            description="3-bit GPTQ-style, group 128 (3.16 bits)",
        ),
        NumberFormat(
            "int2", 2, group_size=32, scale_bits=32, compute_dtype="int4",
            description="2-bit with fp16 scale and fp16 zero point per 32 elements (KIVI-style, 3 bits)",
        ),
    )
}
_FORMATS["fp4"] = _FORMATS["nvfp4"]


def number_format(name: str | NumberFormat, field_name: str = "format") -> NumberFormat:
    """Look up a format by name (or pass one through)."""
    if isinstance(name, NumberFormat):
        return name
    try:
        return _FORMATS[str(name).lower()]
    except KeyError:
        raise RidgeplanError(field_name, f"unknown number format {name!r}", sorted(_FORMATS)) from None


def format_names() -> list[str]:
    return sorted(_FORMATS)


WEIGHT_FORMATS = ("bf16", "fp16", "fp8", "int8", "int4", "int3", "int2", "mxfp4", "nvfp4", "fp4")
ACTIVATION_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
KV_FORMATS = ("bf16", "fp16", "fp8", "int8", "int4", "int2")


# Modules of a layer a quantized checkpoint may leave in its 16-bit dtype (its exclude / ignore list): the attention
# block's input projections, its output projection, the shared experts, the MLP of the dense layers
# (model.operators.graph.MODULE_OPERATORS names their operators)
QUANT_MODULES = ("attention", "attention_out", "shared_experts", "dense_mlp")


@dataclass(frozen=True)
class Precision:
    """Separate precisions for dense weights, MoE expert weights, embeddings, GEMM activations and KV.

    `activations` is the dtype GEMM inputs are cast to, which picks the tensor-core path: W8A8-FP8 runs at the
    FP8 peak, W4A16 runs at the BF16 peak plus a dequantization cost. `None` for `activations` means
    "the natural path for these weights on this device" (resolved by `resolve_for_device`).
    """

    weights: str = "bf16"
    activations: str | None = None
    kv: str = "bf16"
    experts: str | None = None  # None: same as weights
    embeddings: str = "bf16"  # engines keep embeddings and the LM head in 16 bits by default
    # modules (QUANT_MODULES) whose dense layers stay 16-bit while the other dense layers use `weights`
    unquantized: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_choice("weights", self.weights, WEIGHT_FORMATS)
        _check_choice("kv", self.kv, KV_FORMATS)
        _check_choice("embeddings", self.embeddings, ("bf16", "fp16", "fp8", "int8", "fp32"))
        if self.experts is not None:
            _check_choice("experts", self.experts, WEIGHT_FORMATS)
        if self.activations is not None:
            _check_choice("activations", self.activations, ACTIVATION_DTYPES)
        if not isinstance(self.unquantized, tuple):
            raise RidgeplanError("unquantized", f"must be a tuple of module names, got {self.unquantized!r}",
                                 QUANT_MODULES)
        for module in self.unquantized:
            if module not in QUANT_MODULES:
                raise RidgeplanError("unquantized", f"unknown module {module!r}", QUANT_MODULES)

    @property
    def expert_weights(self) -> str:
        return self.experts or self.weights

    def label(self) -> str:
        act = self.activations or "auto"
        exp = f", experts {self.experts}" if self.experts else ""
        unq = f", 16-bit {'+'.join(self.unquantized)}" if self.unquantized else ""
        return f"W {self.weights}{exp}{unq} / A {act} / KV {self.kv}"


def _check_choice(field_name: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise RidgeplanError(field_name, f"unknown precision {value!r}", allowed)


def natural_activation_dtype(weights: str, supported: set[str]) -> tuple[str, str]:
    """The GEMM activation dtype an engine would use for `weights` on a device with `supported` peaks.

    Returns (dtype, assumption text). FP8/FP4 weights use their own tensor cores where the device has them,
    else run weight-only with 16-bit activations; integer weights default to weight-only (W8A16, W4A16),
    as in vLLM's GPTQ/AWQ/Marlin kernels.
    """
    if not supported & {"bf16", "fp16"}:
        # CPUs without 16-bit arithmetic: weights are upcast and every GEMM runs in fp32
        return "fp32", f"{weights.upper()} weights upcast to fp32: the device has no 16-bit arithmetic"
    sixteen = "bf16" if "bf16" in supported else "fp16"
    w = weights.lower()
    if w in ("bf16", "fp16"):
        return (w if w in supported else sixteen), f"W16A16 on the {sixteen if w not in supported else w} path"
    if w == "fp8":
        if "fp8" in supported:
            return "fp8", "W8A8-FP8 (dynamic per-token activation scales) on the FP8 tensor-core path"
        return sixteen, f"FP8 weights run weight-only (W8A16, Marlin-style) on the {sixteen} path: no FP8 tensor cores"
    if w in ("fp4", "nvfp4", "mxfp4"):
        if "fp4" in supported:
            return "fp4", "W4A4-FP4 on the FP4 tensor-core path"
        return sixteen, f"FP4 weights run weight-only (W4A16) on the {sixteen} path: no FP4 tensor cores"
    # int8 / int4 / int3 / int2
    return sixteen, f"{w.upper()} weights run weight-only (W{number_format(w).bits}A16) on the {sixteen} path"


def compute_dtype_for(weights: str, activations: str) -> str:
    """The tensor-core peak key a GEMM with these weight and activation formats runs on."""
    a = activations.lower()
    w = weights.lower()
    wbits = number_format(w).bits
    if a in ("bf16", "fp16", "fp32"):
        return a
    if a == "fp8":
        return "fp8"
    if a == "int8":
        return "int8"
    if a in ("int4", "fp4"):
        if wbits > 4:
            raise RidgeplanError("activations", f"{a} activations need weights of 4 bits or fewer, got {w}")
        return a
    raise RidgeplanError("activations", f"unsupported activation dtype {activations!r}", ACTIVATION_DTYPES)


def is_weight_only(weights: str, activations: str) -> bool:
    """True when weights are stored narrower than the GEMM runs, so each tile is dequantized on the fly."""
    return number_format(weights).bits < number_format(activations).bits
