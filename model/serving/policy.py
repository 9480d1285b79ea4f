"""Engine policies: how a serving engine batches, budgets tokens and reserves memory.

Predictions depend on these; every estimate names the policy it used. The defaults come from the engine
modules (model.engines.vllm / sglang / trtllm), the single source of truth with each default's flag and version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from model.engines import SGLANG, TRTLLM, VLLM
from model.errors import RidgeplanError, require_positive

MEMORY_MODES = ("fraction_of_total", "fraction_of_free")


@dataclass(frozen=True)
class EnginePolicy:
    name: str = VLLM.name
    max_num_seqs: int = VLLM.max_num_seqs  # sequences scheduled together
    max_num_batched_tokens: int = VLLM.max_num_batched_tokens  # token budget per iteration (the prefill chunk)
    chunked_prefill: bool = VLLM.chunked_prefill  # prefill rides along decodes (Sarathi); False: prefill-prioritising
    block_size: int = VLLM.block_size  # KV page size in tokens
    memory_mode: str = VLLM.memory_mode  # vLLM: util x total; TRT-LLM: fraction x (free after weights)
    memory_fraction: float = VLLM.gpu_memory_utilization
    step_overhead_s: float | None = None  # None: the device class default (efficiency.step_overhead_s)
    cuda_graph_bytes: float = 0.5e9  # memory outside the KV pool and weights (graphs, NCCL buffers)
    # "max_length": admit a request only if KV for its whole input + output is free (TensorRT-LLM's default
    # GUARANTEED_NO_EVICT); "current": admit while blocks for the current context are free, preempting when the
    # pool runs out (vLLM, SGLang), so capacity is set by the mean context I + O/2.
    admission: str = VLLM.admission

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


# The steady-state model's `chunked_prefill` means "prefill work shares iterations with decodes": true for
# vLLM, for TensorRT-LLM's in-flight batching (with or without chunked context), and kept for SGLang as the
# steady state has always assumed; the simulator follows SGLang's prefill-first batches (model.engines.sglang).
ENGINES: dict[str, EnginePolicy] = {
    "vllm": EnginePolicy(),
    "sglang": EnginePolicy(SGLANG.name, max_num_seqs=SGLANG.max_running_requests,
                           max_num_batched_tokens=SGLANG.chunked_prefill_size, memory_mode=SGLANG.memory_mode,
                           memory_fraction=SGLANG.mem_fraction_static, block_size=SGLANG.page_size,
                           admission=SGLANG.admission),
    "trtllm": EnginePolicy(TRTLLM.name, max_num_seqs=TRTLLM.max_batch_size,
                           max_num_batched_tokens=TRTLLM.max_num_tokens, chunked_prefill=TRTLLM.inflight_batching,
                           block_size=TRTLLM.tokens_per_block, memory_mode=TRTLLM.memory_mode,
                           memory_fraction=TRTLLM.free_gpu_memory_fraction, admission=TRTLLM.admission),
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
