"""Section 7: overlap of compute, memory and communication (NanoFlow, Ladder-residual, T3; CO2 is with the
DP-over-TCP scenario of section 6)."""

from __future__ import annotations

from dataclasses import replace

from model.api import deployment
from model.scenarios.base import CheckOutcome, check, close, pick, scenario, within
from model.serving.batching import steady_state
from model.techniques.throughput_ceiling import throughput_ceiling
from model.serving.policy import ENGINES
from model.serving.static import static_batch
from model.training import estimate_training
from model.training.analysis import gpt_architecture
from model.training.formulas import comm_share_for_speedup

VLLM = ENGINES["vllm"]


# ---------------------------------------------------------------------------------------------------------
# NanoFlow

@check("SEED-B07", "B", "59-72% of optimal; ceiling N F/(2 P_act) for LLaMA-2-70B on 8 x A100 ~ 17,800 tok/s without "
       "attention; ceiling >= any measured (10.5K-12.8K); ceiling within +-10% of the paper's definition")
def _b07(r):
    c = r["ceiling_tokens_per_s"]
    ok = (within(c, 17_800 * 0.9, 17_800 * 1.1) and c >= 12_800 and r["ceiling_with_attention_tokens_per_s"] <= c
          and r["predicted_vllm_tokens_per_s"] <= r["ceiling_with_attention_tokens_per_s"])
    return CheckOutcome(ok, pick(r, "ceiling_tokens_per_s", "ceiling_with_attention_tokens_per_s",
                                 "predicted_vllm_tokens_per_s", "vllm_share_of_ceiling",
                                 "nanoflow_share_of_ceiling"),
                        "16,020-19,580 tok/s and above 12.8K measured and the planner's own throughput",
                        "8 x A100-80GB (TP 8, NVLink), BF16; tokens = input + output; attention at the mean context "
                        "of 1,024-token prompts with 512 outputs")


@scenario("nanoflow-throughput-ceiling", ["NanoFlow (000-004)"], 7,
          "LLaMA-2-70B in BF16 on one 8 x A100-80GB node (TP 8): the hard compute ceiling N F / (2 P_act) (NanoFlow's "
          "'optimal throughput', attention excluded) and with the attention FLOPs at the mean decode context, "
          "against the planner's steady-state vLLM-like engine (continuous batching, chunked prefill, 1,024-token "
          "prompts and 512 outputs, input + output tokens per second) and NanoFlow's measured 59-72% of optimal.",
          [_b07])
def nanoflow():
    d = deployment("llama-2-70b", "a100-sxm-80gb", tp=8)
    ceiling = throughput_ceiling(d, context=1024 + 256)
    ss = steady_state(d, VLLM, 1024, 512)
    predicted = float(ss.requests_per_s[0]) * (1024 + 512)
    return {"ceiling_tokens_per_s": ceiling.compute_tokens_per_s,
            "ceiling_with_attention_tokens_per_s": ceiling.compute_with_attention_tokens_per_s,
            "ceiling_per_gpu": ceiling.compute_tokens_per_s / ceiling.gpus,
            "gemm_flops_per_token": ceiling.gemm_flops_per_token,
            "predicted_vllm_tokens_per_s": predicted,
            "vllm_share_of_ceiling": predicted / ceiling.compute_tokens_per_s,
            "nanoflow_share_of_ceiling": [10_500 / ceiling.compute_tokens_per_s, 12_800 / ceiling.compute_tokens_per_s],
            "memory_ceiling_batch_256": float(ceiling.memory_tokens_per_s(256, 1024 + 256,
                                                                          d.device.memory.bandwidth_bytes_per_s))}


# ---------------------------------------------------------------------------------------------------------
# Ladder-residual

@check("SEED-A24", "A", "Fully hidden comm gives 1.3x -> exposed TP comm >= 1 - 1/1.3 = 23.1% of the baseline step")
def _a24(r):
    return CheckOutcome(close(r["implied_exposed_share"], 0.231, 0.01), r["implied_exposed_share"], "23.1%")


@check("SEED-B15", "B", "30% at 70B, TP = 8: predicted exposed TP all-reduce share ~ 23% (15-31%); state link, batch, S")
def _b15(r):
    share = r["exposed_share_nvlink"]
    return CheckOutcome(within(share, 0.15, 0.31), {"nvlink": share, "pcie": r["exposed_share_pcie"],
                                                    "speedup_nvlink": r["speedup_nvlink"],
                                                    "nvlink_other_batches": r["exposed_share_nvlink_by_batch"]},
                        "15-31% on NVLink at batch 16",
                        "Llama-3.1-70B BF16, TP 8 on one DGX H100 (NVLink 4), batch 16, 1,024-token prompts, 512 "
                        "generated tokens, end to end (prefill + decode); share = 1 - T(all TP collectives hidden) / "
                        f"T(none hidden). The share grows with batch ({r['exposed_share_nvlink_by_batch'][1]:.0%} at "
                        f"batch 1, {r['exposed_share_nvlink_by_batch'][64]:.0%} at 64). PCIe: 8 x L40S, same model in FP8")


@scenario("ladder-residual-tp-overlap", ["Ladder-residual (003)"], 7,
          "Llama-3.1-70B (BF16) with TP 8 on one DGX H100 (NVLink 4 through NVSwitch): a static batch of 16 requests, "
          "1,024-token prompts, 512 generated tokens, end to end. Ladder-residual lets block i+1 start before block "
          "i's all-reduce ends; its upper bound is every TP collective hidden (Deployment.comm_overlap = 1) against "
          "the serialised baseline (0). The same on a PCIe server (8 x L40S, FP8 weights so that 70B fits), where "
          "the share is larger.",
          [_a24, _b15])
def ladder():
    out = {"implied_exposed_share": float(comm_share_for_speedup(1.3, float("inf")))}
    for name, model, gpu, node, weights in (("nvlink", "llama-3.1-70b", "h100-sxm", "dgx-h100", None),
                                            ("pcie", "llama-3.1-70b", "l40s", "pcie-8x-l40s", "fp8")):
        d = deployment(model, gpu, tp=8, node=node, weights=weights)
        base = static_batch(d, 16, 1024, 512)
        hidden = static_batch(replace(d, comm_overlap=1.0), 16, 1024, 512)
        out[f"exposed_share_{name}"] = 1 - hidden.e2e_latency_s / base.e2e_latency_s
        out[f"speedup_{name}"] = base.e2e_latency_s / hidden.e2e_latency_s
        out[f"e2e_s_{name}"] = base.e2e_latency_s
    d = deployment("llama-3.1-70b", "h100-sxm", tp=8, node="dgx-h100")
    hidden = replace(d, comm_overlap=1.0)
    out["exposed_share_nvlink_by_batch"] = {
        b: 1 - static_batch(hidden, b, 1024, 512).e2e_latency_s / static_batch(d, b, 1024, 512).e2e_latency_s
        for b in (1, 4, 64)}
    return out


# ---------------------------------------------------------------------------------------------------------
# T3

@scenario("t3-overlapped-tp-sublayers", ["T3 (003)"], 7,
          "T3 fuses a producer GEMM with the tensor-parallel collective that follows it. What-if: T-NLG-shaped "
          "(78 x 4256, 28 heads, 17B) and GPT-3 175B training steps on DGX A100 (TP 4 and TP 8, 2,048-token "
          "sequences, micro-batch 1, selective recompute) with the TP collectives overlapped by a fraction phi = 0, "
          "0.5, 1 (TrainingSettings.tp_overlap); the TP-communication share of the step and the step speed-up.")
def t3():
    out = {}
    for name, arch, tp in (("tnlg-17b", gpt_architecture("t-nlg", 78, 4256, 28), 4),
                           ("gpt3-175b", gpt_architecture("gpt3-175b", 96, 12288, 96), 8)):
        steps = {}
        for phi in (0.0, 0.5, 1.0):
            e = estimate_training(arch, "a100-sxm-80gb", tp * 8, node="dgx-a100", tp=tp, pp=8, global_batch=64,
                                  seq_len=2048, tp_overlap=phi, zero=1)
            steps[phi] = e
        base = steps[0.0]
        out[name] = {"tp_comm_share": base.breakdown_s["tp_comm_s"] / base.step_time_s,
                     "speedup_phi_0.5": base.step_time_s / steps[0.5].step_time_s,
                     "speedup_phi_1": base.step_time_s / steps[1.0].step_time_s}
    return out
