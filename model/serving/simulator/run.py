"""The event loop: load generator -> engine instances -> metrics, and the public calls.

Events are iteration ends (one per busy instance), arrivals and, disaggregated, KV hand-offs. An instance
chooses its next batch when its iteration ends, seeing every request that arrived before that moment.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import replace

import numpy as np

from model.errors import DoesNotFitError, RidgeplanError
from model.serving.batching import kv_capacity
from model.serving.deployment import Deployment
from model.serving.policy import EnginePolicy, engine_policy
from model.serving.simulator.costtable import CostTable, build_cost_table
from model.serving.simulator.engine import Group, Instance
from model.serving.simulator.loadgen import Load, Requests, make_requests, read_trace, trace_requests
from model.serving.simulator.metrics import SimResult
from model.serving.speculation_offload import Offload, Speculation
from model.serving.workload import Lengths, Workload

_ITER, _HANDOFF = 0, 1


def kv_pool_tokens(d: Deployment, policy: EnginePolicy, context_tokens: float,
                   offload: Offload | None = None, speculation: Speculation | None = None) -> float:
    """Tokens the KV pool of one instance holds (per sequence KV is linear in the context)."""
    ctx = max(policy.block_size, math.ceil(context_tokens / policy.block_size) * policy.block_size)
    cap = kv_capacity(d, policy, ctx, offload, speculation)
    pool = float(cap.kv_pool_bytes[0])
    per_token = float(cap.kv_bytes_per_sequence[0]) / ctx
    if pool > 0 and per_token > 0:
        return pool / per_token
    # KV held off the GPU (offload): the GPU holds no pool, the sequences the tier holds bound admission
    return float(cap.max_sequences[0]) * ctx


def _groups(ids: list, reqs: Requests, warm: set) -> list[Group]:
    """Requests arriving together, grouped by identical state."""
    by: dict = {}
    for r in ids:
        pid = int(reqs.prefix_id[r])
        cached = float(reqs.cached_len[r]) if (pid < 0 or pid in warm) else 0.0
        key = (float(reqs.input_len[r]), float(reqs.output_len[r]), cached)
        by.setdefault(key, []).append(r)
    return [Group(v, i - c, c, o - 1, 0) for (i, o, c), v in by.items()]


class _Run:
    def __init__(self, pools: dict[str, list[Instance]], reqs: Requests, load: Load, transfer=None,
                 macro_steps: bool = True):
        self.pools, self.reqs, self.load = pools, reqs, load
        self.macro_steps = macro_steps
        self.entry = pools["prefill"] if "prefill" in pools else pools["both"]
        self.instances = [i for p in pools.values() for i in p]
        self.transfer = transfer  # input_len -> KV hand-off seconds (disaggregated)
        n = reqs.n
        self.arrival = reqs.arrival_s.copy()
        self.first = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.tokens = np.zeros(n)
        self.heap: list = []
        self.seq = 0
        self.busy = {id(i): False for i in self.instances}
        self.start_s = {id(i): 0.0 for i in self.instances}
        self.last_dec = {id(i): 0.0 for i in self.instances}
        self.warm: set = set()
        self.issued = 0
        self.series = {k: [] for k in ("t_s", "queue", "running", "decoding", "kv_fraction")}
        self.itl, self.itl_w = [], []
        self.open_times = reqs.arrival_s if load.mode != "closed" and not np.isnan(reqs.arrival_s).any() else None

    def _push(self, t, kind, obj):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, obj))

    def _route(self, pool: list[Instance]) -> Instance:
        if len(pool) == 1:
            return pool[0]
        return min(pool, key=lambda x: x.running + x.queued + len(x.handoff))

    def _arrive(self, ids: list, t: float) -> None:
        if len(self.entry) == 1:
            share = {0: ids}
        else:  # each request to the least-loaded instance (requests arriving together spread out)
            load = [i.running + i.queued + len(i.handoff) for i in self.entry]
            share = {}
            for r in ids:
                k = min(range(len(load)), key=load.__getitem__)
                load[k] += 1
                share.setdefault(k, []).append(r)
        for k, part in share.items():
            inst = self.entry[k]
            for g in _groups(part, self.reqs, self.warm):
                g.t_arr = t
                inst.enqueue(g)
            self._kick(inst, t)

    def _horizon(self, t: float, p: int) -> float:
        if not self.macro_steps:
            return 0.0
        nxt = math.inf
        if self.open_times is not None and p < self.reqs.n:
            nxt = self.open_times[p]
        if len(self.instances) > 1 and self.heap:
            nxt = min(nxt, self.heap[0][0])
        return nxt - t

    def _kick(self, inst: Instance, t: float, formed_s: float | None = None) -> None:
        if self.busy[id(inst)] or not inst.has_work():
            return
        dt = inst.plan(self._horizon(t, self.p), t if formed_s is None else formed_s, t)
        if dt is None:
            if inst.handoff and inst.role == "decode" and inst.n_dec == 0:
                raise DoesNotFitError("memory", "a request's KV does not fit the decode instance's pool")
            if inst.n_dec == 0 and not inst.prefilling:
                raise DoesNotFitError("memory", "a request does not fit the KV pool of an empty instance "
                                      f"({inst.pool:,.0f} tokens)")
            return
        for r in inst.admitted_now:
            self.first[r] = t
        self.busy[id(inst)] = True
        self.start_s[id(inst)] = t
        self._push(t + dt, _ITER, inst)

    def _iteration_end(self, inst: Instance, t: float) -> None:
        # the instance stays busy until its next batch is planned below, so the requests that arrive now (a
        # closed loop's next ones) are planned with the batch's formation time (overlap schedulers)
        had_decode = inst.last_decode
        out = inst.complete(t)
        key = id(inst)
        if had_decode:
            m = inst.last_steps
            gap = (t - self.start_s[key]) / m if m > 1 else t - self.last_dec[key]
            self.itl.append(gap)
            self.itl_w.append(had_decode * m)
        if had_decode or inst.n_dec == len(out.first_tokens):  # the decoders' last token came now
            self.last_dec[key] = t
        if inst.role != "prefill":
            for r in out.first_tokens:
                self.first[r] = t
        for g in out.prefilled:
            self._mark_warm(g.ids)
            dt = self.transfer(float(self.reqs.input_len[g.ids[0]]))
            self._push(t + dt, _HANDOFF, g)
        if inst.role != "prefill" and out.first_tokens:
            self._mark_warm(out.first_tokens)  # their prompt prefixes are now in the cache
        for ids, ntok in out.finished:
            self.finish[ids] = t
            self.tokens[ids] = ntok
            if self.load.mode == "closed":
                k = min(len(ids), self.reqs.n - self.issued)
                if k > 0:
                    new = list(range(self.issued, self.issued + k))
                    self.issued += k
                    self.arrival[new] = t
                    self._arrive(new, t)
        s = self.series
        s["t_s"].append(t)
        s["queue"].append(inst.queued + len(inst.handoff))
        s["running"].append(inst.running)
        s["decoding"].append(inst.n_dec)
        s["kv_fraction"].append(inst.kv_used / inst.pool if inst.pool else 0.0)
        self.busy[key] = False
        self._kick(inst, t, self.start_s[key])

    def _mark_warm(self, ids) -> None:
        pid = self.reqs.prefix_id
        for r in ids:
            if pid[r] >= 0:
                self.warm.add(int(pid[r]))

    def go(self) -> None:
        self.p = 0
        n = self.reqs.n
        if self.load.mode == "closed":
            c = min(int(self.load.concurrency), n)
            self.issued = c
            self.arrival[:c] = 0.0
            self._arrive(list(range(c)), 0.0)
            self.p = n
        times = self.open_times
        while True:
            t_arr = times[self.p] if times is not None and self.p < n else math.inf
            if self.heap and self.heap[0][0] <= t_arr:
                t, _, kind, obj = heapq.heappop(self.heap)
                if kind == _ITER:
                    self._iteration_end(obj, t)
                else:  # a prefilled group's KV arrives: its requests spread over the decode instances
                    pool = self.pools["decode"]
                    parts = [obj] if len(pool) == 1 else [obj.split(1) for _ in range(len(obj.ids) - 1)] + [obj]
                    for g in parts:
                        inst = self._route(pool)
                        inst.handoff.append(g)
                        self._kick(inst, t)
            elif t_arr < math.inf:
                j = self.p
                while j < n and times[j] == t_arr:
                    j += 1
                ids = list(range(self.p, j))
                self.p = j
                self._arrive(ids, t_arr)
            else:
                break
        if np.isnan(self.finish).any():
            stuck = int(np.isnan(self.finish).sum())
            raise DoesNotFitError("memory", f"{stuck} requests never finished: the KV pool cannot hold them")


def _result(run: _Run, load: Load, engine: str, seed: int, notes: tuple) -> SimResult:
    measured = np.arange(run.reqs.n) >= load.warmup
    iters = sum(i.iterations for i in run.instances)
    pre = sum(i.preemptions for i in run.instances)
    series = {k: np.asarray(v, dtype=float) for k, v in run.series.items()}
    return SimResult(engine, load.describe(), run.arrival, run.first, run.finish, run.reqs.input_len,
                     run.reqs.output_len, run.tokens, measured, np.asarray(run.itl), np.asarray(run.itl_w, float),
                     series, iters, pre, load.concurrency, seed, notes)


def simulate(d: Deployment, lengths: Lengths, load: Load, policy: EnginePolicy | str = "vllm", *,
             prefix_hit_rate: float = 0.0, speculation: Speculation | None = None, offload: Offload | None = None,
             seed: int = 0, trace=None, table: CostTable | None = None, tables: dict | None = None,
             macro_steps: bool = True, **engine_options) -> SimResult:
    """Simulate one engine instance of `d` serving `load` (requests drawn from `lengths`, or a trace CSV).

    `engine_options`: mixed_chunk and recv_interval (SGLang's --scheduler-recv-interval), chunked_context and
    capacity_policy (TensorRT-LLM), overlap (the overlap scheduler: on by default in TensorRT-LLM and SGLang, off
    in vLLM; model.engines.*).
    `macro_steps=False` runs every decode-only iteration on its own (for benchmarking the loop).
    `tables`: a store the caller keeps for one deployment and policy: the cost table a run builds is kept there
    under what it depends on besides them (the longest context, speculation, offload), and a later run that needs
    the same one reuses it (the planner's re-check simulates one deployment at several rates)."""
    policy = engine_policy(policy)
    rng = np.random.default_rng(seed)
    if trace is not None:
        df = read_trace(trace) if not hasattr(trace, "columns") else trace
        if load.num_requests is not None:  # the first N requests of the trace
            df = df.iloc[:load.num_requests]
        reqs = trace_requests(df, load, rng, prefix_hit_rate)
        if load.mode == "closed" and reqs.n < load.concurrency:
            raise RidgeplanError("trace", f"has {reqs.n} requests, fewer than the {load.concurrency} clients")
        load = replace(load, num_requests=reqs.n)  # the trace sets N
    else:
        reqs = make_requests(load, lengths, rng, prefix_hit_rate)
    _check_budget(policy, reqs, engine_options)
    max_ctx = float((reqs.input_len + reqs.output_len).max())
    if table is None:
        key = (max_ctx, speculation, offload)
        table = tables.get(key) if tables is not None else None
        if table is None:
            table = build_cost_table(d, policy, max_ctx, speculation, offload)
            if tables is not None:
                tables[key] = table
    pool = kv_pool_tokens(d, policy, float(np.mean(reqs.input_len + reqs.output_len)), offload, speculation)
    if pool < 1:
        raise DoesNotFitError("memory", f"no KV room on {d.device.name} ({d.layout.label()}): the weights "
                              "and activations fill the memory")
    inst = _instance(table, policy, pool, "both", rng, speculation, engine_options)
    run = _Run({"both": [inst]}, reqs, load, macro_steps=macro_steps)
    run.go()
    return _result(run, load, policy.name, seed, _notes(policy, load, speculation, engine_options))


def _instance(table, policy, pool, role, rng, speculation, options) -> Instance:
    return Instance(table, policy, pool, role=role, rng=rng,
                    alpha=speculation.alpha if speculation else None, spec_k=speculation.k if speculation else 0,
                    **options)


def _check_budget(policy: EnginePolicy, reqs: Requests, options: dict) -> None:
    """Engines without chunking need a token budget that holds the longest prompt (they refuse to start)."""
    chunked = policy.chunked_prefill
    if policy.name == "trtllm":
        from model.engines import TRTLLM

        chunked = options.get("chunked_context", TRTLLM.enable_chunked_prefill)
    if policy.name == "sglang":
        return  # SGLang runs an over-budget prompt alone
    longest = float(reqs.input_len.max())
    if not chunked and longest > policy.max_num_batched_tokens:
        raise RidgeplanError("max_num_batched_tokens", f"{policy.max_num_batched_tokens} tokens cannot hold a "
                             f"{longest:.0f}-token prompt without chunked prefill; raise --chunk or enable chunking")


def _notes(policy, load, speculation, options) -> tuple[str, ...]:
    from model.engines import get_engine

    e = get_engine(policy.name)
    notes = [f"simulated {e.name} scheduler ({e.source}); {load.describe()}",
             "iteration costs interpolated from a table of the analytical iteration cost built once per deployment",
             "requests with the same state move as cohorts; attention over a mean context of the decoding batch",
             "a prefix once computed stays cached (no eviction modelled); KV blocks rounded per request"]
    if speculation is not None:
        notes.append(f"speculation: acceptance drawn per step per cohort (binomial chain, alpha {speculation.alpha}, "
                     f"k {speculation.k}); a cohort advances by its mean gain")
    if options:
        notes.append("engine options: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    return tuple(notes)


def load_for(workload: Workload, num_requests: int | None = None, warmup: int = 0, burstiness: float = 1.0) -> Load:
    """The client a Workload describes: a concurrency is a closed loop, a rate an open loop."""
    if workload.concurrency is not None:
        c = workload.concurrency
        if c != int(c):
            raise RidgeplanError("concurrency", f"the simulator needs a whole number of clients, got {c}")
        return Load("closed", concurrency=int(c), num_requests=num_requests, warmup=warmup)
    if workload.rate_per_s is not None:
        return Load("poisson" if burstiness == 1.0 else "gamma", rate_per_s=workload.rate_per_s,
                    burstiness=burstiness, num_requests=num_requests, warmup=warmup)
    raise RidgeplanError("workload", "simulation needs a concurrency, a rate or a trace")


def simulate_pool(d: Deployment, lengths: Lengths, rate_per_s: float, engine: EnginePolicy | str = "vllm", *,
                  num_requests: int = 1000, warmup: int = 0, seed: int = 0, burstiness: float = 1.0,
                  **kwargs) -> SimResult:
    """One instance of `d` at `rate_per_s` (Poisson, or gamma when burstiness != 1): the planner's re-check.
    Read .stats() or .to_dict() for the percentiles."""
    load = Load("poisson" if burstiness == 1.0 else "gamma", rate_per_s=rate_per_s, burstiness=burstiness,
                num_requests=num_requests, warmup=warmup)
    return simulate(d, lengths, load, engine, seed=seed, **kwargs)


def simulate_disagg(plan, lengths: Lengths, load: Load, policy: EnginePolicy | str = "vllm", *,
                    decode_policy: EnginePolicy | str | None = None, seed: int = 0,
                    tables: tuple[CostTable, CostTable] | None = None, **engine_options) -> SimResult:
    """Disaggregated prefill/decode: the plan's prefill instances run prefill-only iterations and hand each
    prompt's KV to a decode instance over the link (model.serving.disagg.kv_transfer_s); the decode instance
    admits it when memory and slots allow (that wait counts in TTFT: the first token reaches the client when
    the decode instance takes the request), then decodes. Requests go to the least-loaded instance."""
    from model.serving.disagg import kv_transfer_s

    policy = engine_policy(policy)
    dpol = engine_policy(decode_policy) if decode_policy is not None else policy
    rng = np.random.default_rng(seed)
    reqs = make_requests(load, lengths, rng)
    _check_budget(policy, reqs, engine_options)
    max_ctx = float((reqs.input_len + reqs.output_len).max())
    mean_ctx = float(np.mean(reqs.input_len + reqs.output_len))
    pools: dict[str, list[Instance]] = {}
    for k, (role, dep, pol, count) in enumerate((("prefill", plan.prefill, policy, plan.prefill_instances),
                                                 ("decode", plan.decode, dpol, plan.decode_instances))):
        ctx = float(np.mean(reqs.input_len)) if role == "prefill" else mean_ctx
        pool = kv_pool_tokens(dep, pol, ctx)
        need = float(reqs.input_len.max()) if role == "prefill" else float(reqs.input_len.max()) + 1
        if pool < need:
            raise DoesNotFitError(f"{role}", f"the {role} instance ({dep.device.name}, {dep.layout.label()}) holds "
                                  f"{max(pool, 0):,.0f} KV tokens, less than one request needs ({need:,.0f}): it "
                                  "does not fit, so no latency is given")
        table = tables[k] if tables is not None else build_cost_table(dep, pol, max_ctx)
        pools[role] = [_instance(table, pol, pool, role, rng, None, engine_options if role == "prefill" else {})
                       for _ in range(count)]
    cache: dict[float, float] = {}

    def transfer(i: float) -> float:
        if i not in cache:
            cache[i] = float(np.asarray(kv_transfer_s(plan, i)).ravel()[0])
        return cache[i]

    run = _Run(pools, reqs, load, transfer)
    run.go()
    notes = (*_notes(policy, load, None, engine_options),
             (f"disaggregated: {plan.prefill_instances} prefill and {plan.decode_instances} decode instances, KV "
              "hand-off over the link between them, decode-side admission wait counted in TTFT"))
    return _result(run, load, policy.name, seed, notes)


def protocol_sensitivity(d: Deployment, lengths: Lengths, concurrency: int, policy: EnginePolicy | str = "vllm",
                         requests_per_client=(1, 3, 10), warmup_per_client=(0, 1), seed: int = 0) -> list[dict]:
    """TTFT and TPOT means of a closed loop under different benchmark protocols (N = k x C requests, the first
    w x C left out as warm-up): how much an unpublished protocol can move a measurement."""
    policy = engine_policy(policy)
    table = build_cost_table(d, policy, float((lengths.input_len + lengths.output_len).max()))
    out = []
    for k in requests_per_client:
        for w in warmup_per_client:
            if w >= k:
                continue
            load = Load("closed", concurrency=concurrency, num_requests=k * concurrency, warmup=w * concurrency)
            r = simulate(d, lengths, load, policy, seed=seed, table=table)
            out.append({"requests": k * concurrency, "warmup": w * concurrency,
                        "ttft_mean_s": float(r.ttft_s.mean()), "tpot_mean_s": float(r.tpot_s.mean())})
    return out


def simulated_goodput(d: Deployment, lengths: Lengths, policy: EnginePolicy | str, ttft_s: float | None,
                      tpot_s: float | None, attainment: float, max_rate_per_s: float, *, num_requests: int = 400,
                      seed: int = 0, steps: int = 8, **kwargs) -> float:
    """The highest Poisson rate (one instance) whose simulated TTFT and TPOT at the `attainment` quantile meet
    the targets, by bisection between 0 and `max_rate_per_s` (the same seed at every rate)."""
    policy = engine_policy(policy)
    table = build_cost_table(d, policy, float((lengths.input_len + lengths.output_len).max()),
                             kwargs.get("speculation"), kwargs.get("offload"))

    def meets(rate: float) -> bool:
        r = simulate_pool(d, lengths, rate, policy, num_requests=num_requests, seed=seed, table=table, **kwargs)
        ok = ttft_s is None or float(np.quantile(r.ttft_s, attainment)) <= ttft_s
        tp = r.tpot_s
        return ok and (tpot_s is None or not tp.size or float(np.quantile(tp, attainment)) <= tpot_s)

    lo, hi = 0.0, float(max_rate_per_s)
    if hi <= 0:
        return 0.0
    if meets(hi):
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if meets(mid) else (lo, mid)
    return lo
