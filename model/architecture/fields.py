"""Typed, bounded access to the fields of a config.json: every value is checked where it enters.

A field that is present must have the right type, be finite and lie within a sane range; the error names the
field, what it may be and, for upper bounds, the bound. Bounds exist so that a typo such as
`num_hidden_layers: 1e9` is refused at once instead of building a billion-layer model (each bound is far above
any published model: the largest decoders have ~130 layers, hidden sizes of ~25k, vocabularies of ~260k).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from model.errors import RidgeplanError

CONFIG_HINT = "Pass a Hugging Face config.json of a decoder-only model (the file next to the weights on the hub)"

MAX_LAYERS = 10_000
MAX_HIDDEN = 1 << 18  # 262,144
MAX_VOCAB = 1 << 23  # 8,388,608
MAX_WIDTH = 1 << 21  # FFN / expert / latent widths: 2,097,152
MAX_HEADS = 1 << 16
MAX_HEAD_DIM = 1 << 14
MAX_EXPERTS = 1 << 16
MAX_POSITIONS = 1 << 32  # context lengths, windows
DEFAULT_MAX = 1 << 31

# Upper bound of each integer field ridgeplan reads (fields not listed get DEFAULT_MAX).
BOUNDS: dict[str, int] = {
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "first_k_dense_replace", "decoder_sparse_step",
                     "interleave_moe_layer_step", "full_attention_interval", "num_nextn_predict_layers"), MAX_LAYERS),
    **dict.fromkeys(("hidden_size", "n_embd", "d_model", "word_embed_proj_dim"), MAX_HIDDEN),
    **dict.fromkeys(("vocab_size", "padded_vocab_size"), MAX_VOCAB),
    **dict.fromkeys(("intermediate_size", "moe_intermediate_size", "expert_intermediate_size", "ffn_hidden_size",
                     "ffn_dim", "n_inner", "inner_hidden_size", "dense_intermediate_size", "intermediate_size_mlp",
                     "shared_expert_intermediate_size", "shared_intermediate_size", "share_expert_dim",
                     "moe_shared_expert_intermediate_size", "q_lora_rank", "kv_lora_rank", "moe_latent_size"),
                    MAX_WIDTH),
    **dict.fromkeys(("num_attention_heads", "n_head", "num_heads", "num_key_value_heads", "num_kv_heads",
                     "n_head_kv", "linear_num_key_heads", "linear_num_value_heads", "index_n_heads",
                     "swa_num_attention_heads", "swa_num_key_value_heads", "num_global_key_value_heads",
                     "mamba_num_heads", "n_groups"), MAX_HEADS),
    **dict.fromkeys(("head_dim", "v_head_dim", "qk_nope_head_dim", "qk_rope_head_dim", "rotary_dim",
                     "linear_key_head_dim", "linear_value_head_dim", "index_head_dim", "swa_head_dim",
                     "swa_v_head_dim", "global_head_dim", "mamba_head_dim", "ssm_state_size",
                     "linear_conv_kernel_dim", "conv_kernel"), MAX_HEAD_DIM),
    **dict.fromkeys(("num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok",
                     "num_experts_per_token", "experts_per_token", "top_k_experts", "moe_topk", "n_shared_experts",
                     "num_shared_experts"), MAX_EXPERTS),
    **dict.fromkeys(("max_position_embeddings", "seq_length", "sliding_window", "attention_chunk_size",
                     "index_topk"), MAX_POSITIONS),
}
# Fields that must be >= 1 when present (0 is meaningless or divides by zero later).
POSITIVE = {
    "num_hidden_layers", "n_layer", "num_layers", "hidden_size", "n_embd", "d_model", "vocab_size",
    "padded_vocab_size", "num_attention_heads", "n_head", "num_heads", "num_key_value_heads", "num_kv_heads",
    "n_head_kv", "head_dim", "v_head_dim", "sliding_window", "attention_chunk_size", "decoder_sparse_step",
    "interleave_moe_layer_step", "full_attention_interval", "num_local_experts", "num_experts", "n_routed_experts",
    "num_experts_per_tok", "num_experts_per_token", "experts_per_token", "top_k_experts", "moe_topk",
    "intermediate_size", "moe_intermediate_size", "kv_lora_rank", "index_topk", "index_n_heads", "index_head_dim",
    "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
    "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "max_position_embeddings",
}


class Cfg:
    """A config dict with checked accessors; errors name `origin: field`."""

    def __init__(self, data: Mapping[str, Any], origin: str):
        self.data = data
        self.origin = origin
        self.assumptions: list[str] = []

    def err(self, key: str, message: str, allowed: Any = None) -> RidgeplanError:
        return RidgeplanError(f"{self.origin}: {key}", message, allowed, hint=CONFIG_HINT)

    def has(self, *keys: str) -> bool:
        return any(self.data.get(k) is not None for k in keys)

    def first_key(self, *keys: str) -> str | None:
        return next((k for k in keys if self.data.get(k) is not None), None)

    def int(self, *keys: str, default: int | None = None, why: str = "") -> int:
        key = self.first_key(*keys)
        if key is not None:
            return self.check_int(key, self.data[key])
        if default is None:
            raise self.err(keys[0], "is missing from config.json")
        if why:
            self.assumptions.append(f"{keys[0]} absent: {why} = {default}")
        return default

    def opt_int(self, *keys: str) -> int | None:
        key = self.first_key(*keys)
        return None if key is None else self.check_int(key, self.data[key])

    def check_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.err(key, f"must be a whole number, got {value!r}")
        if not math.isfinite(value):
            raise self.err(key, f"must be a finite whole number, got {value!r}")
        if int(value) != value:
            raise self.err(key, f"must be a whole number, got {value!r}")
        if value < 0 or (value == 0 and key in POSITIVE):
            raise self.err(key, f"must be {'>= 1' if key in POSITIVE else '>= 0'}, got {value!r}")
        bound = BOUNDS.get(key, DEFAULT_MAX)
        if value > bound:
            raise self.err(key, f"must be at most {bound:,} (ridgeplan's bound for this field), got {value!r}")
        return int(value)

    def float(self, key: str, default: float, *, low: float = 0.0, high: float = math.inf) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.err(key, f"must be a finite number, got {value!r}")
        if not low <= value <= high:
            raise self.err(key, f"must be between {low} and {high}, got {value!r}")
        return float(value)

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.err(key, f"must be true or false, got {value!r}")
        return value

    def str(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.err(key, f"must be a string, got {value!r}")
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.err(key, f"must be a JSON object, got {type(value).__name__} {_short(value)}")
        return value

    def seq(self, key: str, length: int | None = None) -> list[Any] | None:
        """A per-layer list (or None when absent); its length must equal `length` when given."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise self.err(key, f"must be a list, got {type(value).__name__} {_short(value)}")
        if length is not None and len(value) != length:
            raise self.err(key, f"must have one entry per layer ({length}), got {len(value)}")
        return list(value)

    def int_list(self, key: str, length: int | None = None) -> list[int] | None:
        items = self.seq(key, length)
        return None if items is None else [self.check_int(key, v) for v in items]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
