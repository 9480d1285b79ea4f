"""Workloads: request input/output lengths (fixed, a histogram, a parametric distribution or a trace) and the
load (a fixed concurrency, or Poisson arrivals at a rate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.errors import MAX_SEQUENCES, MAX_TOKENS, RidgeplanError, require_fraction, require_positive, require_sizes

MAX_SIGMA = 5.0  # log-normal shape: e^5 ~ 150x spread around the median is already far wider than any trace
MAX_POINTS = 200  # quantile points (or histogram bins) per axis of a distribution (points^2 bins)


def _numbers(field: str, value, name: str | None = None) -> np.ndarray:
    """`value` as a float array, or a RidgeplanError naming the field (strings, None, ragged lists)."""
    if value is None or isinstance(value, (str, bytes)):
        raise RidgeplanError(name or field, f"{field} must be numbers, got {value!r}")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise RidgeplanError(name or field, f"{field} must be numbers, got {value!r}") from None


def mean_decode_context_tokens(input_len, output_len) -> np.ndarray:
    """Mean tokens cached during a request's decode steps: I + (O - 1) / 2 (the prompt plus half of the tokens
    generated after the first)."""
    i, o = np.asarray(input_len, dtype=float), np.asarray(output_len, dtype=float)
    return i + np.maximum(o - 1, 0) / 2


def charged_context_tokens(admission: str, input_len, output_len) -> np.ndarray:
    """Context each sequence is charged in the KV pool: the full I + O when the engine reserves whole requests
    (admission "max_length"), else the mean I + O / 2 over its life (admit on current length, preempt when full)."""
    i, o = np.asarray(input_len, dtype=float), np.asarray(output_len, dtype=float)
    return i + (o if admission == "max_length" else o / 2)


LENGTH_KINDS = ("fixed", "lognormal")


@dataclass(frozen=True)
class Lengths:
    """A discrete distribution of (input_len, output_len) pairs with probabilities."""

    input_len: np.ndarray
    output_len: np.ndarray
    weight: np.ndarray
    label: str = ""

    def __post_init__(self) -> None:
        i, o, w = (np.atleast_1d(_numbers(name, x)) for name, x in
                   (("input_len", self.input_len), ("output_len", self.output_len), ("weight", self.weight)))
        if not (i.shape == o.shape == w.shape) or i.ndim != 1 or i.size == 0:
            raise RidgeplanError("lengths", "input_len, output_len and weight must be equal-length 1-D arrays")
        for name, x in (("input_len", i), ("output_len", o)):
            require_sizes(name, x, upper=MAX_TOKENS)
            if np.any(x < 1):
                raise RidgeplanError("lengths", "every input and output length must be >= 1 token")
        require_sizes("weight", w)
        if w.sum() <= 0:
            raise RidgeplanError("weight", "weights must be >= 0 and not all zero")
        object.__setattr__(self, "input_len", np.round(i))
        object.__setattr__(self, "output_len", np.round(o))
        object.__setattr__(self, "weight", w / w.sum())

    @classmethod
    def fixed(cls, input_len: int, output_len: int) -> Lengths:
        require_positive("input_len", input_len, integer=True)
        require_positive("output_len", output_len, integer=True)
        return cls(np.array([input_len]), np.array([output_len]), np.array([1.0]), f"{input_len} in / {output_len} out")

    @classmethod
    def from_samples(cls, input_len, output_len, bins: int = 16, label: str = "trace") -> Lengths:
        """A histogram of observed (input, output) pairs, binned jointly on a log grid (at most bins x bins)."""
        i = np.atleast_1d(_numbers("input_len", input_len, "trace"))
        o = np.atleast_1d(_numbers("output_len", output_len, "trace"))
        require_positive("bins", bins, integer=True)
        if bins > MAX_POINTS:
            raise RidgeplanError("bins", f"must be at most {MAX_POINTS}, got {bins!r}")
        bins = int(bins)
        if i.size == 0 or i.shape != o.shape or i.ndim != 1:
            raise RidgeplanError("trace", "needs equal numbers of input and output lengths (at least one, as 1-D "
                                 "sequences)")
        require_sizes("trace input_len", i, upper=MAX_TOKENS)
        require_sizes("trace output_len", o, upper=MAX_TOKENS)
        if np.any(i < 1) or np.any(o < 1):
            raise RidgeplanError("trace", "lengths must be >= 1 token")
        ei = np.unique(np.geomspace(i.min(), i.max() + 1, bins + 1))
        eo = np.unique(np.geomspace(o.min(), o.max() + 1, bins + 1))
        bi = np.clip(np.searchsorted(ei, i, side="right") - 1, 0, len(ei) - 2)
        bo = np.clip(np.searchsorted(eo, o, side="right") - 1, 0, len(eo) - 2)
        import pandas as pd  # only traces need it (importing pandas costs ~0.5 s)

        df = pd.DataFrame({"bi": bi, "bo": bo, "i": i, "o": o})
        g = df.groupby(["bi", "bo"]).agg(i=("i", "mean"), o=("o", "mean"), n=("i", "size")).reset_index()
        return cls(g["i"].to_numpy(), g["o"].to_numpy(), g["n"].to_numpy(float), label)

    @classmethod
    def uniform_range(cls, input_len: int, output_len: int, ratio: float, points: int = 9) -> Lengths:
        """Independent input and output lengths uniform on [int(ratio x L), L], as a benchmark client's
        --random-range-ratio draws them (vLLM's benchmark_serving.py sample_random_requests: np.random.randint per
        request), discretised on `points` evenly spaced lengths each (same mean, (lo + L) / 2). Ratio 1: fixed."""
        require_positive("input_len", input_len, integer=True)
        require_positive("output_len", output_len, integer=True)
        if not 0 < ratio <= 1:
            raise RidgeplanError("ratio", f"a range ratio must be in (0, 1], got {ratio!r}")
        require_positive("points", points, integer=True)
        if points > MAX_POINTS:
            raise RidgeplanError("points", f"must be at most {MAX_POINTS}, got {points!r}")
        if ratio == 1:
            return cls.fixed(input_len, output_len)
        gi = np.linspace(max(int(ratio * input_len), 1), input_len, int(points))
        go = np.linspace(max(int(ratio * output_len), 1), output_len, int(points))
        ii, oo = np.meshgrid(gi, go, indexing="ij")
        return cls(ii.ravel(), oo.ravel(), np.ones(ii.size), f"{input_len} in / {output_len} out, range ratio {ratio:g}")

    @classmethod
    def lognormal(cls, input_mean: float, output_mean: float, sigma: float = 0.8, points: int = 12) -> Lengths:
        """Independent log-normal input and output lengths with the given means, discretised on quantiles."""
        require_sizes("input_mean", input_mean, allow_zero=False, upper=MAX_TOKENS)
        require_sizes("output_mean", output_mean, allow_zero=False, upper=MAX_TOKENS)
        require_positive("sigma", sigma, allow_zero=True)
        if sigma > MAX_SIGMA:
            raise RidgeplanError("sigma", f"must be at most {MAX_SIGMA:g} (a log-normal spread of e^{MAX_SIGMA:g}), "
                                 f"got {sigma!r}")
        require_positive("points", points, integer=True)
        if points > MAX_POINTS:
            raise RidgeplanError("points", f"must be at most {MAX_POINTS}, got {points!r}")
        points = int(points)
        q = (np.arange(points) + 0.5) / points
        from scipy.special import ndtri  # the normal quantile (scipy.stats.norm.ppf) without importing scipy.stats

        z = ndtri(q)
        shape = np.exp(sigma * z - sigma**2 / 2)
        ii, oo = np.meshgrid(np.clip(input_mean * shape, 1, MAX_TOKENS), np.clip(output_mean * shape, 1, MAX_TOKENS),
                             indexing="ij")
        return cls(ii.ravel(), oo.ravel(), np.ones(ii.size), f"log-normal (means {input_mean:g}/{output_mean:g})")

    @classmethod
    def from_csv(cls, path: str | Path, bins: int = 16) -> Lengths:
        path = Path(path)
        if not path.is_file():
            raise RidgeplanError("trace", f"no such file {str(path)!r}")
        import pandas as pd

        try:
            df = pd.read_csv(path)
        except UnicodeDecodeError as err:
            raise RidgeplanError("trace", f"{path.name} is not UTF-8 text (byte {err.start}): give a CSV file") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise RidgeplanError("trace", f"{path.name} is not a readable CSV: {str(err).splitlines()[0]}") from None
        for col in ("input_len", "output_len"):
            if col not in df:
                raise RidgeplanError("trace", f"column {col!r} is missing", ["input_len", "output_len", "timestamp"])
        for col in ("input_len", "output_len"):
            if not pd.api.types.is_numeric_dtype(df[col]):
                bad = df[col][pd.to_numeric(df[col], errors="coerce").isna()].iloc[0]
                raise RidgeplanError("trace", f"column {col!r} must hold numbers of tokens; found {bad!r}")
        return cls.from_samples(df["input_len"], df["output_len"], bins=bins, label=path.name)

    @classmethod
    def from_input(cls, input_len: int, output_len: int, kind: str = "fixed", trace: str | Path | None = None) -> Lengths:
        """The lengths a user asks for: a trace CSV when given, else `kind` ("fixed" or "lognormal" around the
        given means). The one place the CLI and the app turn their length inputs into a distribution."""
        if trace:
            return cls.from_csv(trace)
        if kind == "lognormal":
            return cls.lognormal(input_len, output_len)
        if kind == "fixed":
            return cls.fixed(input_len, output_len)
        raise RidgeplanError("lengths", f"unknown length distribution {kind!r}", list(LENGTH_KINDS))

    @property
    def mean_input(self) -> float:
        return float(self.weight @ self.input_len)

    @property
    def mean_output(self) -> float:
        return float(self.weight @ self.output_len)

    def describe(self) -> str:
        if self.input_len.size == 1:
            return f"{int(self.input_len[0])} in / {int(self.output_len[0])} out"
        return f"{self.label or 'distribution'}: mean {self.mean_input:,.0f} in / {self.mean_output:,.0f} out over {self.input_len.size} bins"


@dataclass(frozen=True)
class Workload:
    """Requests with `lengths`, offered either at a fixed `concurrency` (closed loop) or a Poisson `rate`
    (requests/s, open loop). Neither: the engine runs at its own maximum batch (an offline benchmark)."""

    lengths: Lengths
    concurrency: float | None = None
    rate_per_s: float | None = None
    prefix_hit_rate: float = 0.0  # fraction of prompt tokens whose KV is reused from a prefix cache
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.rate_per_s is not None:
            raise RidgeplanError("workload", "give a concurrency or a rate, not both")
        if not isinstance(self.lengths, Lengths):
            raise RidgeplanError("lengths", f"must be a Lengths, got {type(self.lengths).__name__}")
        if self.concurrency is not None:
            require_sizes("concurrency", self.concurrency, allow_zero=False, upper=MAX_SEQUENCES)
        if self.rate_per_s is not None:
            require_positive("rate", self.rate_per_s)
        require_fraction("prefix_hit_rate", self.prefix_hit_rate, high_open=True)

    @property
    def mode(self) -> str:
        return "rate" if self.rate_per_s is not None else ("concurrency" if self.concurrency is not None else "max")
