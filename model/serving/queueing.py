"""Queueing approximations for TTFT and TPOT percentiles under Poisson arrivals (all stated in outputs).

- Prefill queue: M/G/1 (Pollaczek-Khinchine): W_q = lambda E[S^2] / (2 (1 - rho)), rho = lambda E[S]. With fixed
  lengths this is M/D/1. Waiting-time tail: P(W > w) ~= rho exp(-w rho / W_q) (the exact probability of
  waiting is rho; the conditional wait is taken as exponential with mean W_q / rho).
- TPOT of a request: its O - 1 decode iterations are slowed by the prompts that arrive meanwhile; their count
  is Poisson with mean lambda (O - 1) t_iteration, each adding the same extra time. The p-th percentile of
  TPOT follows from the Poisson quantile.
- Percentiles over a length distribution: the mixture CDF sum_b w_b F_b(v) = p, solved by bisection.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

APPROXIMATIONS = (
    "TTFT queueing: M/G/1 prefill queue (Pollaczek-Khinchine mean) with an exponential waiting-time tail",
    "TPOT spread: prompts arriving during a request's decode are Poisson; each adds the same extra time",
)


def mg1_wait_s(rate_per_s, service_mean_s, service_second_moment_s2) -> np.ndarray:
    """Mean wait in queue of an M/G/1 server; inf when the server is saturated."""
    lam = np.asarray(rate_per_s, dtype=float)
    rho = lam * np.asarray(service_mean_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        wq = lam * np.asarray(service_second_moment_s2, dtype=float) / (2 * (1 - rho))
    return np.where(rho < 1, np.maximum(wq, 0.0), np.inf)


def wait_cdf(w, rho, mean_wait_s) -> np.ndarray:
    """P(W <= w) under the exponential-tail approximation."""
    w = np.asarray(w, dtype=float)
    rho = np.minimum(np.asarray(rho, dtype=float), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = np.where(mean_wait_s > 0, rho * np.exp(-np.maximum(w, 0) * rho / mean_wait_s), 0.0)
    return np.where(w < 0, 0.0, np.where(np.isfinite(mean_wait_s), 1 - tail, 0.0))


def wait_quantile_s(p: float, rho, mean_wait_s) -> np.ndarray:
    rho = np.asarray(rho, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(p <= 1 - rho, 0.0, (mean_wait_s / np.maximum(rho, 1e-12)) * np.log(rho / (1 - p)))
    return np.where(np.isfinite(mean_wait_s), np.maximum(q, 0.0), np.inf)


def poisson_quantile(p: float, mean) -> np.ndarray:
    from scipy.stats import poisson  # imported here: scipy.stats costs ~0.6 s at start-up (the app)

    return poisson.ppf(p, np.maximum(np.asarray(mean, dtype=float), 0.0))


def tpot_spread(rate_per_s, iteration_s, token_s, gain, decode_tokens):
    """(Poisson mean of prompts arriving during a request's decode, extra seconds each one adds).

    `iteration_s` is the steady-state iteration, `token_s` the decode-only time per output token, `gain` the
    tokens a sequence gains per iteration and `decode_tokens` = O - 1. The extra per arrival is set so that the
    mean TPOT equals iteration_s / gain."""
    lam = np.asarray(rate_per_s, dtype=float)
    t_it = np.asarray(iteration_s, dtype=float)
    arrivals = lam * np.asarray(decode_tokens, dtype=float) / gain * t_it
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(lam * t_it > 0, (t_it / gain - token_s) * gain / (lam * t_it), 0.0)
    return arrivals, np.maximum(per, 0.0)


def tpot_quantile_s(p: float, token_s, arrivals, per_arrival, decode_tokens) -> np.ndarray:
    """p-th percentile of a request's TPOT for one output length (vectorized)."""
    return token_s + poisson_quantile(p, arrivals) * per_arrival / np.maximum(decode_tokens, 1)


def ttft_quantile_s(p: float, latency_s, align_s, rho, mean_wait_s) -> np.ndarray:
    """p-th percentile of TTFT for one prompt length: own prefill latency + iteration alignment + queue wait."""
    return latency_s + align_s + wait_quantile_s(p, rho, mean_wait_s)


def mixture_quantile(p: float, weights: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray], hi: float,
                     iterations: int = 60) -> float:
    """v with sum_b weights[b] * cdf(v)[b] = p, by bisection on [0, hi] (inf if not reached by hi)."""
    if float(weights @ cdf(np.full(weights.shape, hi))) < p:
        return float("inf")
    lo_v, hi_v = 0.0, hi
    for _ in range(iterations):
        mid = 0.5 * (lo_v + hi_v)
        if float(weights @ cdf(np.full(weights.shape, mid))) >= p:
            hi_v = mid
        else:
            lo_v = mid
    return hi_v
