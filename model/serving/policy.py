"""Engine policies: how a serving engine batches, budgets tokens and reserves memory.

Predictions depend on these; every estimate names the policy it used. Defaults follow each engine's
documented defaults (vLLM V1: max_num_seqs 256, max_num_batched_tokens 8192 with chunked prefill,
gpu_memory_utilization 0.9; TensorRT-LLM's trtllm-bench: max batch 2048, max_num_tokens 8192,
kv_cache_free_gpu_mem_fraction 0.90-0.95 of the memory left after weights; SGLang: mem_fraction_static ~0.88,
chunked_prefill_size 8192).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from model.errors import RidgeplanError, require_positive

MEMORY_MODES = ("fraction_of_total", "fraction_of_free")


@dataclass(frozen=True)
class EnginePolicy:
    name: str = "vllm"
    max_num_seqs: int = 256  # sequences scheduled together
    max_num_batched_tokens: int = 8192  # token budget per iteration (the prefill chunk with chunked prefill)
    chunked_prefill: bool = True  # prefill chunks ride along decodes (Sarathi); False: prefill-prioritising
    block_size: int = 16  # KV page size in tokens
    memory_mode: str = "fraction_of_total"  # vLLM: util x total; TRT-LLM: fraction x (free after weights)
    memory_fraction: float = 0.90
    step_overhead_s: float | None = None  # None: the device class default (efficiency.step_overhead_s)
    cuda_graph_bytes: float = 0.5e9  # memory outside the KV pool and weights (graphs, NCCL buffers)
    # "max_length": admit a request only if KV for its whole input + output is free (TensorRT-LLM's default
    # GUARANTEED_NO_EVICT); "current": admit while blocks for the current context are free, preempting when the
    # pool runs out (vLLM, SGLang), so capacity is set by the mean context I + O/2.
    admission: str = "current"

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
            require_positive(name, getattr(self, name), integer=True)
        if self.memory_mode not in MEMORY_MODES:
            raise RidgeplanError("memory_mode", f"unknown mode {self.memory_mode!r}", MEMORY_MODES)
        if self.admission not in ("max_length", "current"):
            raise RidgeplanError("admission", f"unknown admission policy {self.admission!r}", ["max_length", "current"])
        if not 0 < self.memory_fraction <= 1:
            raise RidgeplanError("memory_fraction", f"must be in (0, 1], got {self.memory_fraction}")

    def with_(self, **changes) -> EnginePolicy:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> str:
        mem = (f"{self.memory_fraction:.0%} of device memory" if self.memory_mode == "fraction_of_total"
               else f"{self.memory_fraction:.0%} of the memory left after weights")
        sched = "chunked prefill (prefill chunks ride along decodes)" if self.chunked_prefill else \
            "prefill-prioritising iterations (a new prompt pauses decodes)"
        return (f"engine {self.name}: up to {self.max_num_seqs} sequences, {self.max_num_batched_tokens} tokens per "
                f"iteration, {sched}, {self.block_size}-token KV blocks, KV pool from {mem}, "
                + ("admits a request only when KV for its full length is free" if self.admission == "max_length"
                   else "admits on current context and preempts when the KV pool runs out"))


ENGINES: dict[str, EnginePolicy] = {
    "vllm": EnginePolicy("vllm"),
    "sglang": EnginePolicy("sglang", max_num_seqs=1024, memory_fraction=0.88, block_size=1),
    "trtllm": EnginePolicy("trtllm", max_num_seqs=2048, block_size=32, memory_mode="fraction_of_free",
                           memory_fraction=0.90, admission="max_length"),
}


def engine_policy(name: str | EnginePolicy) -> EnginePolicy:
    if isinstance(name, EnginePolicy):
        return name
    if not isinstance(name, str):
        raise RidgeplanError("engine", f"must be an engine name, got {name!r}", sorted(ENGINES))
    try:
        return ENGINES[name]
    except KeyError:
        raise RidgeplanError("engine", f"unknown engine {name!r}", sorted(ENGINES)) from None
