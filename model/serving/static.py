"""A static batch: B prompts of I tokens prefilled together, then O output tokens decoded in lock-step.

This is the simplest serving question ("what do B requests of I in / O out cost on this GPU?") and the base of
the continuous-batching model. A configuration that does not fit in memory gets no latency at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model.errors import require_positive
from model.serving.breakdown import bound_table, op_table
from model.serving.deployment import Deployment, StepResult

MAX_DECODE_SAMPLES = 256  # decode steps evaluated exactly; longer outputs are sampled and integrated


@dataclass(frozen=True)
class MemoryReport:
    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    usable_bytes: float
    capacity_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.usable_bytes

    @property
    def headroom_bytes(self) -> float:
        """Usable bytes left (negative: the shortfall)."""
        return self.usable_bytes - self.total_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "fits": self.fits, "weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
            "activation_bytes": self.activation_bytes, "total_bytes": self.total_bytes,
            "usable_bytes": self.usable_bytes, "capacity_bytes": self.capacity_bytes,
            "headroom_bytes": self.headroom_bytes,
        }

    def summary(self) -> str:
        gb = 1e9
        state = "fits" if self.fits else "DOES NOT FIT"
        delta = (f"{self.headroom_bytes / gb:.2f} GB to spare" if self.fits
                 else f"short by {-self.headroom_bytes / gb:.2f} GB")
        return (f"{state}: {self.total_bytes / gb:.2f} GB of {self.usable_bytes / gb:.2f} GB usable per GPU "
                f"({delta}; weights {self.weights_bytes / gb:.2f}, KV {self.kv_cache_bytes / gb:.2f}, "
                f"activations {self.activation_bytes / gb:.2f})")


@dataclass(frozen=True)
class StaticEstimate:
    deployment: Deployment
    batch: int
    input_len: int
    output_len: int
    memory: MemoryReport
    prefill: StepResult | None = None
    decode: StepResult | None = None  # at the mean decode context
    ttft_s: float | None = None
    tpot_s: float | None = None
    tpot_first_s: float | None = None
    tpot_last_s: float | None = None
    decode_total_s: float | None = None
    assumptions: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return self.memory.fits

    @property
    def e2e_latency_s(self) -> float | None:
        if self.ttft_s is None:
            return None
        return self.ttft_s + (self.decode_total_s or 0.0)

    @property
    def throughput_tokens_per_s(self) -> float | None:
        """Output tokens per second of the whole replica over the batch's lifetime."""
        if self.e2e_latency_s is None:
            return None
        return self.batch * self.output_len / self.e2e_latency_s

    @property
    def throughput_per_gpu_tokens_per_s(self) -> float | None:
        t = self.throughput_tokens_per_s
        return None if t is None else t / self.deployment.layout.gpus_per_replica

    @property
    def tokens_per_s_per_user(self) -> float | None:
        return None if not self.tpot_s else 1.0 / self.tpot_s

    def to_dict(self) -> dict[str, Any]:
        d = self.deployment
        out: dict[str, Any] = {
            "model": d.arch.name, "gpu": d.device.id, "layout": d.layout.label(), "gpus": d.layout.gpus_per_replica,
            "precision": {"weights": d.precision.weights, "activations": d.resolved.activations, "kv": d.precision.kv},
            "batch": self.batch, "input_len_tokens": self.input_len, "output_len_tokens": self.output_len,
            "memory": self.memory.to_dict(), "fits": self.fits,
        }
        if self.fits:
            out.update({
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "tpot_first_s": self.tpot_first_s,
                "tpot_last_s": self.tpot_last_s, "e2e_latency_s": self.e2e_latency_s,
                "throughput_tokens_per_s": self.throughput_tokens_per_s,
                "throughput_per_gpu_tokens_per_s": self.throughput_per_gpu_tokens_per_s,
                "tokens_per_s_per_user": self.tokens_per_s_per_user,
                "prefill": {"bounds_s": bound_table(self.prefill), "operators": _records(op_table(self.prefill))},
            })
            if self.decode is not None:
                out["decode"] = {"bounds_s": bound_table(self.decode), "operators": _records(op_table(self.decode))}
        out["assumptions"] = list(self.assumptions)
        return out


def _records(df) -> list[dict[str, Any]]:
    # an operator with no memory bytes has no FLOP/byte intensity: null in JSON, not inf
    return [{k: ((float(v) if np.isfinite(v) else None) if isinstance(v, (np.floating, float)) else v)
             for k, v in row.items()}
            for row in df.drop(columns=["description"]).to_dict(orient="records")]


def memory_report(step: StepResult, scenario: int = 0) -> MemoryReport:
    d = step.deployment
    m = step.memory
    return MemoryReport(float(m.weights_bytes[scenario]), float(m.kv_cache_bytes[scenario]),
                        float(m.activation_bytes[scenario]), d.usable_bytes, d.capacity_bytes)


def decode_contexts(input_len: int, output_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Contexts of the decode steps (the first output token comes from prefill) and their weights.

    Step j (1..O-1) decodes with I + j - 1 tokens cached. Up to MAX_DECODE_SAMPLES steps are evaluated exactly;
    beyond that, evenly spaced samples carry weights that sum to O - 1 (step time is smooth in context).
    """
    steps = output_len - 1
    if steps <= 0:
        return np.zeros(0), np.zeros(0)
    if steps <= MAX_DECODE_SAMPLES:
        return input_len + np.arange(steps, dtype=float), np.ones(steps)
    ctx = np.linspace(input_len, input_len + steps - 1, MAX_DECODE_SAMPLES)
    return ctx, np.full(MAX_DECODE_SAMPLES, steps / MAX_DECODE_SAMPLES)


def static_batch(deployment: Deployment, batch: int, input_len: int, output_len: int) -> StaticEstimate:
    """Prefill B prompts of `input_len`, decode `output_len` tokens each, on one replica."""
    require_positive("batch", batch, integer=True)
    require_positive("input_len", input_len, integer=True)
    require_positive("output_len", output_len, integer=True)
    d = deployment
    prefill = d.step(batch, input_len, 0)
    # memory with every sequence at its final length (the KV a static batch must hold)
    final = d.step(batch, 1, input_len + output_len - 1)
    mem = memory_report(final)
    act = max(float(prefill.memory.activation_bytes[0]), mem.activation_bytes)
    mem = MemoryReport(mem.weights_bytes, mem.kv_cache_bytes, act, mem.usable_bytes, mem.capacity_bytes)
    assumptions = tuple(d.assumptions()) + (
        "static batch: all prompts prefilled in one step, then decoded together (no continuous batching)",
        "the first output token comes from the prefill step; TPOT averages the remaining decode steps",
    )
    if not mem.fits:
        return StaticEstimate(d, batch, input_len, output_len, mem, assumptions=assumptions)
    ttft = float(prefill.time_s[0])
    ctx, weight = decode_contexts(input_len, output_len)
    if ctx.size:
        steps = d.step(batch, 1, ctx)
        t = steps.time_s
        total = float(t @ weight)
        mean_ctx = float(ctx @ weight / weight.sum())
        decode = d.step(batch, 1, round(mean_ctx))
        return StaticEstimate(d, batch, input_len, output_len, mem, prefill, decode, ttft,
                              total / weight.sum(), float(t[0]), float(t[-1]), total, assumptions)
    return StaticEstimate(d, batch, input_len, output_len, mem, prefill, None, ttft, None, None, None, 0.0, assumptions)
