"""Metrics of a simulated run, with the benchmark clients' definitions.

- TTFT: arrival to the first output token.  E2E: arrival to the last token.
- TPOT: (E2E - TTFT) / (output - 1), per request, requests with one output token left out (vllm bench serve).
- ITL: the gap between consecutive tokens of a request (one sample per decoding request per iteration).
- Throughput: measured requests (and their output tokens) over the measured span, from the first measured
  arrival to the last completion; `steady_requests_per_s` counts completions while every client is still
  busy (closed loop), the rate Little's law relates to the concurrency.
- Percentiles with a 95% bootstrap interval (seeded), since a p99 over 1,000 requests rests on ~10 samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PERCENTILES = (0.5, 0.9, 0.99)


def bootstrap_ci(values: np.ndarray, q: float, rng: np.random.Generator, resamples: int = 200) -> tuple[float, float]:
    """95% bootstrap interval of the q-quantile (q < 0: the mean)."""
    if values.size < 2:
        v = float(values[0]) if values.size else float("nan")
        return v, v
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    s = values[idx]
    stat = s.mean(axis=1) if q < 0 else np.quantile(s, q, axis=1)
    lo, hi = np.quantile(stat, [0.025, 0.975])
    return float(lo), float(hi)


def summarize(values: np.ndarray, rng: np.random.Generator, weights: np.ndarray | None = None) -> dict[str, Any]:
    """Mean, median, p90, p99 and their 95% intervals."""
    if weights is not None:  # weighted samples (ITL per iteration): quantiles of the weighted distribution
        order = np.argsort(values)
        v, w = values[order], weights[order]
        cum = np.cumsum(w) / max(w.sum(), 1e-300)
        pick = {p: float(v[min(np.searchsorted(cum, p), v.size - 1)]) for p in PERCENTILES}
        return {"mean": float(np.average(values, weights=weights)), **{f"p{int(p * 100)}": x for p, x in pick.items()}}
    out: dict[str, Any] = {"mean": float(values.mean()), "mean_ci": bootstrap_ci(values, -1, rng)}
    for p in PERCENTILES:
        out[f"p{int(p * 100)}"] = float(np.quantile(values, p))
        out[f"p{int(p * 100)}_ci"] = bootstrap_ci(values, p, rng)
    return out


@dataclass
class SimResult:
    """One simulated run: per-request times, time series and the engine's counters."""

    engine: str
    load: str
    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    tokens: np.ndarray  # output tokens each request received
    measured: np.ndarray  # bool: not warm-up
    itl_s: np.ndarray
    itl_weight: np.ndarray
    series: dict[str, np.ndarray]  # t_s, queue, running, decoding, kv_fraction
    iterations: int
    preemptions: int
    concurrency: int | None = None
    seed: int = 0
    assumptions: tuple[str, ...] = field(default=())

    @property
    def ttft_s(self) -> np.ndarray:
        return (self.first_token_s - self.arrival_s)[self.measured]

    @property
    def e2e_s(self) -> np.ndarray:
        return (self.finish_s - self.arrival_s)[self.measured]

    @property
    def tpot_s(self) -> np.ndarray:
        m = self.measured & (self.output_len > 1)
        return (self.finish_s - self.first_token_s)[m] / (self.output_len[m] - 1)

    @property
    def span_s(self) -> float:
        return float(self.finish_s[self.measured].max() - self.arrival_s[self.measured].min())

    @property
    def requests_per_s(self) -> float:
        return float(self.measured.sum()) / max(self.span_s, 1e-12)

    @property
    def output_tokens_per_s(self) -> float:
        return float(self.tokens[self.measured].sum()) / max(self.span_s, 1e-12)

    @property
    def steady_requests_per_s(self) -> float:
        """Completions per second between the first measured arrival and the last arrival (closed loop: every
        client busy throughout)."""
        a = float(self.arrival_s[self.measured].min())
        b = float(self.arrival_s.max())
        if b <= a:
            return self.requests_per_s
        done = np.count_nonzero((self.finish_s > a) & (self.finish_s <= b))
        return done / (b - a)

    def stats(self) -> dict[str, dict[str, Any]]:
        rng = np.random.default_rng(self.seed + 1)
        out = {"ttft": summarize(self.ttft_s, rng), "e2e": summarize(self.e2e_s, rng)}
        tp = self.tpot_s
        out["tpot"] = summarize(tp, rng) if tp.size else {}
        if self.itl_s.size:
            out["itl"] = summarize(self.itl_s, rng, self.itl_weight)
        return out

    def to_dict(self) -> dict[str, Any]:
        s = self.stats()

        def pct(d):
            return {k: v for k, v in d.items() if k.startswith("p") and not k.endswith("_ci")}

        def ci(d):
            return {k[:-3]: list(v) for k, v in d.items() if k.endswith("_ci")}

        return {
            "latency_mode": "simulation", "engine": self.engine, "load": self.load,
            "requests_measured": int(self.measured.sum()), "requests_warmup": int((~self.measured).sum()),
            "ttft_mean_s": s["ttft"]["mean"], "tpot_mean_s": s["tpot"].get("mean"),
            "ttft_percentiles_s": pct(s["ttft"]), "tpot_percentiles_s": pct(s["tpot"]),
            "e2e_mean_s": s["e2e"]["mean"], "e2e_percentiles_s": pct(s["e2e"]),
            "itl_mean_s": s.get("itl", {}).get("mean"), "itl_percentiles_s": pct(s.get("itl", {})),
            "confidence_95": {"ttft": ci(s["ttft"]), "tpot": ci(s["tpot"]), "e2e": ci(s["e2e"])},
            "requests_per_s": self.requests_per_s, "output_tokens_per_s": self.output_tokens_per_s,
            "iterations": self.iterations, "preemptions": self.preemptions,
            "max_queue": int(self.series["queue"].max()) if self.series["queue"].size else 0,
            "max_running": int(self.series["running"].max()) if self.series["running"].size else 0,
            "assumptions": list(self.assumptions),
        }
