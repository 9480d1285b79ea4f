"""LoRA adapters, co-serving and many-model hosting (CATALOG section 24)."""

from __future__ import annotations

import pytest

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.errors import RidgeplanError
from model.techniques.multi_model import (
    adapters_on_gpu, blended_active_params, coserving, fetch_s, hosting_footprint, lora_adapter_bytes,
    lora_flops_per_token, lora_shapes, switch_s,
)
from model.serving.batching import iteration_cost


def test_lora_bytes_seed_a41():
    # rank 16 on q, k, v, o of Llama-2-7B (all 4096 x 4096), 32 layers, fp16:
    # 16 x (4096 + 4096) x 2 B x 4 x 32 = 33,554,432 B = 33.5 MB; 2,000 of them = 67.1 GB
    arch = load_architecture("llama-2-7b")
    assert lora_adapter_bytes(arch, 16) == 33_554_432
    assert 2000 * lora_adapter_bytes(arch, 16) == pytest.approx(67.1e9, rel=1e-3)
    assert lora_flops_per_token(arch, 16) == 2 * 16 * 8192 * 4 * 32


def test_lora_shapes_gqa_and_mlp():
    # Llama-3.1-8B: k and v project 4096 -> 8 x 128 = 1024; MLP 4096 <-> 14336 (gate, up, down)
    arch = load_architecture("llama-3.1-8b")
    shapes = dict(zip(("q", "k", "v", "o", "gate", "up", "down"),
                      lora_shapes(arch, ("q", "k", "v", "o", "gate", "up", "down"))))
    assert shapes["k"] == (4096, 1024, 32) and shapes["o"] == (4096, 4096, 32)
    assert shapes["down"] == (14336, 4096, 32)
    with pytest.raises(RidgeplanError):
        lora_shapes(arch, ("qkv",))


def test_adapter_fit_and_fetch():
    assert adapters_on_gpu(1e9, 33_554_432) == 29
    assert adapters_on_gpu(-1.0, 1e6) == 0
    assert fetch_s(33_554_432, 25.6e9) == pytest.approx(1.31072e-3)


def test_coserving_spare_tokens():
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    c = coserving(d, 64, 2048, 0.05)
    assert c.iteration_s <= 0.05
    over = float(iteration_cost(d, 64, 2048, c.spare_tokens * 1.05, 1.0, 0.0).time_s[0])
    assert over > 0.05  # 5% more tokens break the SLO
    assert c.finetune_tokens_per_s == pytest.approx(c.spare_tokens / 3 / c.iteration_s)
    tight = coserving(d, 64, 2048, 1e-4)
    assert tight.spare_tokens == 0


def test_hosting():
    # 150 x 13.5 GB = 2.02 TB over 640 GB of HBM per node -> 4 nodes
    assert hosting_footprint([13.5e9] * 150, 640e9) == 4
    assert float(switch_s(13.5e9, 800e9)) == pytest.approx(13.5e9 / 800e9)
    assert blended_active_params([0.6, 0.4], [7e9, 70e9]) == pytest.approx(0.6 * 7e9 + 0.4 * 70e9)
    assert blended_active_params([3, 2], [7e9, 70e9]) == pytest.approx(0.6 * 7e9 + 0.4 * 70e9)
