"""Multi-token prediction (MTP) speculative decoding for DeepSeek-style checkpoints.

DeepSeek-V3 ships `num_nextn_predict_layers` MTP modules beside the main model: each is one more transformer
layer of the MoE kind (MLA + routed and shared experts), an input projection eh_proj (2d -> d) over the
concatenated embedding and hidden state, and two RMSNorms; it shares the embedding and the LM head
(arXiv:2412.19437, section 2.2). Engines (SGLang, TensorRT-LLM, vLLM) use them as the draft of speculative
decoding, running the module k times per verification (reusing it when k exceeds the module count).

Here the module is what it is in memory and in time:
- memory: its weights on the last pipeline stage, and its KV cache (one more layer per token);
- time: one draft token = one MoE-layer instance + eh_proj + the model-level head (final norm, LM head,
  sampling) at the current batch and context, from the same roofline as the target step.

Acceptance: DeepSeek reports 85-90% acceptance of the second token across generation topics (arXiv:2412.19437,
section 5.4.3, "Multi-Token Prediction Evaluation"), for its one MTP module predicting one draft. Engines reuse
that module for every draft (TensorRT-LLM's "MTP Eagle", its default for DeepSeek-V3/R1; SGLang's EAGLE-style
MTP), and a module trained for depth 1 is right less often at depth 2 and 3: TensorRT-LLM measured DeepSeek-R1's
mean accepted tokens per step (the acceptance length) at 1.92, 2.58, 2.82, 2.99 and 3.01 with 1 to 5 drafts
(strict top-1 acceptance, DeepSeek-R1-FP4 on 8xB200, ISL/OSL 1k/2k; TensorRT-LLM tech blog 1, "Pushing Latency
Boundaries: Optimizing DeepSeek-R1 Performance on NVIDIA B200 GPUs", table "Autoregressive MTP Layers"). With a
constant per-draft acceptance the chain gains (1 - a^(k+1)) / (1 - a) tokens, so a flat 0.85 at k = 3 would
claim 3.19 where 2.82 was measured. The default acceptance for k drafts is therefore the per-draft rate whose
chain gains the measured length at that k (mtp_acceptance); beyond five drafts the length measured at five.
"""

from __future__ import annotations

import numpy as np

from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.roofline.efficiency_forms import memory_eta

# TensorRT-LLM tech blog 1 (docs/source/blogs/tech_blog/blog1_Pushing_Latency_Boundaries_Optimizing_DeepSeek-R1_
# Performance_on_NVIDIA_B200_GPUs.md, "Autoregressive MTP Layers"): tokens gained per step with k MTP drafts
MTP_ACCEPTED_TOKENS = {1: 1.92, 2: 2.58, 3: 2.82, 4: 2.99, 5: 3.01}
MTP_ACCEPTANCE_SOURCE = ("TensorRT-LLM tech blog 1 (DeepSeek-R1 on B200), measured acceptance lengths 1.92/2.58/"
                         "2.82/2.99/3.01 tokens per step for 1-5 MTP drafts")
HEAD_OPS = ("final_norm", "lm_head", "logits_all_gather", "sampling", "embedding")


def mtp_acceptance(k: int) -> float:
    """Default per-draft acceptance for k MTP drafts: the constant rate a whose chain gains the measured
    acceptance length L(k) (MTP_ACCEPTED_TOKENS; L(5) beyond five drafts), i.e. (1 - a^(k+1)) / (1 - a) = L(k)."""
    from scipy.optimize import brentq

    from model.serving.speculation_offload import expected_tokens_per_step

    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise RidgeplanError("spec_k", f"MTP needs at least one draft token, got {k!r}")
    length = MTP_ACCEPTED_TOKENS[min(int(k), max(MTP_ACCEPTED_TOKENS))]
    return float(brentq(lambda a: float(expected_tokens_per_step(a, k)) - length, 0.0, 1.0 - 1e-12, xtol=1e-12))


def mtp_modules(arch: Architecture) -> int:
    """MTP modules shipped with the checkpoint (config num_nextn_predict_layers)."""
    raw = arch.raw or {}
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
    return int(text.get("num_nextn_predict_layers", 0) or 0)


def mtp_group(arch: Architecture) -> int:
    """Layer group an MTP module is built like: the MoE layers (the last group otherwise)."""
    moe = [i for i, g in enumerate(arch.groups) if g.mlp.kind == "moe"]
    return moe[-1] if moe else len(arch.groups) - 1


def check_mtp(arch: Architecture, layers: int) -> None:
    if layers < 0:
        raise RidgeplanError("mtp_layers", f"must be >= 0, got {layers}")
    have = mtp_modules(arch)
    if layers and not have:
        raise RidgeplanError("mtp_layers", f"{arch.name} ships no multi-token-prediction module "
                             "(config num_nextn_predict_layers is 0)", ["0"])
    if layers > have:
        raise RidgeplanError("mtp_layers", f"{arch.name} ships {have} MTP module(s)", list(range(have + 1)))


def eh_proj_bytes(d) -> float:
    """eh_proj weights on one rank: a 2d x d projection at the dense weight format, split over TP."""
    h = d.arch.hidden_size
    return 2 * h * h * d.symbols()["b_w"] / d.layout.tp


def mtp_resident_bytes(d) -> float:
    """Weights of the deployment's MTP modules on one GPU of the last stage."""
    if not d.mtp_layers:
        return 0.0
    g = mtp_group(d.arch)
    ops = d.graph.evaluate({**d.symbols(), "B": 1.0, "T": 1.0, "C": 0.0})
    rows = np.array([op.group == g for op in ops.ops])
    return d.mtp_layers * (float(ops.resident_bytes[rows, 0].sum()) + eh_proj_bytes(d))


def mtp_cache_rows(d) -> np.ndarray:
    """Operators whose cache bytes one MTP module adds (the attention cache of one layer of its group)."""
    g = mtp_group(d.arch)
    return np.array([op.group == g for op in d.graph.ops])


def _draft_forward_s(d, decode, tokens_per_seq, context) -> np.ndarray:
    """One forward of the MTP module for `decode` sequences of `tokens_per_seq` tokens each at `context`: its
    MoE-layer instance and eh_proj over those tokens, then the shared head (final norm, LM head, sampling) on one
    row per sequence (TensorRT-LLM gathers the last accepted position before shared_head)."""
    _, _, layer_s = d.op_seconds(decode, tokens_per_seq, context, 1.0)
    g = mtp_group(d.arch)
    layer = np.array([op.group == g for op in d.graph.ops])
    head = np.array([op.name in HEAD_OPS for op in d.graph.ops])
    eh = eh_proj_bytes(d)
    eh_s = eh / (d.device.memory.bandwidth_bytes_per_s * memory_eta(eh, d.eff)) + d.eff.kernel_floor_s
    return layer_s[layer].sum(axis=0) + layer_s[head].sum(axis=0) + eh_s


def mtp_draft_step_s(d, decode_seqs, context) -> np.ndarray:
    """Seconds of one one-token draft forward for `decode_seqs` sequences at `context`: one MoE-layer instance,
    eh_proj (weight-streaming) and the shared head."""
    decode = np.maximum(np.asarray(decode_seqs, dtype=float), 1e-9)
    return _draft_forward_s(d, decode, 1.0, context)


def mtp_draft_s(d, decode_seqs, context, k: int) -> np.ndarray:
    """Seconds of the k draft forwards of one MTP verification round, as TensorRT-LLM's MTPEagleWorker.forward
    runs them (tensorrt_llm/_torch/speculative/mtp.py): the first forward takes every verified position of each
    generation request (`input_ids_gen = accepted_tokens[num_contexts:, :].flatten()`, k + 1 tokens per
    sequence, the rejected ones masked by the gather), the next k - 1 one token each (`All of the seq_len are
    1`); each ends in the shared head on one row per sequence. SGLang's EAGLE worker likewise runs its draft over
    the accepted tokens (forward_draft_extend_after_decode) besides its single-token draft steps."""
    decode = np.maximum(np.asarray(decode_seqs, dtype=float), 1e-9)
    first = _draft_forward_s(d, decode, float(k + 1), context)
    return first + (k - 1) * mtp_draft_step_s(d, decode, context)
