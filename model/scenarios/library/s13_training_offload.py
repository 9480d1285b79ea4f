"""Section 13, training offload: ZeRO-Offload, ZeRO-Infinity, Fuyou, ZO2 (and why Deep Optimizer States is not
expressible yet). The inference-offload systems of section 13 live in another module."""

from __future__ import annotations

import math

from model.architecture import load_architecture
from model.hardware import load_device
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.training import estimate_training, optimizer_spec
from model.training import formulas as f
from model.training.analysis import gpt_architecture, layer_parameters
from model.training.memory import model_state_bytes, model_state_bytes_per_param
from model.training.zeroth_order import zeroth_order_streaming

ADAMW = optimizer_spec("adamw")


# ---------------------------------------------------------------------------------------------------------
# ZeRO-Offload

@check("SEED-A09", "A", "One 32 GB V100, 16 and 2 B/param: 16 B/param -> <= 2.0B params, 1.4B x 16 = 22.4 GB; 2 B/param "
       "on GPU -> <= 16B, 13B x 2 = 26 GB; 40/125 = 32% of peak")
def _a09(r):
    ok = (close(r["max_params_16b"], 2.0e9, 1e-9) and close(r["states_1.4b_bytes"], 22.4e9, 1e-6)
          and close(r["max_params_offloaded"], 16e9, 1e-9) and close(r["gpu_bytes_13b_offloaded"], 26e9, 1e-6)
          and close(r["fraction_40tf"], 0.32, 0.01))
    return CheckOutcome(ok, pick(r, "max_params_16b", "states_1.4b_bytes", "max_params_offloaded",
                                 "gpu_bytes_13b_offloaded", "fraction_40tf"),
                        "2.0B, 22.4 GB, 16B, 26 GB, 32%",
                        f"the full model predicts {r['predicted_tflops_10b']:.0f} TFLOP/s for a 10B GPT on one V100 "
                        "with CPU-offloaded states (the paper measured 40)")


@scenario("zero-offload-single-gpu", ["ZeRO-Offload (003)"], 13,
          "ZeRO-Offload on one 32 GB V100: mixed-precision AdamW keeps 16 B/param on the GPU without offload, 2 B/param "
          "(the fp16 weights) with gradients, optimizer states and the Adam step on the CPU (14 B/param in host "
          "memory). The largest models each accounting allows, and the full training model for a 10B GPT (50 x 4096) "
          "and Llama-2-13B with CPU offload (1,024-token sequences, full recomputation).",
          [_a09])
def zero_offload():
    v100 = load_device("v100-sxm2-32gb")
    cap = v100.memory.capacity_bytes
    out = {"max_params_16b": cap / model_state_bytes_per_param(ADAMW)}
    w, g, o, *_ = model_state_bytes(1.4e9, 0.0, 1.0, 1.0, 0, ADAMW, state_elements=2.8e9, largest_layer_params=0.0)
    out["states_1.4b_bytes"] = float(w + g + o)
    w, g, o, _, cpu, _ = model_state_bytes(13e9, 0.0, 1.0, 1.0, 0, ADAMW, state_elements=26e9, largest_layer_params=0.0,
                                           offload_optimizer=1)
    out["gpu_bytes_13b_offloaded"] = float(w + g + o)
    out["host_bytes_13b_offloaded"] = float(cpu)
    out["max_params_offloaded"] = cap / (out["gpu_bytes_13b_offloaded"] / 13e9)
    out["fraction_40tf"] = float(f.achieved_fraction(40e12, 1, v100.peak("fp16")))
    kw = dict(zero=0, offload_optimizer="cpu", micro_batch=8, global_batch=512, seq_len=1024, recompute="full")
    e10 = estimate_training(gpt_architecture("gpt-10b", 50, 4096, 32), v100, 1, **kw)
    out["predicted_tflops_10b"] = e10.hfu * v100.peak("fp16") / 1e12 if e10.fits else float("nan")
    out["fits_10b"] = e10.fits
    e13 = estimate_training("llama-2-13b", v100, 1, **{**kw, "micro_batch": 1, "global_batch": 64})
    out["fits_13b_offloaded"] = e13.fits
    return out


# ---------------------------------------------------------------------------------------------------------
# ZeRO-Infinity

@check("SEED-A08", "A", "25e15/512 = 48.8 TFLOP/s = 39% of 125 (~ '40%'); 1T x 16 B/param = 16 TB; /800 = 20 GB per GPU "
       "(fits 32 GB V100s, not 16 GB); >= 500 GPUs as a pure-state lower bound")
def _a08(r):
    ok = (close(r["tflops_per_gpu"], 48.8, 0.01) and abs(r["fraction_of_peak"] - 0.39) <= 0.005
          and close(r["states_bytes_1t"], 16e12, 1e-9) and close(r["per_gpu_bytes_800"], 20e9, 1e-6)
          and r["per_gpu_bytes_800"] < 32e9 and r["per_gpu_bytes_800"] > 16e9 and r["min_gpus_32gb"] == 500)
    return CheckOutcome(ok, pick(r, "tflops_per_gpu", "fraction_of_peak", "states_bytes_1t",
                                 "per_gpu_bytes_800", "min_gpus_32gb"),
                        "48.8 TFLOP/s, 39%, 16 TB, 20 GB, 500 GPUs")


@scenario("zero-infinity-trillion", ["ZeRO-Infinity (003)"], 13,
          "ZeRO-Infinity's arithmetic on V100s (125 TFLOP/s FP16, 32 GB): 25 PF/s on 512 GPUs, 1T parameters at 16 "
          "B/param of model states sharded ZeRO-3 over 800 GPUs, and the pure-state lower bound on GPUs. What-if: a 1T "
          "GPT (128 x 25600) fine-tuned on one DGX-2 (16 V100) with weights and optimizer states on NVMe, 16 "
          "sequences of 1,024 tokens per step: host and NVMe bytes and the binding resource.",
          [_a08])
def zero_infinity():
    v100 = load_device("v100-sxm2-32gb")
    out = {"tflops_per_gpu": 25e15 / 512 / 1e12,
           "fraction_of_peak": float(f.achieved_fraction(25e15, 512, v100.peak("fp16"))),
           "states_bytes_1t": 1e12 * model_state_bytes_per_param(ADAMW)}
    w, g, o, *_ = model_state_bytes(1e12, 0.0, 800.0, 800.0, 3, ADAMW, state_elements=2e12, largest_layer_params=0.0)
    out["per_gpu_bytes_800"] = float(w + g + o)
    out["min_gpus_32gb"] = math.ceil(out["states_bytes_1t"] / v100.memory.capacity_bytes)
    e = estimate_training(gpt_architecture("gpt-1t", 128, 25600, 160), v100, 16, node="dgx-2-v100", zero=3,
                          offload_optimizer="nvme", offload_params="nvme", seq_len=1024, micro_batch=1,
                          global_batch=16, recompute="full", nvme_drives_per_node=8)
    out["dgx2_1t_fits"] = e.fits
    out["dgx2_1t_nvme_tb"] = e.memory["nvme_bytes"] * 16 / 1e12
    out["dgx2_1t_binding"] = e.binding
    if not e.fits:
        out["dgx2_1t_note"] = ("does not fit: ZeRO-3 keeps two whole layers gathered (2 x 7.9e9 params x 2 B = 31 GB "
                               "on a 32 GB V100); ZeRO-Infinity's memory-centric tiling splits such layers into "
                               "tiles, which the training model does not, so its single-DGX-2 trillion-parameter "
                               "fine-tuning is not reproduced")
    return out


# ---------------------------------------------------------------------------------------------------------
# Fuyou

@check("SEED-B19", "B", "156 TFLOPS on RTX 4090 (13B) = 94% of ~165 (FP32 accumulate) or 47% of ~330 (FP16 accumulate): "
       "the DB separates them; GPU-bound at 13B with enough SSD bandwidth, SSD-bound at 175B with one drive; "
       "<= chosen peak")
def _b19(r):
    ok = (156e12 <= r["peak_bf16"] and abs(r["fraction_of_fp32_acc"] - 0.944) <= 0.005
          and abs(r["fraction_of_fp16_acc"] - 0.472) <= 0.005 and r["binding_13b_8_drives"] == "compute"
          and r["binding_175b_1_drive"] == "offload_stall" and r["predicted_tflops_13b"] <= r["peak_bf16"] / 1e12)
    return CheckOutcome(ok, pick(r, "fraction_of_fp32_acc", "fraction_of_fp16_acc", "binding_13b_8_drives",
                                 "binding_175b_1_drive", "predicted_tflops_13b"),
                        "94% / 47%; compute-bound 13B, NVMe-bound 175B; prediction <= 165 TFLOP/s",
                        "weights and optimizer states on NVMe (ZeRO-3 offload), 16 sequences of 1,024 tokens per step "
                        "(micro-batch 4, full recomputation), Gen4 NVMe drives")


@scenario("fuyou-ssd-offload", ["Fuyou, \"Adding NVMe SSDs ... 100B Model Fine-tuning on a Single GPU\" (001, 003)"], 13,
          "Fine-tuning on one RTX 4090 (24 GB) with weights and optimizer states on NVMe: Llama-2-13B with eight Gen4 "
          "drives and OPT-175B with one, 16 sequences of 1,024 tokens per step. The 156 TFLOP/s claim against the "
          "4090's FP32-accumulate (165) and FP16-accumulate (330) peaks in hardware_db.",
          [_b19])
def fuyou():
    dev = load_device("rtx-4090")
    out = {"peak_bf16": dev.peak("bf16"), "peak_fp16_acc16": dev.peak("fp16_acc16"),
           "fraction_of_fp32_acc": 156e12 / dev.peak("bf16"), "fraction_of_fp16_acc": 156e12 / dev.peak("fp16_acc16")}
    kw = dict(zero=3, offload_optimizer="nvme", offload_params="nvme", seq_len=1024, micro_batch=4, global_batch=16,
              recompute="full")
    big = estimate_training("opt-175b", dev, 1, nvme_drives_per_node=1, **kw)
    small = estimate_training("llama-2-13b", dev, 1, nvme_drives_per_node=8, **kw)
    out["binding_175b_1_drive"] = big.binding
    out["binding_13b_8_drives"] = small.binding
    out["predicted_tflops_13b"] = small.hfu * dev.peak("bf16") / 1e12 if small.fits else float("nan")
    out["step_s_175b"] = big.step_time_s
    return out


# ---------------------------------------------------------------------------------------------------------
# ZO2

@check("SEED-A40", "A", "OPT-175B: 96 layers x 12 x 12288^2 = 1.81B params = 3.62 GB FP16 per layer -> 18 GB holds only "
       "a few layers; no-stall batch T_tok >= b_w F/(4 beta) = 3,000 tokens at 150 TFLOP/s and 25 GB/s")
def _a40(r):
    ok = (close(r["layer_params"], 1.81e9, 0.01) and close(r["layer_bytes_fp16"], 3.62e9, 0.01)
          and 2 <= r["layers_in_18gb"] < 10 and close(r["no_stall_tokens"], 3000.0, 1e-9))
    return CheckOutcome(ok, pick(r, "layer_params", "layer_bytes_fp16", "layers_in_18gb", "no_stall_tokens"),
                        "1.81B params, 3.62 GB, a few layers in 18 GB, 3,000 tokens",
                        "layer size from the operator graph (12 d^2 plus biases and norms)")


@check("SEED-B18", "B", "OPT-175B on 18 GB: layer-streaming peak < 18 GB; stall ~ 0 above the A40 threshold")
def _b18(r):
    ok = r["peak_bytes_at_threshold"] < 18e9 and r["stall_s_at_threshold"] == 0 and r["stall_s_quarter_threshold"] > 0
    return CheckOutcome(ok, pick(r, "a40_threshold_tokens", "peak_bytes_at_threshold", "stall_s_at_threshold",
                                 "stall_s_quarter_threshold"),
                        "peak < 18 GB and no stall at the threshold (a stall below it)",
                        "A40 (149.7 TFLOP/s FP16, PCIe Gen4 x16 at 25.6 GB/s achievable), FP16 weights in host memory, "
                        "two layers resident (computing + prefetching), embeddings and LM head resident, 2,048-token "
                        "sequences; the threshold rounded up to whole sequences")


@scenario("zo2-layer-streaming", ["ZO2 (001)"], 13,
          "Zeroth-order fine-tuning of OPT-175B (two forwards per step, 4 FLOP per parameter per token, no gradients) "
          "with the weights in CPU memory streamed layer by layer: the layer size, how many layers an 18 GB GPU "
          "holds, the tokens per step above which streaming over PCIe (25 GB/s) hides behind compute at 150 TFLOP/s "
          "(the catalogue's example rates); then on an A40 with the roofline (model.training.zeroth_order): peak GPU "
          "memory and the per-layer stall at the A40's own threshold and at a quarter of it.",
          [_a40, _b18])
def zo2():
    arch = load_architecture("opt-175b")
    params = layer_parameters(arch)
    out = {"layer_params": params, "layer_bytes_fp16": 2 * params, "layers_total": arch.num_layers,
           "layers_in_18gb": int(18e9 // (2 * params)),
           "no_stall_tokens": float(f.streaming_no_stall_tokens(2, 150e12, 25e9))}
    probe = zeroth_order_streaming(arch, "a40", 2048)
    seqs = math.ceil(probe.threshold_tokens / 2048)
    at = zeroth_order_streaming(arch, "a40", seqs * 2048, batch=seqs)
    quarter = zeroth_order_streaming(arch, "a40", 2048 * seqs / 4)
    out.update({"a40_threshold_tokens": probe.threshold_tokens, "tokens_at_threshold": at.tokens,
                "peak_bytes_at_threshold": at.peak_bytes, "stall_s_at_threshold": at.stall_s_per_layer,
                "stall_s_quarter_threshold": quarter.stall_s_per_layer})
    return out


NOT_EXPRESSIBLE = {
    "Deep Optimizer States (003)": (
        "the update subgroups are split between CPU and GPU by a performance model that uses the HBM left free "
        "between forward, backward and update; the training model offloads all optimizer states or none, so 'what "
        "fraction of updates should run on the GPU' has no knob",
        "a partial optimizer offload (GPU share of update subgroups, limited by per-phase HBM headroom) with CPU "
        "Adam throughput and PCIe transfers overlapped, in model/training (memory.model_state_bytes, step)"),
}
