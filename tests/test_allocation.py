"""KV allocators and attention-kernel layouts (model.techniques.kv_allocation)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.errors import RidgeplanError
from model.techniques.kv_allocation import (
    KERNEL_EFFICIENCY, allocation_capacity, attention_layout_step_s, kv_bytes_per_token_per_buffer, tokens_per_page,
)
from model.serving.policy import ENGINES

VLLM = ENGINES["vllm"]


def test_page_tokens_llama3_8b():
    # one layer's K buffer: 8 KV heads x 128 x 2 B = 2,048 B per token; a 2 MiB page holds 1,024 tokens
    d = deployment("llama-3-8b", "a100-sxm-80gb")
    assert kv_bytes_per_token_per_buffer(d) == pytest.approx(2048)
    assert tokens_per_page(d, 2 * 1024**2) == 1024
    assert tokens_per_page(d, 64 * 1024) == 32


def test_allocators_rank():
    # Llama-3-8B: 32 layers x 2 x 8 x 128 x 2 B = 131,072 B per token. A 2,500-token sequence holds 32,768 slots
    # under static reservation, 2,512 with 16-token blocks and 3,072 with 2 MiB pages (three 1,024-token pages)
    d = deployment("llama-3-8b", "a100-sxm-80gb")
    caps = {"static": allocation_capacity(d, VLLM, 2500, allocator="static", max_context=32_768),
            "paged": allocation_capacity(d, VLLM, 2500, allocator="paged"),
            "demand_2mb": allocation_capacity(d, VLLM, 2500, allocator="demand")}
    slots = {"static": 32_768, "paged": 2512, "demand_2mb": 3072}
    for kind, cap in caps.items():
        assert cap.kv_bytes_per_sequence[0] == pytest.approx(131_072 * slots[kind])
    n = {k: float(c.max_sequences[0]) for k, c in caps.items()}
    assert n["static"] < n["demand_2mb"] < n["paged"]
    with pytest.raises(RidgeplanError):
        allocation_capacity(d, VLLM, 2500, allocator="static")


def test_paged_kernel_is_slower():
    d = deployment("llama-3-8b", "a100-sxm-80gb")
    assert KERNEL_EFFICIENCY["paged"][0] < KERNEL_EFFICIENCY["contiguous"][0] == 1.0
    contiguous = float(attention_layout_step_s(d, 16, 1, 16_383, "contiguous")[0])
    assert contiguous == pytest.approx(float(d.step(16, 1, 16_383).time_s[0]))
    assert float(attention_layout_step_s(d, 16, 1, 16_383, "paged")[0]) > contiguous
