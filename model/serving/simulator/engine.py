"""One engine instance stepping one scheduler iteration at a time (vLLM V1, SGLang, TensorRT-LLM).

Requests that share a state travel together: a `Group` of identical requests waits or prefills as one entry,
and a `Cohort` of requests that started decoding in the same iteration with the same remaining output decodes
as one heap entry. Without speculation every decoding request gains one token per decode iteration, so a
cohort's finishing iteration is known when it starts and the per-iteration work is O(1) amortised (a heap
pop per finished cohort); the context of all decoding requests is kept as a running sum.

The scheduling rules (which engine does what) are described and sourced in model.engines.*.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from model.engines import get_engine
from model.errors import RidgeplanError
from model.serving.policy import EnginePolicy
from model.serving.simulator.costtable import CostTable
from model.serving.workload import mean_decode_context_tokens


class Group:
    """Identical requests waiting or prefilling together."""

    __slots__ = ("admitted", "done", "gen", "ids", "left", "out_left", "reserved", "t_arr")

    def __init__(self, ids: list, left: float, done: float, out_left: float, gen: int = 0):
        self.ids = ids  # request ids
        self.left = left  # prompt tokens still to compute per request
        self.done = done  # tokens already in the KV cache per request (prefix hit, earlier chunks)
        self.out_left = out_left  # decode iterations after the token the prefill produces
        self.gen = gen  # tokens generated before (a request recomputed after preemption); 0: fresh
        self.admitted = False
        self.reserved = 0.0  # KV tokens reserved per request (max-length admission)
        self.t_arr = 0.0  # when the requests reached the engine (an overlap scheduler sees them a step late)

    @property
    def resumed(self) -> bool:
        return self.gen > 0

    def split(self, k: int) -> Group:
        """Take the first k requests off into a new group with the same state."""
        g = Group(self.ids[:k], self.left, self.done, self.out_left, self.gen)
        g.admitted, g.reserved, g.t_arr = self.admitted, self.reserved, self.t_arr
        self.ids = self.ids[k:]
        return g


class Cohort:
    """Requests decoding together: they joined at decode step `start` with `steps` decode iterations to go."""

    __slots__ = ("base", "ctx0", "ids", "progress", "reserved", "start", "steps")

    def __init__(self, ids: list, start: int, steps: float, ctx0: float, reserved: float, base: int):
        self.ids, self.start, self.steps, self.ctx0, self.reserved = ids, start, steps, ctx0, reserved
        self.base = base  # tokens generated when the cohort joined
        self.progress = 0.0  # tokens gained (speculation only)


@dataclass
class Outcome:
    """What one iteration produced, at its end time."""

    first_tokens: list  # request ids that received their first token
    finished: list  # (ids, tokens generated per request)
    prefilled: list  # groups whose prefill completed (disaggregated prefill instances hand these off)


def _recv_interval(engine, value: int | None) -> int:
    """The scheduler's receive interval in loop iterations: 1 (every iteration) unless SGLang is given more."""
    if value is None:
        return int(getattr(engine, "scheduler_recv_interval", 1))
    if int(value) != value or value < 1:
        raise RidgeplanError("recv_interval", f"must be a whole number of iterations >= 1, got {value!r}")
    if value > 1 and engine.name != "sglang":
        raise RidgeplanError("recv_interval", f"is SGLang's --scheduler-recv-interval; {engine.name} receives "
                             "requests every iteration", ("sglang",))
    return int(value)


class Instance:
    """One engine replica: waiting queue, prefilling groups, decoding cohorts, KV pool (in tokens)."""

    def __init__(self, table: CostTable, policy: EnginePolicy, kv_pool_tokens: float, *, role: str = "both",
                 rng: np.random.Generator | None = None, alpha: float | None = None, spec_k: int = 0,
                 mixed_chunk: bool | None = None, chunked_context: bool | None = None,
                 capacity_policy: str | None = None, overlap: bool | None = None,
                 recv_interval: int | None = None):
        self.table, self.policy = table, policy
        self.engine = get_engine(policy.name)
        self.name = self.engine.name
        self.role = role  # both | prefill | decode
        self.pool = float(kv_pool_tokens)
        self.budget = float(policy.max_num_batched_tokens)
        self.max_seqs = int(policy.max_num_seqs)
        self.block = float(policy.block_size)
        self.q = table.decode_tokens
        self.rng, self.alpha, self.k = rng, alpha, spec_k
        # overlap scheduler (TensorRT-LLM, SGLang): the next batch is formed while the current one runs, so a
        # request that arrives during an iteration waits for the one after it (model.engines.*.overlap_scheduler)
        self.overlap = self.engine.overlap_scheduler if overlap is None else overlap
        if overlap is None and self.name == "sglang" and alpha is not None:
            self.overlap = False  # SGLang turns overlap off for speculative decoding (model.engines.sglang)
        self.cutoff_s = math.inf  # requests that arrived after this moment are not seen by the next plan
        self.recv_interval = _recv_interval(self.engine, recv_interval)
        self.recv_count = 0  # SGLang's SchedulerRecvSkipper counter
        self.recv_s = -math.inf  # when the scheduler last received requests (recv_interval > 1)
        if self.name == "sglang":
            self.mixed = self.engine.enable_mixed_chunk if mixed_chunk is None else mixed_chunk
            self.ratio = self.engine.init_new_token_ratio
        else:
            self.mixed, self.ratio = True, 0.0
        if self.name == "trtllm":
            self.chunked = self.engine.enable_chunked_prefill if chunked_context is None else chunked_context
            cap = capacity_policy or self.engine.capacity_scheduler_policy
            from model.engines.trtllm import CAPACITY_POLICIES

            if cap not in CAPACITY_POLICIES:
                raise RidgeplanError("capacity_policy", f"unknown TensorRT-LLM capacity policy {cap!r}", CAPACITY_POLICIES)
            self.max_length = cap == "GUARANTEED_NO_EVICT"
        else:
            self.chunked = policy.chunked_prefill
            self.max_length = False
        self.waiting: deque[Group] = deque()  # FCFS; index 0 is the head
        self.n_waiting = 0  # requests in `waiting` (kept as a count: the queue can hold many groups)
        self.prefilling: list[Group] = []  # admitted, partly computed
        self.heap: list = []  # (finish step, order, cohort)
        self.cohorts: list[Cohort] = []  # in admission order (the last is preempted first)
        self.order = 0
        self.D = 0  # decode iterations run so far
        self.n_dec = 0  # requests decoding
        self.ctx_a = 0.0  # sum over decoding requests of (context at join - join step)
        self.out_sum = 0.0  # sum over decoding requests of their finishing step (remaining = out_sum - n D)
        self.kv_used = 0.0  # tokens held in the pool
        self.reserved = 0.0  # tokens reserved by max-length admission
        self.preemptions = 0
        self.iterations = 0
        self.last_decode = 0
        self.last_steps = 1
        self.handoff: list[Group] = []  # disaggregated decode side: KV arrived, waiting for admission
        self.admitted_now: list = []
        self._plan = None

    # -- bookkeeping ------------------------------------------------------------------------------------
    @property
    def running(self) -> int:
        return self.n_dec + sum(len(g.ids) for g in self.prefilling)

    @property
    def queued(self) -> int:
        return self.n_waiting

    def has_work(self) -> bool:
        return bool(self.waiting or self.prefilling or self.n_dec or self.handoff)

    def enqueue(self, group: Group, front: bool = False) -> None:
        if front:
            self.waiting.appendleft(group)
        else:
            self.waiting.append(group)
        self.n_waiting += len(group.ids)

    def _round(self, tokens: float) -> float:
        return math.ceil(tokens / self.block) * self.block

    def _decode_ctx(self) -> float:
        return (self.ctx_a + self.n_dec * self.D) / self.n_dec if self.n_dec else 0.0

    # -- admission --------------------------------------------------------------------------------------
    def _admit_count(self, g: Group, want: int, chunk: float) -> int:
        """How many of `want` requests of g the KV pool admits now, each needing `chunk` new tokens."""
        if g.admitted or want <= 0:
            return want
        if self.max_length:  # TensorRT-LLM GUARANTEED_NO_EVICT: the whole request must fit
            need = self._round(g.done + g.left + g.out_left + 1)
            free = self.pool - self.reserved
        elif self.name == "sglang":  # prompt + a share of the output of every running and new request
            need = self._round(g.done + g.left) + self.ratio * g.out_left
            free = self.pool - self.kv_used - self.ratio * max(self.out_sum - self.n_dec * self.D, 0.0)
        else:  # vLLM, MAX_UTILIZATION: blocks for what is scheduled now
            need = self._round(g.done + chunk)
            free = self.pool - self.kv_used
        return max(0, min(want, int(free // need))) if need > 0 else want

    def _take(self, g: Group, k: int, chunk: float, batch: list) -> Group:
        """Schedule a chunk of `chunk` tokens for the first k requests of g (admitting them)."""
        part = g.split(k) if k < len(g.ids) else g
        if not part.admitted:
            part.admitted = True
            if self.max_length:
                part.reserved = self._round(part.done + part.left + part.out_left + 1)
                self.reserved += part.reserved * k
            self.kv_used += part.done * k  # prefix-cache hits and recomputed context occupy blocks too
        self.kv_used += chunk * k
        batch.append((part, chunk))
        return part

    def _fill_prefill(self, budget: float, slots: int) -> list:
        """Prefill chunks FCFS: continue admitted groups first, then admit waiting ones."""
        batch: list = []
        for g in list(self.prefilling):
            if budget < 1:
                break
            chunk = min(g.left, budget)
            k = min(len(g.ids), max(1, int(budget // chunk)))
            if k == len(g.ids):
                self.prefilling.remove(g)
            self._take(g, k, chunk, batch)
            budget -= chunk * k
        while self.waiting and budget >= 1 and slots > 0:
            g = self.waiting[0]
            if g.t_arr > self.cutoff_s:
                break  # arrived after this batch was formed (overlap scheduler)
            if g.left <= budget:
                k = min(len(g.ids), slots, int(budget // g.left) if g.left > 0 else len(g.ids))
                k = self._admit_count(g, k, g.left)
                if k == 0:
                    break
                if k == len(g.ids):
                    self.waiting.popleft()
                self._take(g, k, g.left, batch)
                self.n_waiting -= k
                budget -= g.left * k
                slots -= k
                continue
            if not self.chunked:
                if batch or self.n_dec and self.name != "sglang":
                    break  # a whole prompt waits for a step with room for it
                chunk = g.left  # the engine runs an over-budget prompt alone (SGLang without chunking)
            else:
                chunk = budget
            if self._admit_count(g, 1, chunk) == 0:
                break
            if len(g.ids) == 1:
                self.waiting.popleft()
            self._take(g, 1, chunk, batch)
            self.n_waiting -= 1
            budget -= chunk
            slots -= 1
            break
        return batch

    # -- one iteration ----------------------------------------------------------------------------------
    def plan(self, horizon_s: float = math.inf, formed_s: float = math.inf, now_s: float | None = None) -> float | None:
        """Choose the next iteration's batch; return its duration (seconds), or None when nothing can run.

        `formed_s`: when the batch was formed. With an overlap scheduler that is the start of the iteration
        that just ended, and requests that arrived after it wait one more iteration; an engine with nothing
        else to run picks them up at once. `now_s`: when this loop iteration starts (default `formed_s`); with
        SGLang's --scheduler-recv-interval the requests received are those that arrived by the last receive.

        When only decodes run and nothing can arrive within `horizon_s`, the iterations up to the next
        finishing cohort are identical but for the growing context: they run as one macro step whose cost is
        m iterations at the mean context (exact while attention is linear in the context)."""
        self.admitted_now = []
        if self.handoff:
            self._admit_handoffs()
        self.cutoff_s = math.inf
        if self.overlap and (self.n_dec or self.prefilling or self.waiting and self.waiting[0].t_arr <= formed_s):
            self.cutoff_s = formed_s
        if self.recv_interval > 1:
            self._recv_gate(formed_s if now_s is None else now_s)
        decode = self.n_dec > 0
        batch = None
        if self.name == "sglang":  # a prefill batch first, apart from decodes unless mixed chunks are on
            batch = self._fill_prefill(self.budget, self.max_seqs - self.running) if self.waiting or self.prefilling else []
            if batch and not self.mixed:
                decode = False
        if decode and not self.max_length:
            self._preempt_for(self.n_dec * self.q)
            decode = self.n_dec > 0
        if batch is None:  # vLLM / TensorRT-LLM: decodes first, then prefill in what the budget leaves
            budget = self.budget - (self.n_dec * self.q if decode else 0.0)
            batch = self._fill_prefill(budget, self.max_seqs - self.running)
        if not batch and not decode:
            return None
        pre = [(c, g.done, len(g.ids)) for g, c in batch]
        separate = self.name == "vllm" and not self.policy.chunked_prefill  # prefill-prioritising steps
        ctx = self._decode_ctx()
        dt = self.table.iteration_s(self.n_dec if decode else 0, ctx, pre, separate=separate)
        m = 1
        if (not batch and self.alpha is None and not self.waiting and not self.prefilling and not self.handoff
                and self.heap):
            m = int(self.heap[0][0] - self.D)
            if not self.max_length:
                m = min(m, int((self.pool - self.kv_used) // max(self.n_dec, 1)))
            if math.isfinite(horizon_s):
                m = min(m, int(horizon_s // dt))
            m = max(m, 1)
            if m > 1:
                dt = m * self.table.iteration_s(self.n_dec, float(mean_decode_context_tokens(ctx, m)))  # mean over the m steps
        self._plan = (batch, decode, m)
        self.iterations += m
        self.last_decode = self.n_dec if decode else 0
        self.last_steps = m
        return dt

    def _recv_gate(self, now_s: float) -> None:
        """SGLang's SchedulerRecvSkipper (model.engines.sglang.scheduler_recv_interval): each loop iteration adds
        the last batch's weight to a counter and receives new requests only when it reaches the interval (then
        resets). A decode-only macro step of m iterations ran m - 1 loop iterations of its own before this one.
        An idle scheduler spins its loop at once and receives at its next iteration."""
        e, k = self.engine, self.recv_interval
        if not (self.n_dec or self.prefilling):
            self.recv_count, self.recv_s = 0, now_s
            return
        batch, decode, m = getattr(self, "_plan", ([], False, 1))
        decode_only = decode and not batch
        if decode_only:
            self.recv_count = (self.recv_count + (m - 1) * e.recv_weight_decode) % k
        self.recv_count += e.recv_weight_decode if decode_only else e.recv_weight_other
        if self.recv_count >= k:
            self.recv_count = 0
            self.recv_s = min(self.cutoff_s, now_s)  # what the overlap scheduler sees at this receive
        self.cutoff_s = min(self.cutoff_s, self.recv_s)

    def _admit_handoffs(self) -> None:
        """Decode side of a disaggregated pair: requests whose KV arrived join when memory and slots allow."""
        while self.handoff and self.decode_room(self.handoff[0]):
            g = self.handoff.pop(0)
            self.join_decoded(g)
            self.admitted_now.extend(g.ids)

    def complete(self, now: float) -> Outcome:
        """Apply the planned iteration at its end time `now`."""
        batch, decode, m = self._plan
        out = Outcome([], [], [])
        if decode:
            self._decode_step(out, m)
        for g, chunk in batch:
            g.done += chunk
            g.left -= chunk
            if g.left > 0:
                self.prefilling.append(g)
                continue
            if not g.resumed:
                out.first_tokens.extend(g.ids)
            g.gen += 1  # the prefill samples a token
            if self.role == "prefill":
                self.kv_used -= g.done * len(g.ids)
                self.reserved -= g.reserved * len(g.ids)
                out.prefilled.append(g)
            elif g.out_left <= 0:
                self.kv_used -= g.done * len(g.ids)
                self.reserved -= g.reserved * len(g.ids)
                out.finished.append((g.ids, g.gen))
            else:
                self._join(g)
        return out

    def _join(self, g: Group) -> None:
        n = len(g.ids)
        c = Cohort(g.ids, self.D, g.out_left, g.done + 1, g.reserved, g.gen)
        self.order += 1
        if self.alpha is None:
            heapq.heappush(self.heap, (self.D + g.out_left, self.order, c))
        self.cohorts.append(c)
        self.n_dec += n
        self.ctx_a += n * (c.ctx0 - self.D)
        self.out_sum += n * (self.D + g.out_left)
        self.kv_used += n  # the first token's KV

    def join_decoded(self, g: Group) -> None:
        """A request whose prompt was prefilled elsewhere (disaggregated): its KV arrives, it decodes here."""
        self.kv_used += g.done * len(g.ids)
        if self.max_length:
            g.reserved = self._round(g.done + g.out_left + 1)
            self.reserved += g.reserved * len(g.ids)
        self._join(g)

    def decode_room(self, g: Group) -> bool:
        """Whether a decode-side request fits now (KV and max_num_seqs): the decode instance's admission."""
        n = len(g.ids)
        if self.running + n > self.max_seqs:
            return False
        if self.max_length:
            return self.reserved + n * self._round(g.done + g.out_left + 1) <= self.pool
        return self.kv_used + n * self._round(g.done + 1) <= self.pool

    def _remove(self, c: Cohort, k: int) -> None:
        """Take k requests of cohort c out of the decoding set (finish or preemption)."""
        n_gen = self.D - c.start
        self.n_dec -= k
        self.ctx_a -= k * (c.ctx0 - c.start)
        self.out_sum -= k * (c.start + c.steps)
        self.kv_used -= k * (c.ctx0 + n_gen)
        self.reserved -= k * c.reserved

    def _decode_step(self, out: Outcome, m: int = 1) -> None:
        if self.alpha is None:
            self.D += m
            self.kv_used += self.n_dec * m
            while self.heap and self.heap[0][0] <= self.D:
                _, _, c = heapq.heappop(self.heap)
                if not c.ids:
                    continue
                self._remove(c, len(c.ids))
                self.cohorts.remove(c)
                out.finished.append((c.ids, c.base + c.steps))
            return
        # speculation: each cohort draws how many of its requests accept draft 1, 2, ... k (binomial chain)
        self.D += 1
        done = []
        for c in self.cohorts:
            n = len(c.ids)
            alive, gained = n, n
            for _ in range(self.k):
                alive = int(self.rng.binomial(alive, self.alpha)) if alive else 0
                gained += alive
            step = gained / n
            c.progress += step
            self.kv_used += gained
            self.ctx_a += n * (step - 1)  # ctx_a assumes one token per step; correct it
            if c.progress >= c.steps:
                done.append(c)
        for c in done:
            n = len(c.ids)
            self.n_dec -= n
            self.ctx_a -= n * (c.ctx0 + c.progress - self.D)
            self.kv_used -= n * (c.ctx0 + c.progress)
            self.reserved -= n * c.reserved
            self.out_sum -= n * (c.start + c.steps)
            self.cohorts.remove(c)
            c.ids, ids = [], c.ids
            out.finished.append((ids, c.base + c.steps))

    def _preempt_for(self, tokens: float) -> None:
        """Free KV for `tokens` new ones by preempting the most recently admitted decoding requests
        (recomputed later from their prompt plus the tokens generated so far)."""
        while self.kv_used + tokens > self.pool and self.cohorts:
            c = self.cohorts[-1]
            per = c.ctx0 + (self.D - c.start if self.alpha is None else c.progress)
            need = self.kv_used + tokens - self.pool
            k = min(len(c.ids), max(1, math.ceil(need / max(per + self.q, 1.0))))
            gen = (self.D - c.start) if self.alpha is None else c.progress
            ids = c.ids[-k:]
            if self.alpha is None:
                self._remove(c, k)
            else:
                self.n_dec -= k
                self.ctx_a -= k * (c.ctx0 + c.progress - self.D)
                self.kv_used -= k * per
                self.out_sum -= k * (c.start + c.steps)
            c.ids = c.ids[:-k]
            if not c.ids:
                self.cohorts.pop()
            tokens -= k * self.q
            self.preemptions += k
            g = Group(ids, per, 0.0, c.steps - gen - 1, int(c.base + gen))
            self.enqueue(g, front=True)
