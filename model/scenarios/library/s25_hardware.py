"""Section 25: hardware catalogue and kernel-efficiency calibration (the hardware_db peaks and the kernel model of
`model.roofline.kernels`, against the anchors of `model/validation/kernels.toml`)."""

from __future__ import annotations

import tomllib
from importlib import resources

import numpy as np
import pandas as pd

from model.hardware import load_device
from model.roofline.efficiency_sets import efficiency_for
from model.roofline.kernels import achieved, predict_kernels
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.training import estimate_training


def _kernel_case(case_id: str) -> dict:
    with (resources.files("model.validation") / "kernels.toml").open("rb") as fh:
        return next(c for c in tomllib.load(fh)["case"] if c["id"] == case_id)


def _rate(table: pd.DataFrame, device_id: str, metric: str = "flop_per_s") -> np.ndarray:
    device = load_device(device_id)
    seconds = predict_kernels(table, device, efficiency_for(device))
    return achieved(table, seconds)[metric].to_numpy()


@check("SEED-A07", "A", "225/312 = 0.721 (72%); attention eta bands on A100: FA1 78-125, FA2 156-228 TFLOP/s")
def _a07(r):
    ok = close(r["fa2_fraction_of_peak"], 0.721, 0.01) and within(r["predicted_fa2_tflops"], 156, 228)
    return CheckOutcome(ok, pick(r, "fa2_fraction_of_peak", "predicted_fa2_tflops"),
                        "72.1% of 312; predicted FA2 forward inside 156-228 TFLOP/s",
                        "kernels.toml case a100-fa2-forward (16 heads x 128, 16K tokens, non-causal); the kernel model "
                        "has one flash-attention efficiency (FA2 level), so the FA1 band is not modelled")


@check("SEED-A10", "A", "84 TFLOPS > 50% of peak -> A6000 peak < 168 TFLOP/s in the hardware DB (154.8 gives 54%)")
def _a10(r):
    ok = r["a6000_peak_tflops"] < 168 and close(r["a6000_fraction_84tf"], 0.543, 0.01) and r["a6000_fraction_84tf"] > 0.5
    return CheckOutcome(ok, pick(r, "a6000_peak_tflops", "a6000_fraction_84tf"), "< 168 TFLOP/s; 54%")


@scenario("gpu-generation-efficiency", ["Benchmarking and Dissecting the Nvidia Hopper GPU (000, 003)"], 25,
          "What fraction of spec peak to assume on H100 vs A100 vs Ada: the kernel model's large (8192^3) BF16 and "
          "FP8 GEMMs and a 16K-token flash-attention forward on H100 SXM, A100 SXM and L40S, as fractions of each "
          "device's dense peak in hardware_db; the FlashAttention-2 anchor on A100 and the RTX A6000 peak that "
          "DeepSpeed Inference's '84 TFLOPS, over 50% of peak' implies.",
          [_a07, _a10])
def generations():
    out = {}
    a100_peak = load_device("a100-sxm-80gb").peak("bf16")
    out["fa2_fraction_of_peak"] = 225e12 / a100_peak
    case = _kernel_case("a100-fa2-forward")
    out["predicted_fa2_tflops"] = float(_rate(pd.DataFrame([case]), case["device"])[0]) / 1e12
    a6000 = load_device("rtx-a6000")
    out["a6000_peak_tflops"] = a6000.peak("bf16") / 1e12
    out["a6000_fraction_84tf"] = 84e12 / a6000.peak("bf16")
    fractions = {}
    for dev in ("h100-sxm", "a100-sxm-80gb", "l40s"):
        device = load_device(dev)
        rows = [{"kernel": "gemm", "dtype": "bf16", "m": 8192, "n": 8192, "k": 8192},
                {"kernel": "attention", "dtype": "bf16", "batch": 1, "heads": 16, "kv_heads": 16, "head_dim": 128,
                 "seq_len": 16384, "causal": 0}]
        if device.supports("fp8"):
            rows.append({"kernel": "gemm", "dtype": "fp8", "m": 8192, "n": 8192, "k": 8192})
        rates = _rate(pd.DataFrame(rows), dev)
        names = ["gemm_bf16", "attention_bf16", "gemm_fp8"][:len(rows)]
        peaks = [device.peak("bf16"), device.peak("bf16"), device.peak("fp8") if device.supports("fp8") else 1.0]
        fractions[dev] = {n: float(rate / p) for n, rate, p in zip(names, rates, peaks)}
    out["fraction_of_peak"] = fractions
    return out


@scenario("ada-gemm-efficiency", ["GEMM performance and energy on Ada (003)"], 25,
          "How far from peak is GEMM (M, N, K) on an RTX 4070 (Ada): the kernel model's achieved fraction of the "
          "FP16 (FP32-accumulate) peak over a grid of square and skinny shapes, and whether each is compute- or "
          "memory-bound. (The paper's learned predictor reached 15.6% mean runtime error; the analytical model's "
          "error band comes from `ridgeplan validate`.)")
def ada_gemm():
    dev = load_device("rtx-4070")
    shapes = [(m, n, k) for m in (16, 256, 4096) for n, k in ((4096, 4096), (16384, 4096))]
    table = pd.DataFrame([{"kernel": "gemm", "dtype": "bf16", "m": m, "n": n, "k": k} for m, n, k in shapes])
    rates = _rate(table, dev.id)
    bw = achieved(table, predict_kernels(table, dev, efficiency_for(dev)))["bytes_per_s"].to_numpy()
    return {"fraction_of_peak": {f"{m}x{n}x{k}": float(r / dev.peak("bf16")) for (m, n, k), r in zip(shapes, rates)},
            "fraction_of_bandwidth": {f"{m}x{n}x{k}": float(b / dev.memory.bandwidth_bytes_per_s)
                                      for (m, n, k), b in zip(shapes, bw)}}


@scenario("dissecting-runtime-8gpu", ["Dissecting runtime of training, fine-tuning and inference (004)"], 25,
          "Which optimisation matters most for my model on one 8-GPU node: Llama-2-7B, 13B and 70B trained data-parallel "
          "on a DGX A100 (2,048-token sequences, 64 per step) with ZeRO-1, ZeRO-3 or ZeRO-3 with optimizer states "
          "offloaded to the CPU, no vs full recomputation, and flash vs materialised attention: which combinations "
          "fit and their step times.")
def dissecting():
    out = {}
    for model in ("llama-2-7b", "llama-2-13b", "llama-2-70b"):
        rows = {}
        for zero, offload in ((1, "none"), (3, "none"), (3, "cpu")):
            for rc in ("none", "full"):
                for kernel in ("flash", "materialized"):
                    e = estimate_training(model, "a100-sxm-80gb", 8, node="dgx-a100", zero=zero, recompute=rc,
                                          offload_optimizer=offload, seq_len=2048, global_batch=64,
                                          attention_kernel=kernel)
                    key = f"zero{zero}{'+cpu' if offload == 'cpu' else ''}/{rc}/{kernel}"
                    rows[key] = round(e.step_time_s, 3) if e.fits else "does not fit"
        fitting = {k: v for k, v in rows.items() if not isinstance(v, str)}
        out[model] = {"step_s": rows, "fastest": min(fitting, key=fitting.get) if fitting else None}
    return out


NOT_EXPRESSIBLE = {
    "On the Efficiency of Convolutional Neural Networks (002)": (
        "ConvNeXt and ConvFirst are convolutional networks; the operator graph has transformer operators only "
        "(GEMM, attention, element-wise), so block fusion of convolutions has nothing to act on",
        "convolution operators (direct / implicit-GEMM, depthwise) with fused-block byte counts in model/operators, "
        "and CNN architectures in the model catalogue"),
}
