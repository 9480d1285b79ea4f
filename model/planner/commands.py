"""Engine launch commands for a planned instance, built from each engine's launch-flag table (model.engines.*)
and checked against its rules before they are shown.

Checkpoints: the instruct (chat) release of the model, which is what people serve, not the base checkpoint.
A quantized plan names a quantized checkpoint from the table below, or, when ridgeplan knows none, uses a
$VARIABLE and says which checkpoint it must point at. Engines that quantize at load time (vLLM, SGLang with fp8)
take the bf16 instruct checkpoint.
"""

from __future__ import annotations


from model.engines import ENGINES, engine_module
from model.engines.launch import LaunchSpec


BATCHED_TOKENS = 8192

# catalogue id -> instruct checkpoint (hub model cards of each publisher); None: no instruct release exists
INSTRUCT_REPOS: dict[str, str | None] = {
    "llama-2-7b": "meta-llama/Llama-2-7b-chat-hf", "llama-2-13b": "meta-llama/Llama-2-13b-chat-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-chat-hf", "llama-3-8b": "meta-llama/Meta-Llama-3-8B-Instruct",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
    "llama-3.1-405b": "meta-llama/Llama-3.1-405B-Instruct", "llama-3.3-70b": "meta-llama/Llama-3.3-70B-Instruct",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B-Instruct", "codellama-34b": "codellama/CodeLlama-34b-Instruct-hf",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.1", "mixtral-8x7b": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B-Instruct-v0.1", "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct", "gemma-2-27b": "google/gemma-2-27b-it",
    "deepseek-v2-lite": "deepseek-ai/DeepSeek-V2-Lite-Chat", "falcon-180b": "tiiuae/falcon-180B-chat",
    "yi-34b": "01-ai/Yi-34B-Chat",
    # the catalogue repo already is the post-trained release (Qwen3 and DeepSeek-V3 publish base models as -Base)
    "qwen3-0.6b": "Qwen/Qwen3-0.6B", "qwen3-1.7b": "Qwen/Qwen3-1.7B", "qwen3-14b": "Qwen/Qwen3-14B",
    "qwen3-32b": "Qwen/Qwen3-32B", "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B",
    "qwen3-next-80b-a3b": "Qwen/Qwen3-Next-80B-A3B-Instruct", "deepseek-v3": "deepseek-ai/DeepSeek-V3",
    "gpt-oss-120b": "openai/gpt-oss-120b",
}
# (catalogue id, weight format) -> pre-quantized instruct checkpoint (source: the hub organisation named)
QUANTIZED_REPOS: dict[tuple[str, str], str] = {
    ("llama-3.1-8b", "int4"): "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
    ("llama-3.1-70b", "int4"): "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
    ("llama-3.1-405b", "int4"): "hugging-quants/Meta-Llama-3.1-405B-Instruct-AWQ-INT4",
    ("gpt-oss-120b", "mxfp4"): "openai/gpt-oss-120b",  # released in MXFP4
}


def serve_repo(model: str) -> tuple[str, str]:
    """(checkpoint to serve, note): the instruct release, or the catalogue repo with a note when there is none."""
    from model.architecture.catalogue import catalogue_entry

    if INSTRUCT_REPOS.get(model):
        return INSTRUCT_REPOS[model], ""
    entry = catalogue_entry(model)
    repo = entry.hf_repo.split(" ")[0] if entry and entry.hf_repo else model
    return repo, f"{model}: no instruct release known to ridgeplan; serving the base checkpoint {repo}"


def checkpoint(model: str, weights: str, engine: str) -> tuple[str, str, str]:
    """(checkpoint, its stored format, note) for serving `model` with `weights` on `engine`."""
    repo, note = serve_repo(model)
    if weights in ("bf16", "fp16"):
        return repo, "bf16", note
    if (model, weights) in QUANTIZED_REPOS:
        return QUANTIZED_REPOS[model, weights], weights, note
    mod = engine_module(engine)
    quant = getattr(mod, "QUANTIZATION", {}).get(weights)
    if quant is not None and not quant[1]:  # the engine quantizes the bf16 checkpoint at load time
        return repo, "bf16", note
    var = f"${weights.upper()}_CHECKPOINT"
    return var, weights, f"{engine}: {var} must be a {weights} checkpoint of {repo} (ridgeplan names none)"


def spec_for(candidate, max_batch: int, engine: str) -> tuple[LaunchSpec, str]:
    d = candidate.deployment
    lay, p = d.layout, d.precision
    model, fmt, note = checkpoint(candidate.model, p.weights, engine)
    # one instance = one replica: TP x attention-DP x PP GPUs (independent replicas are separate instances)
    return LaunchSpec(model, lay.tp, lay.pp, lay.ep, lay.attention_dp, p.weights, p.kv, fmt, max(int(max_batch), 1),
                      BATCHED_TOKENS, candidate.role, d.device.arch, d.device.vendor,
                      lay.tp * lay.attention_dp * lay.pp), note


def launch_commands(candidate, max_batch: int) -> dict[str, str]:
    """Commands that start one instance of `candidate`, per engine that can run it; an engine whose rules reject
    the plan (no ROCm build, no FP8 on the GPU, ...) is listed under 'not_available' with the reason, and a
    checkpoint that must be supplied is said under 'needs'."""
    out: dict[str, str] = {}
    refused, needs = [], []
    for name in ENGINES:
        mod = engine_module(name)
        spec, note = spec_for(candidate, max_batch, name)
        if spec.vendor == "AMD" and not mod.LAUNCH.rocm:
            refused.append(f"{name}: no ROCm build")
            continue
        cmd = mod.launch_command(spec)
        errors = mod.check_launch(mod.parse_command(cmd), spec)
        if errors:
            refused.append(f"{name}: " + "; ".join(errors))
            continue
        out[name] = cmd
        if name == "trtllm" and mod.extra_options(spec):
            out[f"trtllm_{spec.role}.yaml"] = mod.extra_options(spec)
        if note and note not in needs:
            needs.append(note)
    if refused:
        out["not_available"] = " | ".join(refused)
    if needs:
        out["needs"] = " | ".join(needs)
    return out


def router_commands(pools, pairs) -> dict[str, str]:
    """The proxy/router that fronts prefill and decode pools, per engine (hosts are placeholders: one per
    instance, PREFILL_<pool>_<k> / DECODE_<pool>_<k>)."""
    if not pairs:
        return {}
    pre = sorted({q.prefill for q in pairs})
    dec = sorted({q.decode for q in pairs})
    hosts = lambda idx, tag: [f"{tag}_{i}_{k}" for i in idx for k in range(pools[i].instances)]
    ph, dh = hosts(pre, "PREFILL"), hosts(dec, "DECODE")
    vllm, sglang, trtllm = (engine_module(n) for n in ENGINES)
    amd = any(pools[i].candidate.deployment.device.vendor == "AMD" for i in pre + dec)
    out = {
        "vllm": vllm.PROXY.format(prefill_hosts=" ".join(ph), prefill_ports=" ".join("8100" for _ in ph),
                                  decode_hosts=" ".join(dh), decode_ports=" ".join("8200" for _ in dh)),
        "sglang": sglang.ROUTER.format(prefill_urls=" ".join(f"--prefill http://{h}:30000" for h in ph),
                                       decode_urls=" ".join(f"--decode http://{h}:30001" for h in dh)),
    }
    if not amd:
        out["trtllm"] = trtllm.DISAGG
        out["trtllm disagg_config.yaml"] = "\n".join(
            ["hostname: 0.0.0.0", "port: 8000", "backend: pytorch", "context_servers:", f"  num_instances: {len(ph)}",
             "  urls:", *(f"    - \"{h}:8001\"" for h in ph), "generation_servers:", f"  num_instances: {len(dh)}",
             "  urls:", *(f"    - \"{h}:8002\"" for h in dh)])
    return out
