"""Small analyses on top of the training model: GPT-shaped models, memory limits, stage balance, layer sizes.

- `gpt_architecture`: a GPT-2/3-style decoder (MHA, 4d GELU MLP, LayerNorm, learned positions, tied embeddings)
  from its shape, for the published training runs that name a shape rather than a checkpoint (Megatron's 1T,
  GPT-3 175B, BERT-Large-sized encoders as decoders of the same widths).
- `max_fitting`: the largest value of one layout column (micro-batch, sequence length) that fits in memory, by
  evaluating every value in one vectorized pass of `evaluate_candidates` (SEED-C14).
- `stage_flop_imbalance`: 1 − mean/max of the forward FLOPs per pipeline stage, from the operator graph and the
  serving layer's stage assignment; with `vocab_parallel` the embedding and LM head are spread over the stages
  (SEED-A21).
- `layer_parameters`: parameters of one decoder layer of a layer group, from the operator graph's weights
  (a streamed layer of OPT-175B is 12·d² parameters, SEED-A40).
"""

from __future__ import annotations

import numpy as np

from model.architecture.catalogue import load_architecture
from model.architecture.config import Architecture
from model.errors import RidgeplanError
from model.operators.compiled import compile_graph
from model.placement.layout import stage_counts
from model.training.config import Candidates, TrainingSettings
from model.training.formulas import stage_imbalance_loss
from model.training.memory import B_W
from model.training.step import evaluate_candidates
from model.training.cluster import Cluster


def gpt_architecture(name: str, layers: int, hidden: int, heads: int, vocab: int = 51200, seq: int = 2048,
                     ffn: int | None = None) -> Architecture:
    """A GPT-style decoder as an OPT-format config (how ridgeplan reads GPT-2/3-shaped models): MHA with
    `heads` heads, a `ffn` (default 4·hidden) GELU MLP, LayerNorm with biases, learned positions, tied
    embeddings."""
    return load_architecture({"_name_or_path": name, "model_type": "opt", "hidden_size": hidden,
                              "num_hidden_layers": layers, "num_attention_heads": heads, "ffn_dim": ffn or 4 * hidden,
                              "vocab_size": vocab, "max_position_embeddings": seq, "word_embed_proj_dim": hidden,
                              "activation_function": "gelu"})


def max_fitting(arch: Architecture, cluster: Cluster, column: str, values, settings: TrainingSettings | None = None,
                **columns) -> float:
    """The largest of `values` for layout column `column` whose layout fits in memory (0.0 when none does).

    `columns` fixes the other layout columns (scalars or arrays broadcast against `values`), as in
    `Candidates.from_columns`; every value is evaluated in one vectorized pass."""
    vals = np.asarray(values, dtype=float)
    if vals.ndim != 1 or vals.size == 0:
        raise RidgeplanError(column, "needs a non-empty 1-D list of values")
    cands = Candidates.from_columns(**{column: vals}, **columns)
    r = evaluate_candidates(arch, cluster, cands, settings or TrainingSettings())
    fitting = vals[np.broadcast_to(r.fits, vals.shape)]
    return float(fitting.max()) if fitting.size else 0.0


def stage_flop_imbalance(arch: Architecture, pp: int, vocab_parallel: bool = False) -> float:
    """Throughput lost to unequal pipeline stages, 1 − mean/max of forward FLOPs per token per stage.

    One token (no attention term: the imbalance of the weights' GEMMs), stages as the serving layer assigns
    layers (embedding on the first stage, LM head on the last); `vocab_parallel` spreads the embedding and
    the LM head evenly over the stages (Vocabulary Parallelism)."""
    if pp < 1 or int(pp) != pp:
        raise RidgeplanError("pp", f"must be a positive integer, got {pp}")
    ops = compile_graph(arch).evaluate(B=1, T=1, C=0, n_logit=1)
    counts = stage_counts(arch, ops.ops, int(pp)).astype(float)
    if vocab_parallel:
        for i, op in enumerate(ops.ops):
            if op.group < 0:
                counts[:, i] = op.count / pp
    return float(stage_imbalance_loss(counts @ ops.flops[:, 0]))


def layer_parameters(arch: Architecture, group: int = 0) -> float:
    """Parameters of one decoder layer of layer group `group` (weights, biases and norms), from the graph."""
    if not 0 <= group < len(arch.groups):
        raise RidgeplanError("group", f"{arch.name} has layer groups 0-{len(arch.groups) - 1}")
    ops = compile_graph(arch).evaluate(B=1, T=1)  # 16-bit weights, biases and norms
    rows = [i for i, op in enumerate(ops.ops) if op.group == group]
    return float(sum(ops.resident_bytes[i, 0] for i in rows)) / B_W
