"""Vision-language model token accounting.

- Visual tokens of a request: partitions x tokens per partition x keep ratio (x frames for video); an AnyRes
  image (LLaVA-NeXT) is a base view plus a grid of crops, each encoded separately.
- TTFT = vision encoder (a non-causal ViT over every partition, `model.techniques.encoder`) + LLM prefill over the
  visual and text tokens; the KV cache grows with every kept token.
- Peak prefill memory in an eager (non-fused) runtime: weights + KV + the largest transient: one layer's
  attention scores h S^2 (16-bit scores plus their fp32 softmax) or the MLP intermediates, + fp32 logits of every
  prompt position when the runtime computes them all (Hugging Face generate in older versions).
- Iso-FLOP trade-off: prefill FLOPs ~ 2 P_LLM (V + T) (+ attention), so at a fixed budget fewer visual tokens
  buy a larger LLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.serving.deployment import Deployment
from model.techniques.encoder import bidirectional_transformer


def visual_tokens(partitions: int, tokens_per_partition: int, keep: float = 1.0, frames: int = 1) -> int:
    """LLM tokens of the visual input: round(partitions x tokens_per_partition x keep) x frames."""
    if partitions < 1 or tokens_per_partition < 1 or frames < 1:
        raise RidgeplanError("visual_tokens", "partitions, tokens_per_partition and frames must be >= 1")
    if not 0 < keep <= 1:
        raise RidgeplanError("keep", f"must be in (0, 1], got {keep}")
    return max(1, round(partitions * tokens_per_partition * keep)) * frames


def anyres_partitions(grid: tuple[int, int], base_view: bool = True) -> int:
    """Crops of an AnyRes image: rows x columns of the grid, plus the down-scaled base view."""
    return grid[0] * grid[1] + (1 if base_view else 0)


@dataclass(frozen=True)
class VisionEncoder:
    """A ViT image encoder: `image_size` square crops cut into `patch` x `patch` patches (+ a class token)."""

    name: str
    hidden: int
    layers: int
    heads: int
    mlp_width: int
    image_size: int
    patch: int
    class_token: bool = True
    source: str = ""

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch) ** 2

    @property
    def encoder_tokens(self) -> int:
        return self.patches + (1 if self.class_token else 0)

    def architecture(self) -> Architecture:
        return _vit_arch(self)

    def params(self) -> float:
        return self.layers * (4 * self.hidden**2 + 2 * self.hidden * self.mlp_width)


@lru_cache(maxsize=16)
def _vit_arch(enc: VisionEncoder) -> Architecture:
    return bidirectional_transformer(enc.name, hidden=enc.hidden, layers=enc.layers, heads=enc.heads,
                                     mlp_width=enc.mlp_width, out_dim=enc.hidden,
                                     notes=(f"{enc.name}: {enc.source}",) if enc.source else ())


CLIP_VIT_L_336 = VisionEncoder(
    "clip-vit-l-14-336", hidden=1024, layers=24, heads=16, mlp_width=4096, image_size=336, patch=14,
    source="openai/clip-vit-large-patch14-336 vision_config: hidden 1024, 24 layers, 16 heads, intermediate 4096, "
           "image 336, patch 14 -> 576 patches + class token (LLaVA-1.5/NeXT feed the 576 patch features)")


def encoder_deployment(enc: VisionEncoder, gpu="h100-sxm", *, weights: str | None = None,
                       activations: str | None = None) -> Deployment:
    from model.serving.deployment import deployment

    return deployment(enc.architecture(), gpu, weights=weights, activations=activations, attention_convention="square")


def encoder_seconds(enc_dep: Deployment, enc: VisionEncoder, partitions: int, frames: int = 1) -> float:
    """Encoding `partitions` crops (x frames) as one batch of non-causal forwards."""
    t = enc.encoder_tokens
    return float(enc_dep.step(partitions * frames, t, 0, n_logit=t).time_s[0])


def prefill_seconds(llm: Deployment, tokens: int) -> float:
    """One prompt of `tokens` tokens prefilled in one step (batch 1)."""
    return float(llm.step(1, tokens, 0).time_s[0])


def vlm_ttft(llm: Deployment, enc_dep: Deployment, enc: VisionEncoder, *, partitions: int, text_tokens: int,
             keep: float = 1.0, frames: int = 1, tokens_per_partition: int | None = None) -> dict[str, float]:
    """TTFT of one request: encoder over every crop, then prefill of kept visual + text tokens."""
    per = tokens_per_partition or enc.patches
    vis = visual_tokens(partitions, per, keep, frames)
    e = encoder_seconds(enc_dep, enc, partitions, frames)
    p = prefill_seconds(llm, vis + text_tokens)
    return {"visual_tokens": vis, "tokens": vis + text_tokens, "encoder_s": e, "prefill_s": p, "ttft_s": e + p}


def prefill_flops(llm: Deployment, tokens: int) -> float:
    return float(llm.step(1, tokens, 0).ops.total("flops")[0])


def iso_flop_visual_tokens(llm_params: float, budget_flops: float, text_tokens: int) -> float:
    """Visual tokens affordable at a prefill budget with the linear term 2 P (V + T): V = C / (2 P) - T."""
    if llm_params <= 0:
        raise RidgeplanError("llm_params", f"must be > 0, got {llm_params}")
    return budget_flops / (2.0 * llm_params) - text_tokens


def prefill_peak_memory(llm: Deployment, tokens: int, *, eager_attention: bool = True, all_logits: bool = True,
                        softmax_bytes: float = 4.0) -> dict[str, float]:
    """Peak bytes of one prompt's prefill on one GPU in an eager runtime (see the module doc).

    The transient is the largest of: one layer's attention scores (h S^2 elements at the activation width plus
    their fp32 softmax) when attention is eager, the MLP's intermediates, and the prompt's fp32 logits."""
    s = llm.step(1, tokens, 0)
    arch = llm.arch
    b_a = llm.symbols()["b_a"]
    tp = llm.layout.tp
    heads = max(g.attention.num_heads for g in arch.groups) / tp
    scores = heads * tokens * tokens * (b_a + softmax_bytes) if eager_attention else 0.0
    inter = max(g.mlp.intermediate_size for g in arch.groups) / tp
    mlp = tokens * inter * 3 * b_a
    logits = tokens * arch.vocab_size * (4.0 + b_a) if all_logits else arch.vocab_size * 4.0
    weights = float(s.memory.weights_bytes[0])
    kv = float(s.memory.kv_cache_bytes[0])
    transient = max(scores, mlp, logits)
    return {"weights_bytes": weights, "kv_bytes": kv, "attention_scores_bytes": scores, "mlp_bytes": mlp,
            "logits_bytes": logits, "transient_bytes": transient, "peak_bytes": weights + kv + transient}


def largest_llm_within(candidates: list[tuple[str, Deployment]], budget_s: float, tokens: int) -> str | None:
    """Among (name, deployment) pairs ordered small to large, the largest whose prefill of `tokens` fits the
    budget (None if none does)."""
    best = None
    for name, dep in candidates:
        if prefill_seconds(dep, tokens) <= budget_s * (1 + 1e-9):
            best = name
    return best
