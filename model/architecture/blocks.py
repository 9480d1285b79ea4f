"""The shape of a decoder: layer groups of an attention (token-mixing) block and an MLP block.

`Architecture` is what the operator graph is built from; `model.architecture.config` fills it from a config.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

AttentionKind = Literal["softmax", "mla", "linear", "none"]  # none: a layer without attention (NAS-pruned)


@dataclass(frozen=True)
class Attention:
    """One attention block's shape. `window` None means full attention."""

    kind: AttentionKind
    num_heads: int
    num_kv_heads: int
    head_dim: int  # query/key head dim (softmax); for MLA the no-RoPE + RoPE query head dim
    v_head_dim: int
    window: int | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    output_gate: bool = False  # q_proj also emits a sigmoid gate for the attention output (Qwen3-Next)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma-3)
    # the q/k RMSNorm runs over all heads at once (MiniMax-M2 qk_norm_type "per_layer": weights of heads x head_dim);
    # under TP each rank holds some heads, so the engines all-reduce the squared sums across the TP ranks
    qk_norm_all_heads: bool = False
    sinks: bool = False  # learned per-head attention sink logits (gpt-oss)
    rotary_dim: int | None = None
    # MLA (DeepSeek-V2/V3)
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    # linear attention (Gated DeltaNet); a state of key_dim x value_dim per value head
    linear_key_heads: int = 0
    linear_value_heads: int = 0
    linear_key_dim: int = 0
    linear_value_dim: int = 0
    conv_kernel: int = 0
    # "gated_deltanet" (Qwen3-Next/3.5: q, k, v, z projections plus beta and decay per value head) or "mamba2"
    # (Nemotron-H: x, z, B, C projections plus dt per head; B and C are the keys and queries of n_groups groups)
    linear_variant: str = "gated_deltanet"
    # DeepSeek sparse attention (DSA; DeepSeek-V3.2, GLM-5): a lightning indexer scores every cached key with
    # `indexer_heads` heads of `indexer_dim`, then each query attends to its top `sparse_topk` keys only
    sparse_topk: int | None = None
    indexer_heads: int = 0
    indexer_dim: int = 0
    # DeepSeek-V4 hybrid attention (kind softmax, one shared K=V head of head_dim): a sliding window of raw KV plus,
    # when compress_ratio > 0, one compressed entry per compress_ratio tokens (4: CSA, overlapping windows, an
    # indexer keeps the top sparse_topk entries; 128: HCA, every entry attended); grouped low-rank output
    compress_ratio: int | None = None
    shared_kv: bool = False  # keys and values are one cached vector
    o_groups: int = 0
    o_lora_rank: int = 0

    @property
    def kv_features_per_head(self) -> int:
        """K plus V features one KV head stores per token (head_dim + v_head_dim)."""
        return self.head_dim + self.v_head_dim

    @property
    def kv_width(self) -> int:
        """K plus V features per token of one layer over all KV heads (the uncompressed K/V projection width)."""
        return self.num_kv_heads * self.kv_features_per_head


@dataclass(frozen=True)
class Mlp:
    """Feed-forward block: dense (gated or plain) or mixture-of-experts."""

    kind: Literal["dense", "moe", "none"]  # none: a mixer-only layer (Nemotron-H Mamba/attention blocks)
    intermediate_size: int  # dense: FFN width; moe: unused (see expert_intermediate_size)
    gated: bool = True  # SwiGLU/GeGLU: gate + up + down (3 matrices); plain: up + down (2)
    bias: bool = False
    activation: str = "silu"
    num_experts: int = 0
    top_k: int = 0
    expert_intermediate_size: int = 0
    shared_intermediate_size: int = 0  # all shared experts together (0: none)
    shared_expert_gate: bool = False  # a d -> 1 sigmoid gate on the shared expert output (Qwen MoE)
    router_bias: bool = False
    expert_bias: bool = False
    latent_size: int = 0  # latent MoE (Nemotron-3): experts work in this width between d -> latent -> d projections


NO_MLP = Mlp(kind="none", intermediate_size=0, activation="none")
NO_ATTENTION = Attention(kind="none", num_heads=0, num_kv_heads=0, head_dim=0, v_head_dim=0)


@dataclass(frozen=True)
class LayerGroup:
    """`count` identical decoder layers."""

    count: int
    attention: Attention
    mlp: Mlp
    norms_per_layer: int = 2
    parallel_block: bool = False  # attention and MLP read the same input (GPT-J, Falcon)


@dataclass(frozen=True)
class Architecture:
    name: str
    model_type: str
    hidden_size: int
    vocab_size: int
    groups: tuple[LayerGroup, ...]
    layer_order: tuple[int, ...] = ()  # group index of each layer, first to last (pipeline stages need it)
    tie_word_embeddings: bool = False
    max_position_embeddings: int | None = None
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    norm_bias: bool = False
    learned_positions: int = 0  # rows of a learned absolute position embedding (OPT, GPT-2)
    lm_head_bias: bool = False
    extra_params: int = 0  # parameters outside the modelled blocks (e.g. input projections), counted once
    hyper_connections: int = 0  # mHC residual streams (DeepSeek-V4 hc_mult); 0: a plain residual
    torch_dtype: str = "bfloat16"
    quantization: Mapping[str, Any] = field(default_factory=dict, hash=False)
    assumptions: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def num_layers(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def is_moe(self) -> bool:
        return any(g.mlp.kind == "moe" for g in self.groups)

    def with_name(self, name: str) -> Architecture:
        return replace(self, name=name)
