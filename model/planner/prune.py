"""Shrinking the fleet program without changing its optimum, and a cheap lower bound on it.

- `undominated`: candidate c is dropped when m >= 1 instances of another candidate c' (same model, role, pair
  group; same GPU type when availability is limited) carry at least c's load on every slice and cost, use and draw
  no more than one instance of c. Exchange argument: in any fleet, each instance of c can be replaced by m of c'
  serving the same shares (load per instance rate / capacity is at most m times smaller on c'), at no more cost,
  GPUs or power and inside every limit, so the optimum is unchanged. With m = 1 only this is plain dominance;
  larger m also drops, e.g., a TP2 instance that carries less than two TP1 instances for twice their price.
  A whole pair group (its prefill and decode candidates, model.planner.pairs) is dropped when another group
  still kept beats each of its prefill candidates with one of its own prefill candidates and each of its decode
  candidates with one of its decode candidates, in the same sense. Exchange argument: each instance is replaced
  as above and the group's disaggregated share moves to the other group with them (both sides move, so the
  pairing constraint still holds). A group is only dropped for one that is kept, so a chain or two equal groups
  never drop each other.
- `lower_bound`: the objective of the program with continuous instance counts: every slice goes, on its own, to
  the option (an aggregated configuration, or the cheapest prefill plus the cheapest decode of one pair group)
  with the lowest objective per request/s. No fleet the program can give, and so no fleet the re-check loop can
  visit, is cheaper: the planner uses it to skip loops that cannot beat a fleet that already passed. On one
  GPU type it is rounded up to a whole number of GPUs' worth (every candidate's objective is its GPUs times the
  GPU's price, 1, or TDP).
"""

from __future__ import annotations

import numpy as np

from model.planner.pairs import pair_key


def _weights(request, cands) -> np.ndarray | None:
    """Per-instance objective weight (cost, GPUs or power); None for the goodput objective (no cost to bound)."""
    if request.objective == "goodput":
        return None
    attr = {"cost": "cost_per_hour", "gpus": "gpus", "power": "power_w"}[request.objective]
    return np.array([float(getattr(c, attr)) for c in cands])


def undominated(request, cands, cap: np.ndarray) -> np.ndarray:
    """Boolean mask of candidates to keep (see the module docstring); candidates with no capacity are dropped."""
    n = len(cands)
    limited = any(o.available is not None for o in request.gpus)
    cost = np.array([c.cost_per_hour for c in cands])
    gpus = np.array([c.gpus for c in cands], dtype=float)
    power = np.array([c.power_w for c in cands])
    useful = cap.max(axis=1) > 0 if n else np.zeros(0, dtype=bool)
    keep = useful.copy()
    groups: dict[tuple, list[int]] = {}
    for k, c in enumerate(cands):
        if useful[k]:
            # prefill and decode candidates only stand in for one another inside their pair group: a prefill
            # configuration that pairs with other decode pools is not interchangeable, however fast it is
            pairing = pair_key(c, request.kv_placement) if c.role != "aggregated" else None
            groups.setdefault((c.model, c.role, c.gpu if limited else "", pairing), []).append(k)
    prices = (cost, gpus, power)
    for rows in groups.values():
        r = np.array(rows)
        beats = _beats(prices, cap, r, r)
        np.fill_diagonal(beats, False)
        idx = np.arange(r.size)
        # two candidates that beat each other are interchangeable (m = 1, equal prices and capacities): keep the first
        mutual = beats & beats.T & (idx[:, None] > idx[None, :])
        keep[r[(beats & ~mutual).any(axis=0)]] = False
    _drop_beaten_pair_groups(request, cands, cap, keep, prices, limited)
    return keep


def _beats(prices, cap: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[i, j]: some m >= 1 instances of candidate a[i] cost, use and draw no more than one instance of b[j] and
    carry at least its load on every slice."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.min([np.where(v[a][:, None] > 0, v[b][None, :] / v[a][:, None], np.inf) for v in prices], axis=0)
    m = np.floor(np.where(np.isfinite(ratio), ratio, 1.0) * (1 + 1e-12))  # the most instances of a[i] for one b[j]
    return (m >= 1) & (m[:, :, None] * cap[a][:, None, :] >= cap[b][None, :, :]).all(axis=2)


def _drop_beaten_pair_groups(request, cands, cap: np.ndarray, keep: np.ndarray, prices, limited: bool) -> None:
    """Drop (in `keep`) each pair group that a kept group beats on both sides (module docstring). With limited
    availability a candidate only stands in for one on the same GPU type."""
    sides: dict[tuple, tuple[list[int], list[int]]] = {}
    for k in np.flatnonzero(keep):
        c = cands[k]
        if c.role != "aggregated":
            sides.setdefault((c.model, pair_key(c, request.kv_placement)), ([], []))[c.role == "decode"].append(k)
    gpu = np.array([c.gpu for c in cands])

    def covered(by: list[int], rows: list[int]) -> bool:
        if not rows:
            return True
        if not by:
            return False
        a, b = np.array(by), np.array(rows)
        beats = _beats(prices, cap, a, b) & ((gpu[a][:, None] == gpu[b][None, :]) if limited else True)
        return bool(beats.any(axis=0).all())

    alive = sorted(sides)
    for key in list(alive):
        if any(other != key and other[0] == key[0] and covered(sides[other][0], sides[key][0])
               and covered(sides[other][1], sides[key][1]) for other in alive):
            alive.remove(key)
            keep[sides[key][0] + sides[key][1]] = False


def lower_bound(request, cands, slices, cap: np.ndarray) -> float:
    """Lower bound on the program's objective (see the module docstring); -inf for the goodput objective, inf
    when some slice has no option at all."""
    w = _weights(request, cands)
    if w is None:
        return -np.inf
    rates = np.array([s.rate_per_s for s in slices])
    with np.errstate(divide="ignore"):
        per_rate = np.where(cap > 0, w[:, None] / np.where(cap > 0, cap, 1.0), np.inf)  # objective per req/s
    best = np.full(len(slices), np.inf)
    models = np.array([s.model for s in slices])
    pre: dict[tuple, np.ndarray] = {}
    dec: dict[tuple, np.ndarray] = {}
    for c, cand in enumerate(cands):
        row = np.where(models == cand.model, per_rate[c], np.inf)
        if cand.role == "aggregated":
            best = np.minimum(best, row)
        else:
            side = pre if cand.role == "prefill" else dec
            key = pair_key(cand, request.kv_placement)
            side[key] = np.minimum(side.get(key, np.inf), row)
    for key, p in pre.items():
        if key in dec:
            best = np.minimum(best, p + dec[key])
    if not np.isfinite(best).all():
        return np.inf
    bound = float(rates @ best)
    used = {c.gpu for c, row in zip(cands, cap) if row.max() > 0}
    if len(used) == 1:  # one GPU type: every fleet's objective is a whole number of that GPU's price, 1 or TDP
        unit = next(float(w[c] / cands[c].gpus) for c in range(len(cands)) if cap[c].max() > 0)
        if unit > 0:
            bound = np.ceil(bound / unit - 1e-9) * unit
    return bound
