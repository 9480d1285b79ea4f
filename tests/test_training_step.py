"""Step time, MFU and time-to-train: definitions by hand, published anchors by catalogue id, error paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_training_formulas import gpt

from model.architecture import load_architecture
from model.errors import RidgeplanError
from model.hardware import load_device
from model.operators.params import parameter_counts
from model.training import estimate_training, megatron_flops_per_iteration
from model.training.formulas import attention_training_flops_per_token

# Megatron-LM 2021 software as the paper ran it (Narayanan et al. 2021, arXiv:2104.04473): fp16 with fp32 main
# gradients reduced in fp32, dropout, the fused-softmax (materialised) attention, no sequence parallelism, full
# activation recomputation, no overlap of the gradient all-reduce.
MEGATRON_2021 = dict(node="dgx-a100", seq_len=2048, recompute="full", zero=0, sequence_parallel=False,
                     attention_kernel="materialized", dropout=True, dp_overlap=0.0, grad_bytes=4.0)


@pytest.fixture(scope="module")
def gpt1t():
    return gpt("gpt-1t", 128, 25600, 160)


def test_model_flops_are_six_n_plus_attention():
    """Model FLOPs per token = 3 x forward = 6 x (parameters a token multiplies: all but the input embedding)
    + the attention term 3 x 4·L·n_h·d_h·(S+1)/2. Llama-3.1-8B at S = 4096 (untied: the LM head is counted)."""
    arch = load_architecture("llama-3.1-8b")
    e = estimate_training(arch, "h100-sxm", 8, node="dgx-h100", seq_len=4096, global_batch=64)
    pc = parameter_counts(arch)
    per_token = e.model_flops_per_step / (64 * 4096)
    expected = 6 * (pc.total - pc.vocab_matrix) + attention_training_flops_per_token(32, 32, 128, 4096)
    assert per_token == pytest.approx(expected, rel=0.002)


def test_mfu_is_an_output_of_time():
    """MFU = model FLOPs / (step time x GPUs x 16-bit peak); full recomputation adds one forward of the decoder
    layers (not the LM head, 2·d·V per token) to the hardware FLOPs and to the time, never to the model FLOPs."""
    kw = dict(node="dgx-h100", tp=2, seq_len=4096, global_batch=64)
    none = estimate_training("llama-3.1-8b", "h100-sxm", 16, recompute="none", **kw)
    full = estimate_training("llama-3.1-8b", "h100-sxm", 16, recompute="full", **kw)
    peak = load_device("h100-sxm").peak("bf16")
    assert none.mfu == pytest.approx(none.model_flops_per_step / (none.step_time_s * 16 * peak))
    assert full.model_flops_per_step == none.model_flops_per_step
    forward_per_token = full.model_flops_per_step / 3 / (64 * 4096)
    head_per_token = 2 * 4096 * 128256  # the LM head is not recomputed
    assert full.hfu / full.mfu == pytest.approx(1 + (forward_per_token - head_per_token) / (3 * forward_per_token))
    assert 1.2 < full.step_time_s / none.step_time_s < 1.4  # one more forward of about 1/3 of the work
    assert sum(none.breakdown_s.values()) == pytest.approx(none.step_time_s)


def test_time_to_train_and_cost():
    """Steps = ceil(D / tokens per step); time = steps x step time; cost = GPU-hours x the device's price."""
    e = estimate_training("llama-3.1-8b", "h100-sxm", 8, node="dgx-h100", seq_len=4096, global_batch=64, tokens=1e10)
    steps = math.ceil(1e10 / (64 * 4096))
    assert e.time_to_train_s == pytest.approx(steps * e.step_time_s)
    assert e.cost_usd == pytest.approx(e.time_to_train_s * 8 / 3600 * load_device("h100-sxm").price.usd_per_hour)


def test_out_of_memory_has_no_step_time():
    """PITFALLS: an out-of-memory layout is reported with its shortfall, never as a time."""
    e = estimate_training("llama-3.1-70b", "h100-sxm", 8, node="dgx-h100", zero=0, tokens=1e12)
    assert not e.fits and e.step_time_s is None and e.mfu is None and e.time_to_train_s is None
    d = e.to_dict()
    assert "step_time_s" not in d and d["memory"]["headroom_bytes"] < 0 and e.binding == "memory"


def _megatron_1t(arch):
    """SEED-A06 setting: the 1T GPT (128 layers, h = 25600, 160 heads, V = 51200; 1.008e12 parameters) with
    t = 8, p = 64, d = 6 on 3,072 A100 (DGX A100, HDR InfiniBand), global batch 3072 of 2048 tokens, micro-batch 1
    (assumed), non-interleaved 1F1B (assumed), 2021 software (MEGATRON_2021). Returns the estimate and its
    per-GPU FLOP rate by Megatron's own count (which includes the recomputed forward), as a fraction of 312 TF."""
    e = estimate_training(arch, "a100-sxm-80gb", 3072, tp=8, pp=64, global_batch=3072, **MEGATRON_2021)
    per_gpu = megatron_flops_per_iteration(3072, 2048, 128, 25600, 51200) / e.step_time_s / 3072
    return e, per_gpu / 312e12


def test_seed_a06_megatron_1t_structure(gpt1t):
    """SEED-A06, what must hold whatever the kernels of 2021 achieved: the model has 1.008e12 parameters, the
    layout fits in 80 GB, the bubble is (p−1)/(m+p−1) = 63/575 with m = 3072/6 = 512, the hardware FLOP rate from
    the operator graph agrees with Megatron's formula. The prediction against the published 52.4% is the strict
    two-sided xfail below."""
    assert parameter_counts(gpt1t).total == pytest.approx(1.008e12, rel=0.001)
    e, fraction = _megatron_1t(gpt1t)
    assert e.fits and e.memory["total_bytes"] < 80e9
    assert e.bubble_fraction == pytest.approx(63 / 575, abs=0.01)
    assert e.hfu == pytest.approx(fraction, abs=0.01)


@pytest.mark.xfail(strict=True, reason=(
    "SEED-A06 prediction 10 points above the band: ridgeplan predicts 195 TFLOP/s per A100 (62.4% of 312) against "
    "the published 163.4 (52.4%), band ±8 points. Every term of the step is modelled (GEMMs at the A100's measured "
    "0.87 ceiling, materialised attention, dropout, fp32 gradient accumulation, TP all-reduces without overlap, "
    "the 11% bubble, p2p, the DP all-reduce); the remaining gap is what 2021 kernels and clocks lost against a "
    "ceiling measured on today's software. A calibration file for the A100 would close it."))
def test_seed_a06_megatron_1t_prediction(gpt1t):
    """SEED-A06, predicted: within ±8 points of 52.4% of peak."""
    _, fraction = _megatron_1t(gpt1t)
    assert abs(fraction - 0.524) <= 0.08


@pytest.mark.parametrize("global_batch", [12, 24, 36, 48, 60])
def test_seed_b30_interleaving_gain(global_batch):
    """SEED-B30 (Megatron-LM): the interleaved schedule (v = 2) improves throughput ≥ 5% in bubble-heavy configs:
    GPT-3 175B on 96 A100 with (t, p) = (8, 12), micro-batch 1, global batch 12-60 (the paper's figure 12
    setting, external, verify). Predicted gains: 30% at 12 sequences falling to 8% at 60."""
    g175 = gpt("gpt3-175b", 96, 12288, 96)
    kw = dict(tp=8, pp=12, global_batch=global_batch, **MEGATRON_2021)
    plain = estimate_training(g175, "a100-sxm-80gb", 96, **kw)
    inter = estimate_training(g175, "a100-sxm-80gb", 96, virtual_stages=2, **kw)
    assert inter.fits and plain.fits
    assert plain.step_time_s / inter.step_time_s - 1 >= 0.05


FRONTIER = dict(node="mi250x-frontier-node", seq_len=2048, recompute="full", zero=1, micro_batch=1)


def _frontier(size: str, dp: int, micro_batches_per_stage: int = 4, global_batch: int | None = None):
    """22B / 175B / 1T GPT (48 x 6144 x 48, 96 x 12288 x 96, 128 x 25600 x 160) with TP 2 / 4 / 8 (one package,
    half a node, a node) and PP 4 / 16 / 64 (assumed; the paper's exact configs were not available), micro-batch 1,
    full recomputation, 4 micro-batches per pipeline stage unless a global batch is given."""
    layers, hidden, heads, tp, pp = {"22B": (48, 6144, 48, 2, 4), "175B": (96, 12288, 96, 4, 16),
                                     "1T": (128, 25600, 160, 8, 64)}[size]
    gb = global_batch or micro_batches_per_stage * pp * dp
    return estimate_training(gpt(f"gpt-{size}", layers, hidden, heads), "mi250x-gcd", tp * pp * dp, tp=tp, pp=pp,
                             global_batch=gb, **FRONTIER)


def test_seed_c16_frontier_scaling_directions():
    """SEED-C16 (Frontier): MFU falls with model size (22B > 175B > 1T at the same bubble); weak scaling (per-GPU
    work fixed, DP 1 -> 4) keeps ≥ 0.98 efficiency; strong scaling (global batch fixed) is below 1 and falls as
    GPUs are added (fewer micro-batches per pipeline, a larger bubble)."""
    mfu = [_frontier(s, 2).mfu for s in ("22B", "175B", "1T")]
    assert mfu[0] > mfu[1] > mfu[2]
    for size in ("175B", "1T"):
        base = _frontier(size, 1)
        weak = _frontier(size, 4)
        assert weak.tokens_per_s / weak.gpus / (base.tokens_per_s / base.gpus) >= 0.98
        pp = {"175B": 16, "1T": 64}[size]
        per_gpu = [(_frontier(size, d, global_batch=8 * pp)) for d in (1, 2, 4)]
        eff = [p.tokens_per_s / p.gpus / (per_gpu[0].tokens_per_s / per_gpu[0].gpus) for p in per_gpu]
        assert 1.0 > eff[1] > eff[2]


@pytest.mark.xfail(strict=True, reason=(
    "SEED-B20 outside its ±8-point band: ridgeplan predicts a hardware FLOP rate of 55% / 51% / 49% of the GCD "
    "peak (191.5 TFLOP/s) for 22B / 175B / 1T against the published 38.38% / 36.14% / 31.96%. The CDNA2 GEMM "
    "ceiling (0.77) is a single-kernel measurement; the ROCm Megatron-DeepSpeed stack of the paper ran well below "
    "it and no MI250X calibration file exists; the paper's layouts are assumed here. Read without the recomputed "
    "forward (3x counting) the predictions are 42% / 38% / 37%, inside the band: whether the paper's counter "
    "includes recomputation is not known here. Direction checks pass (SEED-C16)."))
def test_seed_b20_frontier_mfu_values():
    """SEED-B20: 38.38 / 36.14 / 31.96% of the per-GCD peak (73.5/191.5 = 38.38%, so the paper's "GPU" is a GCD),
    compared with the hardware FLOP rate (Megatron-DeepSpeed's counter includes the recomputed forward)."""
    for size, published in (("22B", 0.3838), ("175B", 0.3614), ("1T", 0.3196)):
        assert abs(_frontier(size, 2).hfu - published) <= 0.08


def test_seed_b29_memo_million_token_mfu():
    """SEED-B29 (MEMO): 7B at a 1M-token sequence on 8 A800 at 52.30% MFU (attention FLOPs counted). Setup: a
    Llama-2-7B shape, TP 8 with sequence parallelism, activations swapped to host memory per layer (MEMO mixes
    swapping and token-wise recomputation; the two extremes bracket it). Both extremes land within ±10 points;
    the swap hides behind each layer's compute (no exposed swap time)."""
    kw = dict(node="a800-8", tp=8, seq_len=1_048_576, global_batch=1, zero=0, offload_activations=True)
    swap_all = estimate_training("llama-2-7b", "a800", 8, recompute="none", **kw)
    recompute_all = estimate_training("llama-2-7b", "a800", 8, recompute="full", **kw)
    for e in (swap_all, recompute_all):
        assert e.fits
        assert abs(e.mfu - 0.523) <= 0.10
        assert e.breakdown_s["activation_swap_s"] == 0
    assert not estimate_training("llama-2-7b", "a800", 8, **{**kw, "offload_activations": False}, recompute="none").fits


def test_seed_c14_sequence_parallel_holds_more_than_tensor_parallel():
    """SEED-C14 (Ring Self-Attention): at equal device memory, sequence parallelism over p GPUs fits a larger batch
    than tensor parallelism (TP keeps norm inputs and dropout masks whole on every rank) and the gap grows with p;
    past the head count (16 for BERT-Large) only SP can split further, so its maximum sequence passes TP's best.
    (Below that, materialised s x s scores split p ways under both and the maximum sequences are about equal.)"""
    from model.training.analysis import max_fitting
    from model.training.config import TrainingSettings
    from model.training.cluster import cluster_for
    arch = gpt("bert-large", 24, 1024, 16, vocab=30528, seq=512)
    cluster = cluster_for("v100-sxm2-32gb", "dgx-2-v100")
    st = TrainingSettings(attention_kernel="materialized", dropout=True)
    batches = np.arange(1, 1025, dtype=float)

    def max_fit(values, column, **kw):
        return max_fitting(arch, cluster, column, values, st, zero=0, recompute=0, **kw)

    ratios = []
    for p in (2, 4, 8, 16):
        tp = max_fit(batches, "micro_batch", tp=p, seq_len=512, global_batch=batches, sequence_parallel=0)
        sp = max_fit(batches, "micro_batch", sp=p, sp_kind=1, seq_len=512, global_batch=batches)
        ratios.append(sp / tp)
    assert ratios[-1] > 2 and all(b > a for a, b in zip(ratios, ratios[1:]))
    seqs = np.arange(1, 129) * 512.0
    best_tp = max_fit(seqs, "seq_len", tp=16, micro_batch=1, global_batch=1, sequence_parallel=0)
    assert max_fit(seqs, "seq_len", sp=32, sp_kind=1, micro_batch=1, global_batch=1) > 1.3 * best_tp


def test_seed_b19_fuyou_peaks_and_bottlenecks():
    """SEED-B19 (Fuyou): 156 TFLOP/s on an RTX 4090 is 94% of the 165 TFLOP/s FP32-accumulate peak or 47% of
    the 330 FP16-accumulate one: the hardware file keeps both. Offloading weights and optimizer states to NVMe
    (16 sequences of 1024 tokens per step, assumed), 175B on one drive is NVMe-bound while 13B with eight drives
    is GPU-bound."""
    dev = load_device("rtx-4090")
    assert 156e12 <= dev.peak("bf16") and 156e12 / dev.peak("bf16") == pytest.approx(0.944, abs=0.005)
    assert 156e12 / dev.peak("fp16_acc16") == pytest.approx(0.472, abs=0.005)
    kw = dict(zero=3, offload_optimizer="nvme", offload_params="nvme", seq_len=1024, micro_batch=4,
              global_batch=16, recompute="full")
    big = estimate_training("opt-175b", "rtx-4090", 1, nvme_drives_per_node=1, **kw)
    small = estimate_training("llama-2-13b", "rtx-4090", 1, nvme_drives_per_node=8, **kw)
    assert big.fits and big.binding == "offload_stall"
    assert small.fits and small.binding == "compute" and small.breakdown_s["offload_stall_s"] == 0


@pytest.mark.parametrize("kwargs, field", [
    (dict(tp=3), "tp"),
    (dict(tp=2, global_batch=7), "global_batch"),
    (dict(optimizer="lion"), "optimizer"),
    (dict(tp=2, dp=2), "gpus"),
    (dict(gpus=6, tp=4), "gpus"),
    (dict(pp=2, virtual_stages=3), "virtual_stages"),
    (dict(sp=3, sp_kind="ulysses", gpus=3), "seq_len"),
    (dict(sp=8, sp_kind="ulysses", tp=8, gpus=64, seq_len=8192), "sp"),
    (dict(pp=64), "pp"),
    (dict(recompute="some"), "recompute"),
    (dict(zero=4), "zero"),
    (dict(ep=2), "ep"),
    (dict(tokens=-1), "tokens"),
    (dict(micro_batch=0), "micro_batch"),
])
def test_bad_layouts_name_the_field(kwargs, field):
    args = {"gpus": 8, **kwargs}
    with pytest.raises(RidgeplanError) as err:
        estimate_training("llama-3.1-8b", "h100-sxm", node="dgx-h100", **args)
    assert err.value.field == field


def test_a_job_larger_than_a_node_needs_a_network():
    with pytest.raises(RidgeplanError) as err:
        estimate_training("llama-3.2-1b", "rtx-4090", 16)
    assert err.value.field == "gpus"


def test_optimizer_update_time_by_hand():
    """The AdamW update reads and writes the fp32 master, m and v (2 x 12 B), reads the 2 B gradient and writes the
    2 B weight: 28 B per parameter of the local ZeRO shard, at the device's streaming bandwidth (H100: 3.35 TB/s x
    0.85). Llama-3.1-8B, ZeRO-1 over 8 GPUs: 8.03e9 / 8 x 28 B / 2.85 TB/s = 9.9 ms."""
    e = estimate_training("llama-3.1-8b", "h100-sxm", 8, node="dgx-h100", zero=1, seq_len=4096, global_batch=64)
    local = parameter_counts(load_architecture("llama-3.1-8b")).total / 8
    assert e.breakdown_s["optimizer_s"] == pytest.approx(local * 28 / (3.35e12 * 0.85), rel=0.001)
