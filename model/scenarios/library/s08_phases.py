"""Section 8: prefill and decode phase models (idealized runtime, CPU-GPU coupling, auxiliary KV prediction)."""

from __future__ import annotations

from model.api import deployment
from model.scenarios.base import CheckOutcome, check, scenario
from model.techniques.phases import host_bound, idealized_runtime, predictor_ttft, transition_batch

# Host CPU cost of one kernel launch in eager PyTorch (framework dispatch + cudaLaunchKernel). Assumptions, not
# measurements: about 10 us per launch on the x86 hosts of PCIe A100/H100 servers; the Grace CPU is taken as
# 1.5x slower per launch (the GH200 characterisation names Grace as the cause of GH200's low-batch latency,
# without a per-launch figure in its abstract). Eager execution launches about 3x the kernels the fused
# operator graph counts (e.g. RMSNorm and rotary as several element-wise kernels each): an assumption.
LAUNCH_X86_S = 10e-6
LAUNCH_GRACE_S = 15e-6
EAGER_KERNELS = 3.0
GPUS = {"gh200": LAUNCH_GRACE_S, "h100-pcie": LAUNCH_X86_S, "a100-pcie-80gb": LAUNCH_X86_S}
PROMPT = 512
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
LARGE_BATCH = 64


@scenario("idealized-runtime-cost", ["Cheaply Evaluating Inference Efficiency Metrics (000, 002)"], 8,
          "Idealized runtime R = T_pf(S_p) + sum_j T_dec(S_p + j) of one request (1,000 in / 200 out, batch 1, no "
          "contention) for Llama-3.1-8B and Llama-3.1-70B on identical H100 SXM GPUs (bf16, the planner's "
          "reference efficiency), and the cost-aware variant R x ceil(W_b / M) accelerators (70B: 2 GPUs, TP2). "
          "What-if only: the paper has no numbers.")
def idealized():
    out = {}
    for model, tp in (("llama-3.1-8b", 1), ("llama-3.1-70b", 2)):
        d = deployment(model, "h100-sxm", tp=tp)
        r = idealized_runtime(d, 1000, 200)
        price = d.device.price.usd_per_hour if d.device.price else float("nan")
        out[model] = {"runtime_s": r.runtime_s, "prefill_s": r.prefill_s, "accelerators": r.accelerators,
                      "accelerator_s": r.accelerator_s, "usd_per_request": r.accelerator_s * price / 3600}
    return out


@check("SEED-B37", "B", "GH200 prefill 1.9-2.7x faster at large batch (Llama-3.2-1B): the claim lies between the "
       "speed-ups over H100 PCIe (~1.3x peak ratio) and A100 PCIe (~3.2x); small batches are launch-bound")
def _b37(r):
    lo, hi = r["speedup_vs_h100_pcie"], r["speedup_vs_a100_pcie"]
    ok = lo <= 1.9 and hi >= 2.7 and r["batch1_launch_bound_gh200"]
    return CheckOutcome(ok, {"vs_h100_pcie": lo, "vs_a100_pcie": hi,
                             "batch1_launch_bound": r["batch1_launch_bound_gh200"]},
                        "speed-up vs H100 PCIe <= 1.9 and vs A100 PCIe >= 2.7 (the 1.9-2.7x claim inside the "
                        "band); batch 1 launch-bound",
                        f"prefill of {LARGE_BATCH} x {PROMPT} tokens, bf16, planner efficiency; eager launches "
                        f"{EAGER_KERNELS:g}x the fused kernel count at {LAUNCH_GRACE_S * 1e6:g} us (Grace)")


@check("SEED-C25", "C", "at small batch the step is launch-bound; the transition batch is larger on GH200 than on "
       "PCIe systems; fusion lowers it")
def _c25(r):
    t, fused, equal = r["transition_eager"], r["transition_fused"], r["transition_equal_launch"]
    ok = (r["batch1_launch_bound_gh200"] and t["gh200"] > t["h100-pcie"] and t["gh200"] > t["a100-pcie-80gb"]
          and fused["gh200"] < t["gh200"] and equal["gh200"] > equal["h100-pcie"])
    return CheckOutcome(ok, {"eager": t, "fused": fused, "equal_launch_cost": equal},
                        "GH200 transition > PCIe transitions (also with equal launch costs); fused < eager",
                        f"prefill of {PROMPT}-token prompts; transition = smallest batch whose GPU time covers the "
                        "launches")


@scenario("gh200-cpu-gpu-coupling", ["Characterizing LLM inference on CPU-GPU coupled architectures (001)"], 8,
          f"Llama-3.2-1B prefill of {PROMPT}-token prompts (bf16) on GH200 (Grace host), H100 PCIe and A100 PCIe 80GB "
          "(x86 hosts), batch 1-1024. GPU time from the roofline; host time = kernels x launch cost, eager PyTorch "
          f"launching {EAGER_KERNELS:g}x the fused kernel count at {LAUNCH_X86_S * 1e6:g} us (x86) / "
          f"{LAUNCH_GRACE_S * 1e6:g} us (Grace) per launch (assumptions); fusion = the fused count. Baseline: the PCIe "
          "systems at the same batch.",
          [_b37, _c25])
def gh200():
    out = {"transition_eager": {}, "transition_fused": {}, "transition_equal_launch": {}}
    times = {}
    for gpu, launch in GPUS.items():
        d = deployment("llama-3.2-1b", gpu)
        times[gpu] = float(d.step(LARGE_BATCH, PROMPT, 0).time_s[0])
        out["transition_eager"][gpu] = transition_batch(d, PROMPT, 0, launch, EAGER_KERNELS, BATCHES)
        out["transition_fused"][gpu] = transition_batch(d, PROMPT, 0, launch, 1.0, BATCHES)
        out["transition_equal_launch"][gpu] = transition_batch(d, PROMPT, 0, LAUNCH_X86_S, EAGER_KERNELS, BATCHES)
        if gpu == "gh200":
            hb = host_bound(d.step(1, PROMPT, 0), launch, EAGER_KERNELS)
            out["batch1_launch_bound_gh200"] = bool(hb.launch_bound[0])
            out["batch1_gh200_gpu_s"] = float(hb.gpu_s[0])
            out["batch1_gh200_host_s"] = float(hb.host_s[0])
    out["prefill_s"] = times
    out["speedup_vs_h100_pcie"] = times["h100-pcie"] / times["gh200"]
    out["speedup_vs_a100_pcie"] = times["a100-pcie-80gb"] / times["gh200"]
    return out


@scenario("kv-prediction-edge-ttft", ["KV Prediction (001)"], 8,
          "TTFT of a 2,048-token prompt on an Apple M2 Pro (bf16, edge efficiency class): Qwen3-1.7B as the base "
          "model alone vs Qwen3-0.6B as the auxiliary model plus one learned linear map per base layer from the "
          "auxiliary KV to the base KV (the paper's OpenELM models are not in the catalogue; the sizes stand in). "
          "Decode is unchanged. What-if only: the quality claims are out of scope.")
def kv_prediction():
    base = deployment("qwen3-1.7b", "apple-m2-pro")
    aux = deployment("qwen3-0.6b", "apple-m2-pro")
    r = predictor_ttft(base, aux, 2048)
    return {"base_ttft_s": r.base_s, "auxiliary_ttft_s": r.auxiliary_s, "predictor_s": r.predictor_s,
            "with_predictor_ttft_s": r.with_predictor_s, "speedup": r.speedup}
