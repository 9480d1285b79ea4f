"""Section 11: SLO-aware goodput and queueing (Llumnix pooled instances, FastSwitch preemption swaps)."""

from __future__ import annotations

from model.api import deployment
from model.scenarios.base import CheckOutcome, check, pick, scenario
from model.serving.batching import decode_only_iteration, kv_capacity
from model.serving.estimate import prefill_terms
from model.techniques.long_context import host_link_bytes_per_s
from model.serving.policy import ENGINES
from model.serving.queueing import instances_needed
from model.techniques.preemption import (
    effective_bandwidth, kv_block_bytes, migration_s, pipelined_migration_downtime_s, preemption_tail, swap_s,
)

VLLM = ENGINES["vllm"]
RATE = 60.0  # requests/s offered to the whole fleet
PROMPT = 2000
TARGETS = (1.5, 2.0, 3.0, 5.0)  # p99 TTFT targets, as multiples of one prompt's prefill service


@check("SEED-C19", "C", "pooled instances with migration meet a P99 target with fewer instances than partitioned "
       "ones, at the same load")
def _c19(r):
    pooled, part = r["pooled_instances"], r["partitioned_instances"]
    ok = all(0 < p <= q for p, q in zip(pooled, part)) and any(p < q for p, q in zip(pooled, part))
    return CheckOutcome(ok, {"targets_x_service": list(TARGETS), "pooled": pooled, "partitioned": part},
                        "pooled <= partitioned at every target, < at some",
                        f"{RATE:g} req/s of {PROMPT}-token prompts; M/D/c (pooled) vs c x M/D/1 at rate/c "
                        "(partitioned)")


@scenario("llumnix-pooled-instances", ["Llumnix (002)"], 11,
          f"Llama-3.1-8B (bf16) instances on single H100 SXM GPUs behind one load balancer, {RATE:g} requests/s of "
          f"{PROMPT}-token prompts (Poisson). A prompt occupies its instance's prefill for D = the planner's batched "
          "prefill service time. Partitioned (baseline): requests are bound to an instance on arrival, c independent "
          "M/D/1 queues at rate/c. Pooled (Llumnix live migration): one M/D/c queue. Instances needed for a p99 TTFT "
          "target of 1.5-5 x D; the live-migration cost of a 2K-token request's KV over 100 GbE is reported.",
          [_c19])
def llumnix():
    d = deployment("llama-3.1-8b", "h100-sxm")
    _, service = prefill_terms(d, VLLM.with_(chunked_prefill=False), 0.0, 0.0, 0.0, float(PROMPT))
    service = float(service.ravel()[0])
    pooled = [instances_needed(0.99, t * service, RATE, service, pooled=True) for t in TARGETS]
    part = [instances_needed(0.99, t * service, RATE, service, pooled=False) for t in TARGETS]
    kv = float(kv_capacity(d, VLLM, PROMPT).kv_bytes_per_sequence[0])
    net = 100e9 / 8 * 0.9  # 100 GbE at 90% goodput (assumption)
    grow = kv / PROMPT / float(decode_only_iteration(d, VLLM, 32, PROMPT).time_s[0])  # KV bytes added per second
    return {"service_s": service, "pooled_instances": pooled, "partitioned_instances": part,
            "migration_stop_and_copy_s": migration_s(kv, net),
            "migration_pipelined_downtime_s": pipelined_migration_downtime_s(kv, grow, net)}


SETUP_S = 10e-6  # per-copy setup of a host<->GPU DMA (cudaMemcpyAsync launch + DMA descriptor): assumption
CONTEXT = 8192
BATCH = 64
SWAP_SHARE = 0.05  # iterations carrying a preemption swap ("frequent preemption")


@check("SEED-C18", "C", "effective PCIe bandwidth collapses for small blocks; larger granularity plus overlapped swaps "
       "cut tail TTFT/TBT under frequent preemption")
def _c18(r):
    ok = (r["bw_eff_block16"] < 0.25 * r["link_bytes_per_s"] and r["bw_eff_chunk"] > 0.8 * r["link_bytes_per_s"]
          and r["tbt_p99_fast"] < r["tbt_p99_baseline"] and r["resume_fast_s"] < r["resume_baseline_s"])
    return CheckOutcome(ok, pick(r, "bw_eff_block16", "bw_eff_chunk", "link_bytes_per_s", "tbt_p99_baseline",
                                 "tbt_p99_fast", "resume_baseline_s", "resume_fast_s"),
                        "BW_eff(16-token block) < 25% of the link, contiguous > 80%; p99 TBT and swap-in delay lower "
                        "with large granularity + overlap",
                        f"t_setup {SETUP_S * 1e6:g} us per copy (assumption); {SWAP_SHARE:.0%} of iterations carry a "
                        f"{CONTEXT}-token swap")


@scenario("fastswitch-swap-granularity", ["FastSwitch (001, 002, 004)"], 11,
          f"Llama-3.1-8B (bf16) on one A100 SXM 80GB (PCIe Gen4 x16 host link), {BATCH} running requests at "
          f"{CONTEXT} tokens, {SWAP_SHARE:.0%} of iterations preempting one request (its {CONTEXT}-token KV swapped to "
          "host DRAM). Baseline (vLLM): copies of one 16-token block of one layer's K or V, serialised with compute. "
          f"FastSwitch: 2 MiB contiguous chunks, swaps overlapped on a separate stream. Per-copy setup "
          f"{SETUP_S * 1e6:g} us (assumption).",
          [_c18])
def fastswitch():
    d = deployment("llama-3.1-8b", "a100-sxm-80gb")
    link = host_link_bytes_per_s(d)
    block = kv_block_bytes(d, 16)
    chunk = 2 * 2**20
    kv = float(kv_capacity(d, VLLM, CONTEXT).kv_bytes_per_sequence[0])
    it = float(decode_only_iteration(d, VLLM, BATCH, CONTEXT).time_s[0])
    slow, fast = float(swap_s(kv, block, link, SETUP_S)), float(swap_s(kv, chunk, link, SETUP_S))
    base = preemption_tail(it, slow, SWAP_SHARE, overlapped=False)
    new = preemption_tail(it, fast, SWAP_SHARE, overlapped=True)
    return {"link_bytes_per_s": link, "block_bytes": block,
            "bw_eff_block16": float(effective_bandwidth(block, link, SETUP_S)),
            "bw_eff_chunk": float(effective_bandwidth(chunk, link, SETUP_S)), "iteration_s": it,
            "swap_baseline_s": slow, "swap_fast_s": fast, "tbt_p99_baseline": base.tbt_s, "tbt_p99_fast": new.tbt_s,
            "resume_baseline_s": base.resume_s, "resume_fast_s": new.resume_s}
