"""KV-cache allocators and attention-kernel layouts (vAttention, PagedAttention).

Allocator overhead f_alloc, i.e. how many token slots a sequence of S tokens occupies:
- static reservation:       every sequence holds S_max slots (max_model_len), whatever its length;
- paged blocks:             S rounded up to the block size (at most block - 1 slots wasted);
- demand-paged virtual mem: each layer's K and V buffers grow a physical page at a time (vAttention), so S is
                            rounded up to the tokens one page holds: page_bytes / (KV bytes of one token of one
                            layer's K or V on this GPU).
The capacity then follows model.serving.batching.kv_capacity with that rounding.

Attention kernels differ by KV layout: a kernel over a (virtually) contiguous cache runs the stock FlashAttention
kernel, a paged kernel walks a block table. `KERNEL_EFFICIENCY` holds the measured efficiency of each layout
relative to the contiguous kernel (data, with sources), and `attention_layout_step_s` prices a step with the
per-sequence attention operators slowed by it.
"""

from __future__ import annotations

import math

import numpy as np

from model.errors import RidgeplanError
from model.operators.memory import kv_bytes_per_token
from model.serving.batching import KVCapacity, kv_capacity
from model.serving.deployment import Deployment
from model.serving.policy import EnginePolicy

ALLOCATORS = ("static", "paged", "demand")

# attention-kernel efficiency relative to FlashAttention over a contiguous KV cache (1.0)
KERNEL_EFFICIENCY: dict[str, tuple[float, str]] = {
    "contiguous": (1.0, "reference: the stock FlashAttention kernel over a contiguous or virtually contiguous cache"),
    "paged": (1 / 1.23, "Kwon et al., vLLM/PagedAttention (SOSP 2023), kernel microbenchmark: the paged kernel has "
                        "20-26% higher attention latency than FasterTransformer's contiguous kernel (midpoint 23%); "
                        "vAttention (Prabhu et al., 2024) measures up to 2.85x at 16K context for vLLM's kernel"),
}


def kv_bytes_per_token_per_buffer(d: Deployment) -> float:
    """Bytes one token adds to one layer's K (or V) buffer on one GPU: KV per token / (2 x layers holding KV)."""
    layers = sum(g.count for g in d.arch.groups if g.attention.kind in ("softmax", "mla"))
    if layers == 0:
        raise RidgeplanError("model", f"{d.arch.name} keeps no per-token KV")
    per_token = kv_bytes_per_token(d.arch, b_kv=d.symbols()["b_kv"], tp=d.layout.tp)
    buffers = 2 if all(g.attention.kind == "softmax" for g in d.arch.groups if g.attention.kind != "linear") else 1
    return per_token / (buffers * layers)


def tokens_per_page(d: Deployment, page_bytes: float) -> int:
    """Tokens one physical page of a layer's K or V buffer holds (at least 1)."""
    return max(1, math.floor(page_bytes / kv_bytes_per_token_per_buffer(d)))


def allocation_capacity(d: Deployment, policy: EnginePolicy, context_tokens, *, allocator: str,
                        max_context: int | None = None, block_tokens: int = 16,
                        page_bytes: float = 2 * 1024**2) -> KVCapacity:
    """Sequences of `context_tokens` that fit under an allocator (static reservation of `max_context`, paged
    blocks of `block_tokens`, or demand paging with `page_bytes` pages)."""
    if allocator not in ALLOCATORS:
        raise RidgeplanError("allocator", f"unknown allocator {allocator!r}", ALLOCATORS)
    ctx = np.atleast_1d(np.asarray(context_tokens, dtype=float))
    if allocator == "static":
        if max_context is None:
            raise RidgeplanError("max_context", "static reservation needs the maximum context it reserves")
        if np.any(ctx > max_context):
            raise RidgeplanError("max_context", f"is below the context asked for ({ctx.max():.0f})")
        return kv_capacity(d, policy.with_(block_size=1), np.full_like(ctx, float(max_context)))
    block = block_tokens if allocator == "paged" else tokens_per_page(d, page_bytes)
    return kv_capacity(d, policy.with_(block_size=int(block)), ctx)


def attention_layout_step_s(d: Deployment, batch, new_tokens, context, layout: str) -> np.ndarray:
    """Step time with the per-sequence attention operators at the layout's kernel efficiency."""
    if layout not in KERNEL_EFFICIENCY:
        raise RidgeplanError("layout", f"unknown attention kernel layout {layout!r}", sorted(KERNEL_EFFICIENCY))
    factor = KERNEL_EFFICIENCY[layout][0]
    s = d.step(batch, new_tokens, context)
    per_seq = np.array([op.kind == "attention" for op in d.graph.ops])
    exposed = s.times.time_s - s.times.comm_overlap * s.times.network_s
    extra = s.stage_counts.sum(axis=0)[per_seq] @ exposed[per_seq] * (1 / factor - 1)
    return s.time_s + extra
