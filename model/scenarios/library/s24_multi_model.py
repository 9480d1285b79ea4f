"""Section 24: multi-adapter serving, co-serving and many-model hosting (S-LoRA, FlexLLM, SN40L, Composition of
Experts)."""

from __future__ import annotations

from model.api import deployment
from model.architecture.catalogue import load_architecture
from model.hardware.db import load_device
from model.scenarios.base import CheckOutcome, check, close, pick, scenario
from model.techniques.multi_model import (
    adapters_on_gpu, blended_active_params, coserving, fetch_s, hosting_footprint, lora_adapter_bytes,
    lora_flops_per_token, switch_s,
)
from model.serving.batching import kv_capacity
from model.techniques.long_context import host_link_bytes_per_s
from model.techniques.phases import model_weight_bytes
from model.serving.policy import ENGINES

VLLM = ENGINES["vllm"]
N_ADAPTERS = 2000


@check("SEED-A41", "A", "rank 16 on 4 attention projections, 32 layers, d = 4096, FP16 -> 33.5 MB per adapter; 2,000 "
       "adapters = 67 GB -> host-resident with paging")
def _a41(r):
    ok = (close(r["adapter_bytes"], 33.5e6) and close(r["all_adapters_bytes"], 67e9)
          and r["all_adapters_bytes"] > r["gpu_free_bytes"])
    return CheckOutcome(ok, pick(r, "adapter_bytes", "all_adapters_bytes", "gpu_free_bytes"),
                        "33.5 MB; 67 GB; more than the GPU has beside the weights",
                        "Llama-2-7B dimensions (MHA: q, k, v, o all 4096 x 4096); GPU free = vLLM KV pool of one "
                        "A100 80GB")


@scenario("s-lora-adapters", ["S-LoRA (003, 004)"], 24,
          f"Llama-2-7B (bf16) on one A100 SXM 80GB serving {N_ADAPTERS:,} rank-16 LoRA adapters on q, k, v, o (fp16). "
          "Adapter bytes and unmerged FLOPs per token, whether all adapters fit beside the weights, how many fit "
          "beside the KV of 32 requests at 2K context, and the PCIe fetch of an adapter on a miss (S-LoRA keeps "
          "them in host memory and pages them with the KV).",
          [_a41])
def s_lora():
    arch = load_architecture("llama-2-7b")
    d = deployment(arch, "a100-sxm-80gb")
    one = lora_adapter_bytes(arch, 16)
    cap = kv_capacity(d, VLLM, 2048)
    pool = float(cap.kv_pool_bytes[0])
    beside_kv = pool - 32 * float(cap.kv_bytes_per_sequence[0])
    return {"adapter_bytes": one, "all_adapters_bytes": N_ADAPTERS * one, "gpu_free_bytes": pool,
            "adapters_beside_32x2k_kv": adapters_on_gpu(beside_kv, one),
            "fetch_ms": fetch_s(one, host_link_bytes_per_s(d)) * 1e3,
            "lora_flops_per_token": lora_flops_per_token(arch, 16),
            "lora_flops_share": lora_flops_per_token(arch, 16) / (2 * model_weight_bytes(d) / 2)}


@scenario("flexllm-coserving", ["FlexLLM (004)"], 24,
          "Llama-3.1-8B (bf16) on one A100 SXM 80GB decoding 64 requests at 2K context under a 50 ms TBT SLO: the "
          "extra tokens each iteration can carry within the SLO go to parameter-efficient fine-tuning (a training "
          "token ~ 3 forward tokens). What-if only (the memory claims need activation accounting of PEFT graphs).")
def flexllm():
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    c = coserving(d, 64, 2048, 0.05)
    return {"inference_tokens_per_iter": c.inference_tokens, "max_tokens_per_iter": c.max_tokens,
            "spare_tokens_per_iter": c.spare_tokens, "finetune_tokens_per_s": c.finetune_tokens_per_s}


EXPERTS = 150


@scenario("sn40l-composition-of-experts", ["SambaNova SN40L (000)"], 24,
          f"Samba-CoE: {EXPERTS} Llama-2-7B-sized experts (bf16, 13.5 GB each, ~1T parameters). An 8-socket SN40L node "
          "(64 GB HBM + 1.5 TB DDR per socket, experts in DDR and switched into HBM at 100 GB/s per socket, all 8 in "
          "parallel) vs DGX H100 nodes (8 x 80 GB HBM; experts held in HBM, or switched in from host DRAM over each "
          "GPU's PCIe Gen5 x16): nodes needed and model-switch time. What-if only.")
def sn40l():
    d = deployment("llama-2-7b", "h100-sxm")
    one = model_weight_bytes(d)
    sn = load_device("sn40l")
    sn_node = 8 * (sn.memory.capacity_bytes + 1.5e12)
    dgx_hbm = 8 * d.device.memory.capacity_bytes
    return {"expert_bytes": one, "total_bytes": EXPERTS * one,
            "sn40l_nodes": hosting_footprint([one] * EXPERTS, sn_node),
            "dgx_h100_nodes_all_in_hbm": hosting_footprint([one] * EXPERTS, dgx_hbm),
            "sn40l_switch_s": float(switch_s(one, 8 * 100e9)),
            "dgx_switch_from_host_s": float(switch_s(one, 8 * host_link_bytes_per_s(d)))}


# Composition of Experts' five experts; Qwen2.5 stands in for Qwen2 (same sizes), gemma-2-9b is not in the
# catalogue: its nominal 9.24B parameters (Gemma 2 model card, external, verify) are used for the sums.
COE = {"qwen2.5-7b": None, "gemma-2-9b": 9.24e9, "gemma-2-27b": None, "llama-3.1-70b": None, "qwen2.5-72b": None}


@scenario("composition-of-experts-blend", ["Composition of Experts (000)"], 24,
          "Composition of Experts over Qwen2-7B, Gemma-2-9B, Gemma-2-27B, Llama-3.1-70B and Qwen2-72B (Instruct; "
          "Qwen2.5 configs as stand-ins): resident parameters of the whole set, and the traffic-weighted average "
          "active parameters for a router sending 60% / 10% / 10% / 10% / 10% of queries vs always serving the 70B.")
def composition():
    params = {m: (p if p is not None else model_weight_bytes(deployment(m, "h100-sxm")) / 2) for m, p in COE.items()}
    shares = [0.6, 0.1, 0.1, 0.1, 0.1]
    blended = blended_active_params(shares, list(params.values()))
    return {"params": params, "resident_params": sum(params.values()), "blended_active_params": blended,
            "blend_over_70b": blended / params["llama-3.1-70b"]}
