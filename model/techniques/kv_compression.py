"""KV-cache compression arithmetic: how rank, token-keep, bit width, a full-precision
recent window and layer mixes compose, and what a saving means for capacity and for total memory.

    KV'/KV = r_rank * kappa_keep * b / 16                      (multiplicative composition, metadata in b)
    with a 16-bit recent window of R tokens:  (R * 16 + (S - R) * r * kappa * b) / (S * 16)
    importance mixing (MiKV):  b_eff = f_hi * b_hi + (1 - f_hi) * b_lo
    hybrid stacks (LongGen):   KV'/KV = phi + (1 - phi) * keep_sparse     (phi = share of full layers)
    capacity gain = KV / KV' = 1 / (1 - saving)
    KV share of memory = total saving / KV compression         (HACK: only the KV part shrinks)

The deployment-level knobs (Deployment.kv_rank_fraction, kv_keep_ratio, kv_residual_tokens and the KV format)
apply the same composition inside the operator graph; `with_kv_bits` prices a KV whose bits per element are not
one of the listed formats (e.g. a MiKV mix).
"""

from __future__ import annotations

import numpy as np

from model.errors import RidgeplanError
from model.precision import number_format
from model.serving.deployment import Deployment
from model.serving.overrides import SymbolOverride, override_symbols


def _fraction(name: str, value) -> np.ndarray:
    v = np.asarray(value, dtype=float)
    if np.any((v < 0) | (v > 1)):
        raise RidgeplanError(name, f"must be in [0, 1], got {value}")
    return v


def bits_of(fmt) -> float:
    """Bits per element of a KV or weight format (payload + group scales), from model.precision."""
    return number_format(fmt).bits_per_element


def kv_ratio(bits=16.0, *, rank_fraction=1.0, keep_ratio=1.0, base_bits=16.0, residual_tokens=0.0,
             context=None) -> np.ndarray:
    """Compressed KV over uncompressed KV (per sequence). With `residual_tokens` > 0 the most recent
    min(R, S) tokens of a `context` of S tokens stay at `base_bits`, uncompressed."""
    _fraction("rank_fraction", rank_fraction)
    _fraction("keep_ratio", keep_ratio)
    core = (np.asarray(rank_fraction, dtype=float) * np.asarray(keep_ratio, dtype=float)
            * np.asarray(bits, dtype=float) / base_bits)
    if not np.any(np.asarray(residual_tokens) > 0):
        return core
    if context is None:
        raise RidgeplanError("context", "a residual window needs the context length")
    s = np.asarray(context, dtype=float)
    r = np.minimum(np.asarray(residual_tokens, dtype=float), s)
    return (r + (s - r) * core) / s


def kv_saving(*args, **kwargs) -> np.ndarray:
    """1 - kv_ratio(...): the share of KV memory removed."""
    return 1 - kv_ratio(*args, **kwargs)


def capacity_gain(saving) -> np.ndarray:
    """How many times more KV (sequences x context) fits when a `saving` share of it is removed: 1/(1 - saving)."""
    s = _fraction("saving", saving)
    if np.any(s >= 1):
        raise RidgeplanError("saving", "must be < 1")
    return 1 / (1 - s)


def mixed_bits(fractions, bits) -> float:
    """Average bits per element of a mix: sum f_j b_j (fractions sum to 1). Weights (MixLLM) or KV (MiKV)."""
    f = np.asarray(fractions, dtype=float)
    b = np.asarray(bits, dtype=float)
    if f.shape != b.shape or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise RidgeplanError("fractions", f"must be non-negative, match the bit widths and sum to 1, got {fractions}")
    return float(f @ b)


def hybrid_kv_ratio(full_share, sparse_keep) -> np.ndarray:
    """KV of a stack with a `full_share` of full-attention layers and the rest keeping `sparse_keep` of the
    tokens, over an all-full stack: phi + (1 - phi) keep."""
    phi = _fraction("full_share", full_share)
    return phi + (1 - phi) * _fraction("sparse_keep", sparse_keep)


def sparse_keep_for_saving(saving, full_share) -> np.ndarray:
    """Inverse of `hybrid_kv_ratio`: the token share the sparse layers must keep for a total KV `saving`."""
    phi = _fraction("full_share", full_share)
    keep = (1 - np.asarray(saving, dtype=float) - phi) / (1 - phi)
    if np.any(keep < 0):
        raise RidgeplanError("saving", f"exceeds the bound 1 - full_share = {1 - phi}")
    return keep


def kv_share_of_memory(total_saving, kv_compression) -> np.ndarray:
    """Share of total memory the KV cache held, given the total memory saving from compressing only the KV by
    `kv_compression` (both fractions): saving / compression."""
    c = _fraction("kv_compression", kv_compression)
    return _fraction("total_saving", total_saving) / c


def total_saving(kv_share, kv_compression) -> np.ndarray:
    """Total memory saving when a `kv_share` of memory is KV and the KV shrinks by `kv_compression`."""
    return _fraction("kv_share", kv_share) * _fraction("kv_compression", kv_compression)


def with_kv_bits(d: Deployment, bits_per_element: float, note: str = "") -> SymbolOverride:
    """`d` with a KV cache of `bits_per_element` bits (e.g. a mixed-precision MiKV cache), composed with the
    deployment's rank and keep fractions like any KV format."""
    if not bits_per_element > 0:
        raise RidgeplanError("bits_per_element", f"must be > 0, got {bits_per_element}")
    b_kv = bits_per_element / 8.0 * d.kv_rank_fraction * d.kv_keep_ratio
    return override_symbols(d, note or f"KV cache stored at {bits_per_element:.3g} bits per element", b_kv=b_kv)
