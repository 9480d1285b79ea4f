"""Hugging Face `config.json` → an `Architecture`: layer groups of attention and MLP blocks.

Fields are read as given (`head_dim`, `num_key_value_heads`, `intermediate_size`, MoE and MLA ranks, sliding
windows, layer types). Where a config omits a field, the default is the one the model's own Hugging Face
config class uses (e.g. `head_dim = hidden_size // num_attention_heads` for Llama, `ffn_hidden_size =
4 * hidden_size` for Falcon), and every such default is recorded in `Architecture.assumptions`.

Every field is validated where it enters (type, finiteness, range, with the field named: see `fields.py`). A
multimodal wrapper's text model (`text_config`, `language_config`, `llm_config`) is read as the model. Most
families share one parser (`decoder.py`) that decides each layer's blocks from the fields present; older
families that name fields their own way have their own (`legacy.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model.architecture.blocks import NO_ATTENTION, NO_MLP, Architecture, Attention, AttentionKind, LayerGroup, Mlp
from model.architecture.decoder import parse_decoder
from model.architecture.fields import CONFIG_HINT, Cfg
from model.architecture.legacy import parse_falcon, parse_glm, parse_gptj, parse_opt
from model.architecture.quant import checkpoint_quantization
from model.errors import RidgeplanError

__all__ = ["NO_ATTENTION", "NO_MLP", "Architecture", "Attention", "AttentionKind", "LayerGroup", "Mlp", "parse_config"]

_TEXT_KEYS = ("text_config", "language_config", "llm_config")
# Keys a wrapper may hold for its text model when the text config omits them
_INHERITED = ("tie_word_embeddings", "quantization_config", "torch_dtype", "dtype")
_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                  "mpnet", "camembert", "ernie", "nomic_bert", "modernbert", "t5", "mt5", "bart", "mbart", "pegasus",
                  "marian", "whisper", "vit", "clip", "siglip"}
_ENCODER_HEADS = ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
                  "ForConditionalGeneration")
_LEGACY = {"falcon": parse_falcon, "refinedweb": parse_falcon, "refinedwebmodel": parse_falcon, "opt": parse_opt,
           "gptj": parse_gptj, "glm": parse_glm, "glm130b": parse_glm, "glm-130b": parse_glm}


def _text_model(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The config of the text decoder: the config itself, or the text model a multimodal wrapper nests."""
    for key in _TEXT_KEYS:
        if key in data and "num_hidden_layers" not in data and "hidden_size" not in data:
            inner = data[key]
            if not isinstance(inner, Mapping):
                raise RidgeplanError(f"{name}: {key}", f"must be a JSON object, got {type(inner).__name__}",
                                     hint=CONFIG_HINT)
            merged = {k: data[k] for k in _INHERITED if k in data and inner.get(k) is None}
            merged.update(inner)
            merged["_wrapper"] = data.get("model_type")
            if not merged.get("model_type"):
                merged["model_type"] = data.get("model_type")
            return merged
    return dict(data)


def _refuse_non_decoder(c: Cfg, model_type: str) -> None:
    archs = c.data.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise c.err("architectures", f"must be a list of class names, got {archs!r}")
    encoder = model_type in _ENCODER_TYPES or c.data.get("is_encoder_decoder") is True
    heads_only = archs and all(a.endswith(_ENCODER_HEADS[:4]) or a.endswith("Model") and "CausalLM" not in a
                               for a in archs) and model_type in _ENCODER_TYPES
    if encoder or heads_only:
        raise c.err("model_type", f"{model_type or archs} is an encoder or encoder-decoder model; ridgeplan "
                    "models decoder-only causal language models")


def _runs(layer_specs: list[tuple[Attention, Mlp]], norms: int = 2, parallel: bool = False) -> list[LayerGroup]:
    """One LayerGroup per distinct (attention, MLP) pair, in order of first use; see `_layer_order`."""
    counts: dict[tuple[Attention, Mlp], int] = {}
    for spec in layer_specs:
        counts[spec] = counts.get(spec, 0) + 1
    return [LayerGroup(n, a, m, norms_per_layer=norms, parallel_block=parallel) for (a, m), n in counts.items()]


def _layer_order(layer_specs: list[tuple[Attention, Mlp]], groups: list[LayerGroup]) -> tuple[int, ...]:
    index = {(g.attention, g.mlp): i for i, g in enumerate(groups)}
    return tuple(index[s] for s in layer_specs)


def parse_config(data: Mapping[str, Any], name: str = "custom", quant_config: Mapping[str, Any] | None = None
                 ) -> Architecture:
    """Build an Architecture from a Hugging Face config dict (errors name the field at fault).

    `quant_config` is an optional `hf_quant_config.json` sidecar (ModelOpt checkpoints such as NVFP4)."""
    if not isinstance(data, Mapping):
        raise RidgeplanError("config", f"must be a JSON object, got {type(data).__name__}", hint=CONFIG_HINT)
    if not isinstance(name, str):
        name = str(name)
    data = _text_model(data, name)
    c = Cfg(data, name)
    model_type = c.str("model_type", "").lower()
    _refuse_non_decoder(c, model_type)
    if model_type not in _LEGACY and not c.has("num_attention_heads", "intermediate_size", "num_hidden_layers",
                                                 "hybrid_override_pattern"):
        raise c.err("model_type", f"unsupported model_type {model_type!r}: the config names none of "
                    "num_hidden_layers, num_attention_heads, intermediate_size")
    hidden = c.int("hidden_size", "n_embd", "d_model")
    vocab = c.int("vocab_size", "padded_vocab_size")
    extra: dict[str, Any] = {}
    if model_type in _LEGACY:
        specs, extra = _LEGACY[model_type](c, hidden)
    else:
        if model_type and not c.has("layer_types", "kv_lora_rank", "hybrid_override_pattern", "layers_block_type",
                                    "full_attention_interval") and model_type not in _KNOWN:
            c.assumptions.append(f"model_type {model_type} read as a Llama-style decoder "
                                 "(gated MLP, RMSNorm, biases only where the config says)")
        specs, extra = parse_decoder(c, hidden, model_type)
    if not specs:
        raise c.err("num_hidden_layers", "must be >= 1")
    groups = _runs(specs, norms=extra.pop("_norms", 2), parallel=extra.pop("_parallel", False))
    for g in groups:
        _check_group(g, c)
    tie_default = model_type in ("opt", "falcon", "gemma2", "gemma3_text", "gemma3", "gemma4", "gemma4_text", "glm")
    positions = c.opt_int("max_position_embeddings", "seq_length")
    quant, notes = checkpoint_quantization(c, quant_config)
    return Architecture(
        name=name, model_type=model_type, hidden_size=hidden, vocab_size=vocab, groups=tuple(groups),
        layer_order=_layer_order(specs, groups),
        tie_word_embeddings=c.bool("tie_word_embeddings", tie_default),
        max_position_embeddings=positions,
        torch_dtype=c.str("torch_dtype", c.str("dtype", "bfloat16")),
        quantization=quant,
        assumptions=tuple(c.assumptions) + notes, raw=dict(data), **extra,
    )


# model_types whose Llama-style reading is the family's own (no assumption note needed)
_KNOWN = {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "yi", "internlm2", "granite",
          "deepseek_v3", "deepseek_v2", "deepseek_v32", "kimi_k2", "gpt_oss", "gemma2", "gemma3", "gemma3_text",
          "gemma4_text", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "qwen3_vl_text", "qwen3_vl_moe_text",
          "llama4_text", "minimax_m2", "minimax_m3", "glm_moe_dsa", "mimo", "mimo_v2_flash", "step3p7", "nemotron_h",
          "nemotron-nas"}


def _check_group(g: LayerGroup, c: Cfg) -> None:
    a = g.attention
    if a.kind == "softmax" and a.num_heads % a.num_kv_heads:
        raise c.err("num_key_value_heads", f"must divide num_attention_heads ({a.num_heads}), got {a.num_kv_heads}")
    if a.kind == "softmax" and a.rotary_dim is not None and a.rotary_dim > a.head_dim:
        raise c.err("rotary_dim", f"must be at most head_dim ({a.head_dim}), got {a.rotary_dim}")
    if a.window is not None and a.window < 1:
        raise c.err("sliding_window", f"must be >= 1, got {a.window}")
    m = g.mlp
    if m.kind == "moe":
        if not (0 < m.top_k <= m.num_experts):
            raise c.err("num_experts_per_tok", f"must be between 1 and the expert count ({m.num_experts}), got {m.top_k}")
        if m.expert_intermediate_size <= 0:
            raise c.err("moe_intermediate_size", "must be >= 1")
    if m.kind == "dense" and m.intermediate_size <= 0:
        raise c.err("intermediate_size", "must be >= 1")
