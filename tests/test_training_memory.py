"""Training memory per GPU: each term against a hand derivation, the catalogue's memory checks, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_training_formulas import gpt

from model.architecture import load_architecture
from model.errors import RidgeplanError
from model.operators.compiled import compile_graph
from model.training import estimate_training, optimizer_spec
from model.training.memory import (
    activation_bytes_per_layer, model_state_bytes, model_state_bytes_per_param, optimizer_state_elements,
)

ADAMW = optimizer_spec("adamw")


@pytest.fixture(scope="module")
def gpt13b():
    return gpt("gpt-13b", 40, 5120, 40)


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_korthikanti_activation_formula(gpt13b, tp):
    """Korthikanti et al. 2022 eq. 2: a GPT layer with dropout and materialised attention stores
    s·b·h·(10 + 24/t + 5·a·s/(h·t)) bytes under TP without sequence parallelism, s·b·h·(34/t + 5as/(ht)) with
    it; selective recompute drops the 5as/h term; full recompute keeps the 2·s·b·h input (/t with SP).
    Hand for s = 2048, b = 2, h = 5120, a = 40, t = 2: sbh = 2.097e7; 10 + 12 + 5·40·2048/(5120·2) = 62."""
    g = gpt13b.groups[0]
    s, b, h, a = 2048, 2, 5120, 40
    sbh = s * b * h

    def layer(seq_par, rc, kernel="materialized"):
        return activation_bytes_per_layer(g, gpt13b, b, s, tp, 1, seq_par, rc, attention_kernel=kernel, dropout=True)

    stored, working = layer(False, 0)
    assert stored == pytest.approx(sbh * (10 + 24 / tp + 5 * a * s / (h * tp)))
    assert working == 0
    assert layer(True, 0)[0] == pytest.approx(sbh * (34 / tp + 5 * a * s / (h * tp)))
    assert layer(False, 1)[0] == pytest.approx(sbh * (10 + 24 / tp))
    assert layer(True, 1)[0] == pytest.approx(sbh * 34 / tp)
    full, work = layer(False, 2)
    assert full == pytest.approx(2 * sbh)
    assert work == pytest.approx(sbh * (10 + 24 / tp))  # one layer rematerialised (selective-sized) at a time
    assert layer(True, 2)[0] == pytest.approx(2 * sbh / tp)
    assert layer(False, 0, "flash")[0] == pytest.approx(sbh * (10 + 24 / tp))  # flash stores no s x s scores
    if tp == 2:
        assert layer(False, 0)[0] / sbh == pytest.approx(62)


def test_activations_without_dropout_and_for_gqa():
    """No dropout (modern pre-training) drops the 2·s·b·h of masks and the MLP mask: Llama-3.1-8B (GQA 32/8,
    head 128, gated MLP 14336), per token and layer, TP = 1, flash: norms 2·d + GEMM inputs 2·d outside the TP
    region, Q + K + V + O = 4096 + 1024 + 1024 + 4096 and 3 x 14336 inside, all at 2 B:
    (4·4096 + 10240 + 43008) x 2 = 139,264 bytes."""
    arch = load_architecture("llama-3.1-8b")
    stored, _ = activation_bytes_per_layer(arch.groups[0], arch, 1, 1, 1, 1, False, 0)
    assert stored == pytest.approx((4 * 4096 + 10240 + 43008) * 2)
    split, _ = activation_bytes_per_layer(arch.groups[0], arch, 1, 8192, 1, 4, False, 0)  # SP=4 splits tokens
    assert split == pytest.approx(stored * 8192 / 4)


def test_model_states_per_parameter():
    """Catalogue 13/18: AdamW mixed precision keeps 2 (weights) + 2 (grads) + 12 (fp32 master, m, v) = 16 B per
    parameter; ZeRO-1 over 8 ranks 2 + 2 + 12/8 = 5.5; ZeRO-2 2 + 2/8 + 12/8 = 3.75; ZeRO-3 16/8 = 2.
    8-bit AdamW: 2 + 2 + (4 + 1 + 1) = 10."""
    assert model_state_bytes_per_param(ADAMW) == 16
    assert model_state_bytes_per_param(ADAMW, 1, 8) == 5.5
    assert model_state_bytes_per_param(ADAMW, 2, 8) == 3.75
    assert model_state_bytes_per_param(ADAMW, 3, 8) == 2
    assert model_state_bytes_per_param(optimizer_spec("adamw8bit")) == 10
    assert model_state_bytes_per_param(optimizer_spec("adamw", master_weights=False)) == 12


def test_seed_a08_zero_infinity_memory():
    """SEED-A08 (ZeRO-Infinity): 1T x 16 B/param = 16 TB of model states; ZeRO-3 over 800 GPUs leaves 20 GB
    each (fits a 32 GB V100, not a 16 GB one); 16 TB / 32 GB = 500 GPUs is the pure-state lower bound."""
    w, g, o, buf, cpu, nvme = model_state_bytes(1e12, 0.0, 800.0, 800.0, 3, ADAMW, state_elements=2e12,
                                                 largest_layer_params=0.0)
    assert w + g + o == pytest.approx(20e9)
    assert 1e12 * model_state_bytes_per_param(ADAMW) == 16e12
    assert int(np.ceil(16e12 / 32e9)) == 500


def test_seed_a09_zero_offload_memory():
    """SEED-A09 (ZeRO-Offload, one 32 GB V100): at 16 B/param the GPU holds at most 32e9/16 = 2.0B parameters
    (1.4B x 16 = 22.4 GB fits); offloading gradients and optimizer states leaves 2 B/param (the fp16 weights):
    at most 16B parameters, 13B x 2 = 26 GB, with 14 B/param (182 GB) in CPU memory."""
    assert 32e9 / model_state_bytes_per_param(ADAMW) == 2.0e9
    w, g, o, *_ = model_state_bytes(1.4e9, 0.0, 1.0, 1.0, 0, ADAMW, state_elements=2.8e9, largest_layer_params=0.0)
    assert w + g + o == pytest.approx(22.4e9)
    w, g, o, buf, cpu, nvme = model_state_bytes(13e9, 0.0, 1.0, 1.0, 0, ADAMW, state_elements=26e9,
                                                 largest_layer_params=0.0, offload_optimizer=1)
    assert (w, g, o) == (pytest.approx(26e9), 0.0, 0.0)
    assert cpu == pytest.approx(13e9 * 14)
    assert nvme == 0
    *_, cpu2, nvme2 = model_state_bytes(13e9, 0.0, 1.0, 1.0, 0, ADAMW, state_elements=26e9, largest_layer_params=0.0,
                                        offload_optimizer=2)
    assert nvme2 == pytest.approx(13e9 * 12) and cpu2 == pytest.approx(13e9 * 2)  # states on NVMe, grads staged


def test_zero3_keeps_two_layers_gathered():
    """ZeRO-3 holds 1/N of the weights plus the layer computing and the one prefetched: 2 x layer params x 2 B."""
    w, g, o, buf, *_ = model_state_bytes(8e9, 0.0, 8.0, 8.0, 3, ADAMW, state_elements=16e9,
                                         largest_layer_params=2e8)
    assert w == pytest.approx(2e9) and buf == pytest.approx(2 * 2e8 * 2)


def test_low_rank_state_elements():
    """GaLore with rank r keeps m·r + 2·r·n elements for an m x n matrix (m <= n): for Llama-2-7B's fused
    q/k/v (k = 4096, n = 12288) and r = 128: 4096·128 + 2·128·12288 = 3,670,016 against 2 x 50,331,648 for
    Adam. Norms and embeddings keep full-rank states."""
    arch = load_architecture("llama-2-7b")
    ops = compile_graph(arch).evaluate(B=1, T=1)
    names = [op.name for op in ops.ops]
    galore = optimizer_state_elements(ops, optimizer_spec("galore", rank=128))
    adam = optimizer_state_elements(ops, ADAMW)
    qkv, emb = names.index("qkv_proj"), names.index("embedding")
    assert galore[qkv, 0] == pytest.approx(4096 * 128 + 2 * 128 * 12288)
    assert adam[qkv, 0] == pytest.approx(2 * 4096 * 12288)
    assert galore[emb, 0] == adam[emb, 0] == pytest.approx(2 * 32000 * 4096)
    big_rank = optimizer_state_elements(ops, optimizer_spec("galore", rank=100_000))
    assert np.all(big_rank <= adam + 1e-6)  # a rank above the matrix size never costs more than full rank


def test_seed_a39_apollo_galore_feasibility():
    """SEED-A39 (APOLLO, GaLore). 13B with naive DDP on A100-80GB: BF16 weights + grads 52 GB plus fp32 m, v
    104 GB and master 52 GB: AdamW does not fit; APOLLO-Mini (rank-1 state, SGD-level memory) does, with
    activations (seq 2048, micro-batch 1, no recompute). 7B: AdamW states alone are 7e9 x 16 = 112 GB >> 24 GB;
    on an RTX 4090 only 8-bit GaLore (rank 1024, per-layer updates, 256-token sequences as in GaLore's Fig. 1,
    external, verify) fits; 8-bit AdamW and fp32 GaLore do not."""
    kw = dict(node="dgx-a100", zero=0, seq_len=2048, micro_batch=1, global_batch=64, recompute="none")
    adamw = estimate_training("llama-2-13b", "a100-sxm-80gb", 8, **kw)
    assert not adamw.fits
    m = adamw.memory
    assert m["weights_bytes"] + m["grads_bytes"] == pytest.approx(52e9, rel=0.01)
    assert m["optimizer_bytes"] == pytest.approx(156e9, rel=0.01)  # m, v 104 GB + master 52 GB
    assert estimate_training("llama-2-13b", "a100-sxm-80gb", 8, optimizer="apollo-mini", **kw).fits
    assert 7e9 * model_state_bytes_per_param(ADAMW) == 112e9
    one = dict(seq_len=256, micro_batch=1, global_batch=1, recompute="none", zero=0)
    assert estimate_training("llama-2-7b", "rtx-4090", 1, optimizer="galore8bit", rank=1024, **one).fits
    for opt, rank in (("adamw", None), ("adamw8bit", None), ("galore", 1024)):
        assert not estimate_training("llama-2-7b", "rtx-4090", 1, optimizer=opt, rank=rank, **one).fits


def test_pipeline_splits_weights_per_stage():
    """PITFALLS: pipeline parallelism splits the weights. Llama-3.1-70B (80 layers, untied 128256 x 8192
    vocabulary matrices): PP = 2 puts 40 layers and one vocabulary matrix on each stage, so each GPU holds
    about half of PP = 1's weights."""
    one = estimate_training("llama-3.1-70b", "h100-sxm", 8, node="dgx-h100", tp=8, zero=0)
    two = estimate_training("llama-3.1-70b", "h100-sxm", 16, node="dgx-h100", tp=8, pp=2, zero=0)
    assert two.memory["weights_bytes"] == pytest.approx(one.memory["weights_bytes"] / 2, rel=0.01)


def test_offloaded_activations_leave_two_layers():
    """MEMO-style swapping keeps two layers' activations on the GPU and the rest in host memory."""
    kw = dict(node="a800-8", tp=8, seq_len=262_144, global_batch=1, recompute="none", zero=0)
    kept = estimate_training("llama-2-7b", "a800", 8, **kw)
    swapped = estimate_training("llama-2-7b", "a800", 8, offload_activations=True, **kw)
    assert swapped.memory["activation_bytes"] < kept.memory["activation_bytes"] / 5
    assert swapped.memory["host_bytes"] > 0.9 * (kept.memory["activation_bytes"] - swapped.memory["activation_bytes"])


def test_bad_inputs_raise_named_errors():
    with pytest.raises(RidgeplanError) as err:
        optimizer_spec("lion")
    assert err.value.field == "optimizer" and "adamw" in err.value.allowed
    with pytest.raises(RidgeplanError) as err:
        optimizer_spec("adamw", rank=8)
    assert err.value.field == "rank"
    with pytest.raises(RidgeplanError) as err:
        estimate_training("llama-3.1-8b", "h100-sxm", 8, zero=3, offload_params="cpu", offload_optimizer="disk")
    assert err.value.field == "offload_optimizer"
    with pytest.raises(RidgeplanError) as err:
        estimate_training("llama-3.1-8b", "h100-sxm", 8, zero=1, offload_params="cpu")
    assert err.value.field == "offload_params"


@given(params=st.floats(1e6, 1e12), dp=st.integers(1, 512), more=st.integers(1, 8), zero=st.sampled_from([1, 2, 3]))
def test_more_gpus_never_more_state_memory(params, dp, more, zero):
    """Sharded states: growing the data-parallel group never raises per-GPU model-state memory."""
    def per_gpu(n):
        w, g, o, buf, *_ = model_state_bytes(params, 0.0, float(n), float(n), zero, ADAMW,
                                             state_elements=2 * params, largest_layer_params=params / 100)
        return w + g + o + buf
    assert per_gpu(dp * more) <= per_gpu(dp) * (1 + 1e-12)


@given(params=st.floats(1e6, 1e12), dp=st.integers(1, 4096),
       opt=st.sampled_from(["adamw", "adamw8bit", "sgd", "galore", "apollo-mini"]))
def test_zero3_state_memory_at_most_zero1(params, dp, opt):
    spec = optimizer_spec(opt)

    def states(zero):
        w, g, o, *_ = model_state_bytes(params, 0.0, float(dp), float(dp), zero, spec, state_elements=2 * params,
                                        largest_layer_params=0.0)
        return w + g + o
    assert states(3) <= states(2) * (1 + 1e-12) <= states(1) * (1 + 1e-12) ** 2
    assert states(1) <= states(0) * (1 + 1e-12)


@given(tp=st.sampled_from([1, 2, 4, 8]), sp=st.sampled_from([1, 2, 4]), rc=st.sampled_from([0, 1, 2]),
       seq=st.sampled_from([512, 2048, 8192]), seq_par=st.booleans())
def test_activation_invariants(tp, sp, rc, seq, seq_par):
    """More TP or SP never stores more; full <= selective <= none."""
    arch = load_architecture("llama-3.1-8b")
    g = arch.groups[0]

    def act(t, s, r):
        return activation_bytes_per_layer(g, arch, 1, seq, t, s, seq_par, r, attention_kernel="materialized")[0]
    assert act(2 * tp, sp, rc) <= act(tp, sp, rc)
    assert act(tp, 2 * sp, rc) <= act(tp, sp, rc)
    assert act(tp, sp, 2) <= act(tp, sp, 1) <= act(tp, sp, 0)
