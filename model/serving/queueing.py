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

import math
from collections.abc import Callable

import numpy as np

from model.errors import RidgeplanError, require_positive

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
    """Smallest k with P(Poisson(mean) <= k) >= p (scipy.stats.poisson.ppf), from scipy.special: importing
    scipy.stats costs about a second at start-up, more than a whole plan."""
    from scipy.special import pdtr, pdtrik

    m = np.maximum(np.asarray(mean, dtype=float), 0.0)
    k = np.ceil(np.nan_to_num(pdtrik(p, m), nan=0.0))  # the continuous inverse, then the integer at or next to it
    cand = np.stack([np.maximum(k - 1, 0), k, k + 1])
    ok = pdtr(cand, m) >= p
    return np.where(ok[0], cand[0], np.where(ok[1], cand[1], cand[2]))


def poisson_cdf(k, mean) -> np.ndarray:
    """P(Poisson(mean) <= k) for whole k >= 0 (scipy.stats.poisson.cdf)."""
    from scipy.special import pdtr

    return pdtr(np.asarray(k, dtype=float), np.asarray(mean, dtype=float))


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


# ---------------------------------------------------------------------------------------------------------
# pooled vs partitioned instances: M/G/c
#
# Pooled vs partitioned instances: M/G/c queueing for replicas that share one queue.
#
# c instances, Poisson arrivals at rate lambda, service time with mean D and squared coefficient of variation
# cs2 (0 for deterministic prefill, 1 for exponential):
# - Erlang C: the probability an arrival waits in an M/M/c queue with offered load a = lambda D,
#   C(c, a) = (a^c / c!) (c / (c - a)) / (sum_{k<c} a^k / k! + (a^c / c!) (c / (c - a))).
# - Wait (Allen-Cunneen): W_q = C(c, a) D / (c - a) x (1 + cs2) / 2; the wait of those who wait is taken as
#   exponential with mean D / (c - a) x (1 + cs2) / 2, so P(W > t) = C(c, a) exp(-t / that mean). For c = 1 this
#   is the M/G/1 Pollaczek-Khinchine mean with the exponential tail of `model.serving.queueing`.
# - Partitioned: requests are bound to an instance on arrival (random split), so each instance is its own M/G/1
#   queue at lambda / c. Pooled: requests (and their KV, by live migration) can go to whichever instance frees
#   first, which is one M/G/c queue at lambda. For the same load the pooled queue waits less, so a tail target
#   needs fewer instances.


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits (M/M/c); 1 when the servers are saturated."""
    require_positive("servers", servers, integer=True)
    a = float(offered_load)
    if a < 0:
        raise RidgeplanError("offered_load", f"must be >= 0, got {a}")
    if a >= servers:
        return 1.0
    # sum_{k<c} a^k/k! and a^c/c!, by recurrence (no overflow for the sizes used here)
    term, total = 1.0, 0.0
    for k in range(servers):
        total += term
        term *= a / (k + 1)
    top = term * servers / (servers - a)
    return top / (total + top)


def mgc_wait_quantile_s(p: float, rate_per_s: float, service_s: float, servers: int, service_scv: float = 0.0) -> float:
    """p-th percentile of the queueing delay in an M/G/c queue (Allen-Cunneen with an exponential tail)."""
    require_positive("service_s", service_s)
    if not 0 < p < 1:
        raise RidgeplanError("percentile", f"must be in (0, 1), got {p}")
    a = rate_per_s * service_s
    if a >= servers:
        return math.inf
    c_wait = erlang_c(servers, a)
    if c_wait <= 1 - p:
        return 0.0
    mean_if_waiting = service_s / (servers - a) * (1 + service_scv) / 2
    return mean_if_waiting * math.log(c_wait / (1 - p))


def mgc_mean_wait_s(rate_per_s: float, service_s: float, servers: int, service_scv: float = 0.0) -> float:
    a = rate_per_s * service_s
    if a >= servers:
        return math.inf
    return erlang_c(servers, a) * service_s / (servers - a) * (1 + service_scv) / 2


def tail_latency_s(p: float, rate_per_s: float, service_s: float, instances: int, pooled: bool,
                   service_scv: float = 0.0) -> float:
    """p-th percentile of service + queueing delay across `instances`: one shared queue (pooled) or a random
    split into independent queues (partitioned)."""
    if pooled:
        return service_s + mgc_wait_quantile_s(p, rate_per_s, service_s, instances, service_scv)
    return service_s + mgc_wait_quantile_s(p, rate_per_s / instances, service_s, 1, service_scv)


def instances_needed(p: float, target_s: float, rate_per_s: float, service_s: float, pooled: bool,
                     service_scv: float = 0.0, max_instances: int = 4096) -> int:
    """Fewest instances whose p-th percentile latency meets `target_s` (0 when no count up to the cap does)."""
    require_positive("target_s", target_s)
    if target_s < service_s:
        return 0
    start = max(1, math.floor(rate_per_s * service_s) + 1)
    for c in range(start, max_instances + 1):
        if tail_latency_s(p, rate_per_s, service_s, c, pooled, service_scv) <= target_s:
            return c
    return 0


def latency_grid(p: float, rate_per_s: float, service_s: float, instances, pooled: bool, service_scv: float = 0.0):
    """tail_latency_s over an array of instance counts."""
    return np.array([tail_latency_s(p, rate_per_s, service_s, int(c), pooled, service_scv)
                     for c in np.atleast_1d(instances)])
