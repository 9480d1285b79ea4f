"""model.training.analysis: GPT shapes, memory limits, stage balance and layer sizes, each against a hand derivation."""

from __future__ import annotations

import numpy as np
import pytest

from model.architecture import load_architecture
from model.errors import RidgeplanError
from model.operators.params import parameter_counts
from model.training.analysis import gpt_architecture, layer_parameters, max_fitting, stage_flop_imbalance
from model.training.config import Candidates, TrainingSettings
from model.training.step import evaluate_candidates
from model.training.cluster import cluster_for


def test_gpt_architecture_parameter_count():
    """GPT-3 175B shape (96 x 12288, 96 heads, V 51200, 2048 positions): per layer 12·d² + 13·d (QKV, output and
    MLP weights and biases, two LayerNorms), plus tied embeddings V·d, learned positions 2048·d and the final
    LayerNorm 2·d. Hand: 96 x (12 x 12288² + 13 x 12288) + (51200 + 2048) x 12288 + 2 x 12288 = 174.6e9."""
    arch = gpt_architecture("gpt3-175b", 96, 12288, 96)
    d = 12288
    hand = 96 * (12 * d * d + 13 * d) + (51200 + 2048) * d + 2 * d
    assert parameter_counts(arch).total == pytest.approx(hand, rel=1e-3)
    assert arch.num_layers == 96 and arch.hidden_size == d


def test_layer_parameters_opt_175b():
    """One OPT-175B layer: 12·d² + 13·d = 12 x 12288² + 13 x 12288 = 1,812,099,072 parameters (3.62 GB at FP16)."""
    arch = load_architecture("opt-175b")
    assert layer_parameters(arch) == pytest.approx(12 * 12288**2 + 13 * 12288)
    with pytest.raises(RidgeplanError) as err:
        layer_parameters(arch, group=5)
    assert err.value.field == "group"


@pytest.mark.parametrize("vocab, loss", [(128_256, 0.345), (256_000, 0.495)])
def test_stage_flop_imbalance_matches_layer_equivalents(vocab, loss):
    """32 layers of d = 4096 over PP = 8, LM head (2·d·V FLOPs per token = V/(12·d) layers) on the last stage:
    stages of 4 layers and 4 + 2.61 -> 1 − (34.61/8)/6.61 = 34.5% (V = 256,000: 49.5%); spread: 0."""
    arch = gpt_architecture("gpt-7b-like", 32, 4096, 32, vocab=vocab)
    assert stage_flop_imbalance(arch, 8) == pytest.approx(loss, abs=0.005)
    assert stage_flop_imbalance(arch, 8, vocab_parallel=True) < 1e-9
    assert stage_flop_imbalance(arch, 1) == pytest.approx(0.0)
    with pytest.raises(RidgeplanError):
        stage_flop_imbalance(arch, 0)


def test_max_fitting_is_the_largest_fitting_value():
    """The largest micro-batch that fits equals a direct scan of evaluate_candidates; more TP never lowers it; a
    value list where nothing fits gives 0."""
    arch = load_architecture("llama-3.1-8b")
    cluster = cluster_for("h100-sxm", "dgx-h100")
    values = np.arange(1, 65, dtype=float)
    got = max_fitting(arch, cluster, "micro_batch", values, zero=1, dp=8, seq_len=4096, global_batch=8 * values,
                      recompute=0)
    r = evaluate_candidates(arch, cluster, Candidates.from_columns(micro_batch=values, zero=1, dp=8, seq_len=4096,
                                                                   global_batch=8 * values, recompute=0), TrainingSettings())
    assert got == values[r.fits].max()
    assert 1 <= got < 64
    more_tp = max_fitting(arch, cluster, "micro_batch", values, zero=1, tp=2, dp=4, seq_len=4096,
                          global_batch=4 * values, recompute=0)
    assert more_tp >= got
    assert max_fitting(load_architecture("llama-3.1-70b"), cluster, "micro_batch", values, zero=0,
                       global_batch=values) == 0.0
    with pytest.raises(RidgeplanError):
        max_fitting(arch, cluster, "micro_batch", [])
