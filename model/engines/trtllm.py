"""TensorRT-LLM (PyTorch backend, 0.20-1.3, trtllm-serve / trtllm-bench): scheduling defaults.

In-flight batching (tensorrt_llm/_torch/pyexecutor/scheduler.py): the capacity scheduler decides which
requests hold KV memory: GUARANTEED_NO_EVICT (default) admits a request only when blocks for its whole
prompt plus max_tokens are free, so nothing is ever evicted; MAX_UTILIZATION admits on current needs and
pauses (evicts) requests when the pool runs out. The micro-batch scheduler then fills one iteration with
generation requests (one token each) and context requests FCFS up to max_batch_size requests and
max_num_tokens tokens; context and generation run in the same forward. Without chunked context a prompt
must fit the remaining token budget whole; with --enable_chunked_prefill it is cut to the budget.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TRTLLMDefaults:
    name: str = "trtllm"
    max_batch_size: int = 2048  # --max_batch_size 2048 (BuildConfig / LLM API default)
    max_num_tokens: int = 8192  # --max_num_tokens 8192
    capacity_scheduler_policy: str = "GUARANTEED_NO_EVICT"  # CapacitySchedulerPolicy default
    enable_chunked_prefill: bool = False  # --enable_chunked_prefill off by default
    inflight_batching: bool = True  # context and generation requests share an iteration
    tokens_per_block: int = 32  # KvCacheConfig tokens_per_block 32
    free_gpu_memory_fraction: float = 0.90  # KvCacheConfig.free_gpu_memory_fraction 0.9 of memory after weights
    memory_mode: str = "fraction_of_free"
    source: str = "TensorRT-LLM 0.20-1.3 PyTorch backend (tensorrt_llm/llmapi/llm_args.py, _torch/pyexecutor/scheduler.py)"

    @property
    def admission(self) -> str:
        """ridgeplan's admission name for the capacity policy."""
        return "max_length" if self.capacity_scheduler_policy == "GUARANTEED_NO_EVICT" else "current"


CAPACITY_POLICIES = ("GUARANTEED_NO_EVICT", "MAX_UTILIZATION")

TRTLLM = TRTLLMDefaults()
