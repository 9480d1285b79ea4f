"""Parsers for older families whose configs name fields their own way (Falcon, OPT, GPT-J, GLM-130B)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from model.architecture.blocks import Attention, Mlp
from model.architecture.fields import Cfg

_GATED_ACTIVATIONS = {"silu", "swiglu", "gelu_pytorch_tanh", "geglu", "gelu_new_glu"}

Specs = tuple[list[tuple[Attention, Mlp]], dict[str, Any]]


def _dense_mlp(c: Cfg, *, gated: bool, bias: bool, inter_keys: tuple[str, ...] = ("intermediate_size",),
               default_inter: int | None = None, why: str = "") -> Mlp:
    inter = c.int(*inter_keys, default=default_inter, why=why)
    if inter <= 0:
        raise c.err(inter_keys[0], "must be >= 1, got 0")
    act = c.str("hidden_act", c.str("hidden_activation", c.str("activation_function", "silu")))
    return Mlp(kind="dense", intermediate_size=inter, gated=gated, bias=bias, activation=act)


def _mha(c: Cfg, hidden: int, heads: int, kv: int, bias: bool) -> Attention:
    if c.has("head_dim"):
        hd = c.int("head_dim")
    else:
        if hidden % heads:
            raise c.err("head_dim", "is absent and hidden_size is not divisible by num_attention_heads")
        hd = c.int("head_dim", default=hidden // heads,
                   why="the config class defines head_dim = hidden_size // num_attention_heads")
    return Attention(kind="softmax", num_heads=heads, num_kv_heads=kv, head_dim=hd, v_head_dim=hd,
                     qkv_bias=bias, o_bias=bias)


def parse_falcon(c: Cfg, hidden: int) -> Specs:
    layers = c.int("num_hidden_layers", "n_layer")
    heads = c.int("num_attention_heads", "n_head")
    new_arch = c.bool("new_decoder_architecture", False)
    if new_arch:
        kv = c.int("num_kv_heads", default=heads)
    else:
        kv = 1 if c.bool("multi_query", True) else heads
    hd = c.int("head_dim", default=hidden // heads, why="FalconConfig defines head_dim = hidden_size // num_attention_heads")
    bias = c.bool("bias", False)
    attn = Attention(kind="softmax", num_heads=heads, num_kv_heads=kv, head_dim=hd, v_head_dim=hd,
                     qkv_bias=bias, o_bias=bias)
    mlp = _dense_mlp(c, gated=False, bias=bias, inter_keys=("ffn_hidden_size",), default_inter=4 * hidden,
                     why="FalconConfig defaults ffn_hidden_size to 4 * hidden_size")
    mlp = replace(mlp, activation=c.str("activation", "gelu"))
    parallel = c.bool("parallel_attn", True)
    norms = 2 if (new_arch or not parallel) else 1
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True, "_norms": norms, "_parallel": parallel}


def parse_opt(c: Cfg, hidden: int) -> Specs:
    layers = c.int("num_hidden_layers")
    bias = c.bool("enable_bias", True)
    heads = c.int("num_attention_heads")
    attn = _mha(c, hidden, heads, c.int("num_key_value_heads", default=heads), bias)
    mlp = _dense_mlp(c, gated=False, bias=bias, inter_keys=("ffn_dim",))
    mlp = replace(mlp, activation=c.str("activation_function", "relu"))
    if c.int("word_embed_proj_dim", default=hidden) != hidden:
        raise c.err("word_embed_proj_dim", "differs from hidden_size (OPT-350m style); not supported")
    positions = c.int("max_position_embeddings") + 2  # OPTLearnedPositionalEmbedding keeps an offset of 2
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True, "learned_positions": positions}


def parse_gptj(c: Cfg, hidden: int) -> Specs:
    layers = c.int("n_layer")
    heads = c.int("n_head")
    hd = hidden // heads
    attn = Attention(kind="softmax", num_heads=heads, num_kv_heads=heads, head_dim=hd, v_head_dim=hd,
                     rotary_dim=c.int("rotary_dim", default=hd))
    inter = c.int("n_inner", default=4 * hidden, why="GPTJConfig defaults n_inner to 4 * n_embd")
    mlp = Mlp(kind="dense", intermediate_size=inter, gated=False, bias=True, activation=c.str("activation_function", "gelu_new"))
    c.assumptions.append("GPT-J: head_dim = n_embd // n_head as GPTJAttention defines it")
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True, "lm_head_bias": True,
                                    "_norms": 1, "_parallel": True}


def parse_glm(c: Cfg, hidden: int) -> Specs:
    layers = c.int("num_layers", "num_hidden_layers")
    heads = c.int("num_attention_heads")
    attn = _mha(c, hidden, heads, c.int("num_key_value_heads", "multi_query_group_num", default=heads), True)
    gated = c.str("hidden_act", c.str("activation", "geglu")).lower() in _GATED_ACTIVATIONS
    mlp = _dense_mlp(c, gated=gated, bias=True, inter_keys=("inner_hidden_size", "ffn_hidden_size", "intermediate_size"))
    return [(attn, mlp)] * layers, {"norm": "layernorm", "norm_bias": True}


