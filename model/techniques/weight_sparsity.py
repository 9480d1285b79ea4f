"""Unstructured weight sparsity, "load as sparse, compute as dense" (Flash-LLM, sparse
fine-tuning).

A weight matrix with sparsity s keeps nnz = (1 - s) P non-zeros, each stored as a value plus an index:
    bytes = (1 - s) * P * (b_val + b_idx)
The kernel decompresses tiles on chip and runs the dense GEMM on tensor cores, so FLOPs stay dense while
weight traffic and resident bytes shrink. A memory-bound step speeds up by at most
    b_w / ((1 - s) (b_val + b_idx)),
and a model fits on fewer GPUs. Byte reductions from quantizing the values multiply with sparsity.
"""

from __future__ import annotations

import numpy as np

from model.errors import RidgeplanError
from model.precision import number_format
from model.serving.deployment import Deployment
from model.serving.overrides import SymbolOverride, override_symbols


def _check(sparsity, value_bytes, index_bytes) -> np.ndarray:
    s = np.asarray(sparsity, dtype=float)
    if np.any((s < 0) | (s >= 1)):
        raise RidgeplanError("sparsity", f"must be in [0, 1), got {sparsity}")
    if not (value_bytes > 0 and index_bytes >= 0):
        raise RidgeplanError("value_bytes", "value bytes must be > 0 and index bytes >= 0")
    return s


def sparse_bytes_per_weight(sparsity, value_bytes: float = 2.0, index_bytes: float = 2.0) -> np.ndarray:
    """Stored bytes per dense weight position: (1 - s)(b_val + b_idx)."""
    s = _check(sparsity, value_bytes, index_bytes)
    return (1 - s) * (value_bytes + index_bytes)


def sparse_weight_bytes(params, sparsity, value_bytes: float = 2.0, index_bytes: float = 2.0) -> np.ndarray:
    """Bytes of `params` weights stored sparse: nnz (b_val + b_idx)."""
    return np.asarray(params, dtype=float) * sparse_bytes_per_weight(sparsity, value_bytes, index_bytes)


def memory_bound_speedup_limit(dense_bytes_per_weight: float, sparsity, value_bytes: float = 2.0,
                               index_bytes: float = 2.0) -> np.ndarray:
    """Upper bound of a weight-streaming step's speed-up: b_w / ((1 - s)(b_val + b_idx))."""
    return dense_bytes_per_weight / sparse_bytes_per_weight(sparsity, value_bytes, index_bytes)


def sparse_weights(d: Deployment, sparsity: float, value_bytes: float | None = None,
                   index_bytes: float = 2.0) -> SymbolOverride:
    """`d` with its dense (and expert) layer weights stored sparse and loaded as sparse, computed as dense.

    `value_bytes` defaults to the bytes of the deployment's weight format (so sparsity composes with
    quantization); embeddings and the LM head stay dense."""
    vb = number_format(d.precision.weights).bytes_per_element if value_bytes is None else value_bytes
    b_w = float(sparse_bytes_per_weight(sparsity, vb, index_bytes))
    eb = number_format(d.precision.expert_weights).bytes_per_element if value_bytes is None else value_bytes
    b_e = float(sparse_bytes_per_weight(sparsity, eb, index_bytes))
    note = (f"unstructured sparsity {sparsity:.0%}: non-zeros stored as {vb:g} B value + {index_bytes:g} B index "
            f"({b_w:.3g} B per dense weight), decompressed on chip and computed as dense")
    return override_symbols(d, note, b_w=b_w, b_e=b_e)
