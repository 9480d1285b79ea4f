"""Load generators as the common benchmark clients define them.

- Closed loop (`vllm bench serve --max-concurrency C`, aiperf/genai-perf `--concurrency C`): C clients all
  send at t = 0 and each sends its next request the moment the previous one completes, N requests in all; the
  first `warmup` requests are left out of the statistics.
- Open loop: arrivals at rate R, Poisson (exponential gaps), or gamma gaps with a burstiness factor b
  (shape b, scale 1 / (R b): vllm bench serve's --burstiness; b = 1 is Poisson, b < 1 burstier).
- Trace replay: a CSV with input_len and output_len, optionally arrival_s (replayed as given) and prefix_id
  (requests with the same id share a prompt prefix: its length is the column prefix_len when given, else
  the shortest prompt of that id minus one token).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.errors import RidgeplanError, require_positive
from model.serving.workload import Lengths

if TYPE_CHECKING:  # pandas only for traces: importing it costs ~0.5 s, more than the plan's re-checks
    import pandas as pd

LOAD_MODES = ("closed", "poisson", "gamma", "trace")
TRACE_COLUMNS = ("input_len", "output_len", "arrival_s", "prefix_id", "prefix_len", "timestamp")

# Protocol defaults (the number of requests and warm-up behind a published measurement is rarely stated):
# vllm bench serve sends --num-prompts 1000 and no warm-up; for a closed loop we send at least 10 x C so the
# t = 0 wave is a tenth of the sample. Sensitivity: model.serving.simulator.run.protocol_sensitivity.
DEFAULT_REQUESTS = 1000
DEFAULT_CLOSED_PER_CLIENT = 10
DEFAULT_WARMUP = 0


@dataclass(frozen=True)
class Load:
    """What the client does: `mode` closed (concurrency), poisson or gamma (rate), or trace."""

    mode: str
    concurrency: int | None = None
    rate_per_s: float | None = None
    burstiness: float = 1.0
    num_requests: int | None = None
    warmup: int = DEFAULT_WARMUP

    def __post_init__(self) -> None:
        if self.mode not in LOAD_MODES:
            raise RidgeplanError("load", f"unknown load mode {self.mode!r}", LOAD_MODES)
        if self.mode == "closed":
            if self.concurrency is None:
                raise RidgeplanError("concurrency", "a closed loop needs a concurrency")
            require_positive("concurrency", self.concurrency, integer=True)
        if self.mode in ("poisson", "gamma"):
            if self.rate_per_s is None:
                raise RidgeplanError("rate", "an open loop needs a rate (requests/s)")
            require_positive("rate", self.rate_per_s)
            require_positive("burstiness", self.burstiness)
        if self.num_requests is not None:
            require_positive("num_requests", self.num_requests, integer=True)
            if self.mode == "closed" and self.num_requests < self.concurrency:
                raise RidgeplanError("num_requests", f"must be >= the concurrency ({self.concurrency}), got "
                                     f"{self.num_requests}")
        require_positive("warmup", self.warmup, integer=True, allow_zero=True)
        if self.warmup >= self.requests:
            raise RidgeplanError("warmup", f"must be below the number of requests ({self.requests}), got {self.warmup}")

    @property
    def requests(self) -> int:
        if self.num_requests is not None:
            return int(self.num_requests)
        if self.mode == "closed":
            return max(DEFAULT_REQUESTS, DEFAULT_CLOSED_PER_CLIENT * int(self.concurrency))
        return DEFAULT_REQUESTS

    def describe(self) -> str:
        if self.mode == "closed":
            head = f"closed loop, {self.concurrency} clients all starting at t = 0"
        elif self.mode == "trace":
            head = "trace replay"
        elif self.mode == "poisson":
            head = f"Poisson arrivals at {self.rate_per_s:g} req/s"
        else:
            head = f"gamma arrivals at {self.rate_per_s:g} req/s, burstiness {self.burstiness:g}"
        return f"{head}; {self.requests} requests, the first {self.warmup} left out as warm-up"


@dataclass(frozen=True)
class Requests:
    """The requests of one run (arrival_s is NaN where a closed loop decides it)."""

    input_len: np.ndarray
    output_len: np.ndarray
    arrival_s: np.ndarray
    cached_len: np.ndarray  # prompt tokens whose KV a prefix cache can serve
    prefix_id: np.ndarray  # -1: no shared prefix

    @property
    def n(self) -> int:
        return self.input_len.size


def sample_lengths(lengths: Lengths, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n (input, output) pairs drawn from the distribution (fixed lengths: all equal)."""
    if lengths.input_len.size == 1:
        return np.full(n, lengths.input_len[0]), np.full(n, lengths.output_len[0])
    idx = rng.choice(lengths.input_len.size, size=n, p=lengths.weight)
    return lengths.input_len[idx], lengths.output_len[idx]


def make_requests(load: Load, lengths: Lengths, rng: np.random.Generator, prefix_hit_rate: float = 0.0) -> Requests:
    n = load.requests
    i, o = sample_lengths(lengths, n, rng)
    if load.mode == "closed":
        arrival = np.full(n, np.nan)
    elif load.mode == "poisson":
        arrival = np.cumsum(rng.exponential(1.0 / load.rate_per_s, n)) - 0.0
    else:
        b = load.burstiness
        arrival = np.cumsum(rng.gamma(b, 1.0 / (load.rate_per_s * b), n))
    if load.mode != "closed":
        arrival = arrival - arrival[0]  # the first request opens the run
    cached = np.floor(i * prefix_hit_rate)
    return Requests(i.astype(float), o.astype(float), arrival, cached, np.full(n, -1))


def read_trace(path: str | Path) -> pd.DataFrame:
    """Read and check a trace CSV (see the module docstring for its columns)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise RidgeplanError("trace", f"no such file {str(path)!r}")
    df = pd.read_csv(path)
    for col in ("input_len", "output_len"):
        if col not in df:
            raise RidgeplanError("trace", f"column {col!r} is missing", TRACE_COLUMNS)
    if df.empty:
        raise RidgeplanError("trace", "has no rows")
    for col in ("input_len", "output_len", "arrival_s", "prefix_len"):
        if col not in df:
            continue
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() | ~np.isfinite(v) | (v < (1 if col in ("input_len", "output_len") else 0))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            need = ">= 1" if col in ("input_len", "output_len") else ">= 0"
            raise RidgeplanError(f"trace.{col}", f"row {row + 1}: must be a number {need}, got {df[col].iloc[row]}")
        df[col] = v
    if "arrival_s" in df and (np.diff(df["arrival_s"].to_numpy()) < 0).any():
        raise RidgeplanError("trace.arrival_s", "arrival times must not decrease")
    return df


def trace_requests(df: pd.DataFrame, load: Load, rng: np.random.Generator, prefix_hit_rate: float = 0.0) -> Requests:
    """Requests from a trace: arrival_s replayed when present, else Poisson at the load's rate (or a closed
    loop at its concurrency)."""
    import pandas as pd

    i = df["input_len"].to_numpy(float).round()
    o = df["output_len"].to_numpy(float).round()
    n = i.size
    if load.mode == "closed":  # a closed loop sends on completions, whatever the trace's times
        arrival = np.full(n, np.nan)
    elif "arrival_s" in df:
        arrival = df["arrival_s"].to_numpy(float)
        arrival = arrival - arrival[0]
    elif load.rate_per_s is not None:
        arrival = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0 / load.rate_per_s, n - 1))])
    else:
        raise RidgeplanError("trace", "has no arrival_s column: give a rate or a concurrency to replay it with",
                             TRACE_COLUMNS)
    cached = np.floor(i * prefix_hit_rate)
    pid = np.full(n, -1)
    if "prefix_id" in df:
        ids = df["prefix_id"]
        codes, uniq = pd.factorize(ids.astype(str).where(ids.notna(), None))
        pid = codes
        shared = df["prefix_len"].to_numpy(float) if "prefix_len" in df else None
        for k in range(len(uniq)):
            rows = codes == k
            plen = shared[rows] if shared is not None else np.full(rows.sum(), i[rows].min() - 1)
            cached[rows] = np.maximum(cached[rows], np.minimum(plen, i[rows] - 1))
    return Requests(i, o, arrival, cached, pid)
