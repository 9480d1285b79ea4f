"""Prefill and decode phase models.

- Theoretical-peak analyses: every kernel at 100% of peak FLOP/s and bandwidth, no kernel floors, no engine
  overhead (`peak_efficiency`, `at_peak`). Published back-of-envelope numbers use this convention.
- Idealized runtime of one request on a reference stack with no contention, R(S_p, S_o) = T_pf(S_p) +
  sum_{j<S_o} T_dec(S_p + j), and its cost-aware variant R x N_acc with N_acc = ceil(W_b / M) accelerators.
- Host (kernel-launch) bound steps: the CPU issues n_kernels launches of t_launch each while the GPU runs
  asynchronously behind it, so a step takes max(T_GPU, n_kernels t_launch) (t_host = max(0, n t_launch - T_GPU)
  on top of the GPU time). The step is launch-bound while n t_launch > T_GPU; the transition batch is the
  smallest batch whose GPU time covers the launches. Fusion lowers n_kernels and so the transition batch.
- Auxiliary KV predictor: a small model prefills the prompt and learned linear maps turn its KV cache into the
  base model's, so TTFT costs T_pf(aux, S) + the maps instead of T_pf(base, S); decode is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from model.errors import require_positive
from model.hardware.schema import Device
from model.roofline.efficiency import Efficiency
from model.roofline.efficiency_sets import efficiency_for
from model.serving.deployment import Deployment, StepResult
from model.placement.layout import Layout
from model.roofline.kernel import gemm_time


def peak_efficiency(device: Device) -> Efficiency:
    """An efficiency set with every kernel at peak: ceilings 1, no size fall-off, no floors or overheads."""
    base = efficiency_for(device, calibration=False)
    # no tile padding (any dtype); the hard max(compute, memory)
    ideal = {"gemm_tile_m": 1.0, "gemm_tile_m_8": 1.0, "gemm_tile_m_4": 1.0, "roofline_p": math.inf}
    zero = ("_half", "_floor_s", "_overhead_s", "_base_s", "dequant_penalty", "gemm_quant_s_8", "gemm_quant_s_4",
            "gemm_quant_bytes_8", "gemm_quant_bytes_4")
    values = {}
    for f in fields(Efficiency):
        if f.name == "source":
            continue
        if f.name in ideal:
            values[f.name] = ideal[f.name]
        elif f.name.endswith("_max") or f.name.startswith("gemm_max"):
            values[f.name] = 1.0
        elif f.name.endswith(zero):  # half-saturation sizes, floors, overheads, dequantisation penalty
            values[f.name] = 0.0
    return replace(base, **values, source="theoretical peak: 100% of peak FLOP/s and bandwidth, no floors")


def at_peak(d: Deployment) -> Deployment:
    """The same deployment evaluated at theoretical peak (see `peak_efficiency`)."""
    return replace(d, efficiency=peak_efficiency(d.device))


def model_weight_bytes(d: Deployment) -> float:
    """Bytes of the whole model's weights in the deployment's formats (no parallel split)."""
    whole = replace(d, layout=Layout())
    ops = whole.graph.evaluate({**whole.symbols(), "B": 1.0, "T": 1.0, "C": 0.0})
    return float(ops.counts @ ops.resident_bytes[:, 0])


@dataclass(frozen=True)
class IdealizedRuntime:
    prefill_s: float
    decode_s: float
    accelerators: int  # ceil(W_b / M)

    @property
    def runtime_s(self) -> float:
        return self.prefill_s + self.decode_s

    @property
    def accelerator_s(self) -> float:
        """Cost-aware runtime: R x the accelerators the weights need."""
        return self.runtime_s * self.accelerators


def idealized_runtime(d: Deployment, input_len: int, output_len: int) -> IdealizedRuntime:
    """One request alone (batch 1) on `d`: prefill plus every decode step, and the accelerators its weights need."""
    from model.serving.static import decode_contexts

    require_positive("input_len", input_len, integer=True)
    require_positive("output_len", output_len, integer=True)
    prefill = float(d.step(1, input_len, 0).time_s[0])
    ctx, weight = decode_contexts(input_len, output_len)
    decode = float(d.step(1, 1, ctx).time_s @ weight) if ctx.size else 0.0
    acc = math.ceil(model_weight_bytes(d) / d.device.memory.capacity_bytes)
    return IdealizedRuntime(prefill, decode, acc)


# ---------------------------------------------------------------------------------------------------------
# host (kernel-launch) bound

def kernels_per_step(d: Deployment) -> float:
    """Kernels one forward step launches on each GPU (fused kernels as the operator graph counts them)."""
    kernels = np.array([op.kernels for op in d.graph.ops], dtype=float)
    return float(d.counts.sum(axis=0) @ kernels)


@dataclass(frozen=True)
class HostBound:
    gpu_s: np.ndarray  # GPU time of the step (kernels, collectives, hand-offs; no engine overhead)
    host_s: np.ndarray  # CPU time to launch its kernels
    kernels: float

    @property
    def time_s(self) -> np.ndarray:
        return np.maximum(self.gpu_s, self.host_s)

    @property
    def launch_bound(self) -> np.ndarray:
        return self.host_s > self.gpu_s

    @property
    def exposed_host_s(self) -> np.ndarray:
        """t_host = max(0, n_kernels t_launch - T_GPU): what the host adds on top of the GPU time."""
        return np.maximum(self.host_s - self.gpu_s, 0.0)


def host_bound(step: StepResult, launch_s: float, kernel_scale: float = 1.0) -> HostBound:
    """Launch-bound analysis of a step: `launch_s` CPU seconds per kernel launch (framework dispatch included),
    `kernel_scale` x the fused kernel count (> 1 for unfused eager execution)."""
    require_positive("launch_s", launch_s)
    require_positive("kernel_scale", kernel_scale)
    n = kernels_per_step(step.deployment) * kernel_scale
    gpu = step.time_s - step.overhead_s
    return HostBound(gpu, np.full_like(gpu, n * launch_s), n)


def transition_batch(d: Deployment, new_tokens: int, context: int, launch_s: float, kernel_scale: float = 1.0,
                     batches=None) -> float:
    """Smallest batch on the grid (default 1, 2, 4, ... 1024) whose GPU time covers the kernel launches;
    inf when every batch on the grid is launch-bound."""
    grid = np.asarray(batches if batches is not None else 2.0 ** np.arange(11), dtype=float)
    hb = host_bound(d.step(grid, new_tokens, context), launch_s, kernel_scale)
    ok = ~hb.launch_bound
    return float(grid[np.argmax(ok)]) if ok.any() else float("inf")


# ---------------------------------------------------------------------------------------------------------
# auxiliary KV predictor

@dataclass(frozen=True)
class PredictorTTFT:
    base_s: float  # the base model prefilling the prompt itself
    auxiliary_s: float  # the auxiliary model's prefill
    predictor_s: float  # the linear maps from the auxiliary KV to the base KV
    predictor_flops: float

    @property
    def with_predictor_s(self) -> float:
        return self.auxiliary_s + self.predictor_s

    @property
    def speedup(self) -> float:
        return self.base_s / self.with_predictor_s


def kv_width(d: Deployment) -> int:
    """K plus V features per token per layer (all KV heads) of the deployment's first attention layer kind."""
    a = next(g.attention for g in d.arch.groups if g.attention.kind in ("softmax", "mla"))
    return a.kv_width


def predictor_ttft(base: Deployment, aux: Deployment, prompt_tokens: int) -> PredictorTTFT:
    """TTFT of `prompt_tokens` with the base model alone vs the auxiliary model plus one learned linear map per
    base layer from the auxiliary KV (kv_width(aux) features) to the base KV (kv_width(base) features), run on the
    base's device at its GEMM efficiency."""
    require_positive("prompt_tokens", prompt_tokens, integer=True)
    base_s = float(base.step(1, prompt_tokens, 0).time_s[0])
    aux_s = float(aux.step(1, prompt_tokens, 0).time_s[0])
    layers = base.arch.num_layers
    w_in, w_out = kv_width(aux), kv_width(base)
    # one (prompt x w_in) @ (w_in x w_out) GEMM per base layer
    kt = gemm_time(prompt_tokens, w_out, w_in, device=base.device, dtype=base.resolved.dense_dtype, eff=base.eff,
                   bytes_per_weight=base.symbols()["b_w"])
    flops = 2.0 * prompt_tokens * layers * w_in * w_out
    return PredictorTTFT(base_s, aux_s, layers * float(kt.time_s), flops)
