"""vLLM (V1 engine, v0.8 and later): scheduling defaults and how its scheduler works.

Scheduler (vllm/v1/core/sched/scheduler.py, `Scheduler.schedule`): one token budget per step
(max_num_batched_tokens). Running requests are served first: every decoding request takes 1 token (k + 1 with
speculation); then waiting requests are admitted FCFS while the budget, max_num_seqs and free KV blocks allow,
a long prompt taking the remaining budget as a chunk (chunked prefill is always on in V1). When a decode
cannot get a KV block the most recently admitted running request is preempted and later recomputed
(PreemptionMode.RECOMPUTE, the only mode in V1). Automatic prefix caching is on by default in V1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VLLMDefaults:
    name: str = "vllm"
    # --max-num-seqs 256 and --max-num-batched-tokens 8192: ridgeplan's long-standing policy. vLLM itself picks
    # per GPU in EngineArgs.get_batch_defaults (vllm/engine/arg_utils.py, v0.9+): see `server_batch_defaults`.
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunked_prefill: bool = True  # --enable-chunked-prefill: always on in the V1 engine
    block_size: int = 16  # --block-size 16 (CacheConfig.block_size on CUDA)
    gpu_memory_utilization: float = 0.90  # --gpu-memory-utilization 0.9 (CacheConfig)
    memory_mode: str = "fraction_of_total"  # the KV pool is util x total minus weights and activations
    scheduling_policy: str = "fcfs"  # --scheduling-policy fcfs (SchedulerConfig.policy)
    preemption: str = "recompute"  # V1: PreemptionMode.RECOMPUTE; the last admitted request is preempted first
    admission: str = "current"  # blocks for the tokens being scheduled now, not the whole request
    enable_prefix_caching: bool = True  # --enable-prefix-caching: on by default in V1
    source: str = "vLLM v0.8-v0.19 V1 engine (vllm/config/scheduler.py, vllm/engine/arg_utils.py)"


VLLM = VLLMDefaults()


GIB = 1024**3


def server_batch_defaults(device_memory_bytes: float, device_name: str) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) that `vllm serve` picks when neither is given
    (EngineArgs.get_batch_defaults, OPENAI_API_SERVER context): 8192 and 1024 on GPUs with at least 70 GiB
    that are not A100s (H100, H200, B200, MI300X), else 2048 and 256."""
    if device_memory_bytes >= 70 * GIB and "a100" not in device_name.lower():
        return 8192, 1024
    return 2048, 256
