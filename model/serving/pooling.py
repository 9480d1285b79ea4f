"""Pooled vs partitioned instances (CATALOG section 11): M/G/c queueing for replicas that share one queue.

c instances, Poisson arrivals at rate lambda, service time with mean D and squared coefficient of variation
cs2 (0 for deterministic prefill, 1 for exponential):
- Erlang C: the probability an arrival waits in an M/M/c queue with offered load a = lambda D,
  C(c, a) = (a^c / c!) (c / (c - a)) / (sum_{k<c} a^k / k! + (a^c / c!) (c / (c - a))).
- Wait (Allen-Cunneen): W_q = C(c, a) D / (c - a) x (1 + cs2) / 2; the wait of those who wait is taken as
  exponential with mean D / (c - a) x (1 + cs2) / 2, so P(W > t) = C(c, a) exp(-t / that mean). For c = 1 this
  is the M/G/1 Pollaczek-Khinchine mean with the exponential tail of `model.serving.queueing`.
- Partitioned: requests are bound to an instance on arrival (random split), so each instance is its own M/G/1
  queue at lambda / c. Pooled: requests (and their KV, by live migration) can go to whichever instance frees
  first, which is one M/G/c queue at lambda. For the same load the pooled queue waits less, so a tail target
  needs fewer instances.
"""

from __future__ import annotations

import math

import numpy as np

from model.errors import RidgeplanError, require_positive


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
