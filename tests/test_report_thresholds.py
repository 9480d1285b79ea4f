"""Exact thresholds (bisection on the library's own functions) instead of the next point of a sweep."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from model.api import deployment
from model.serving import report
from model.serving.batching import concurrency_limits
from model.serving.policy import engine_policy


@given(st.integers(1, 10**6), st.integers(0, 10**6))
def test_first_true_finds_the_step_of_a_monotone_predicate(threshold, lo):
    hi = lo + 10**6
    calls = []

    def pred(n):
        calls.append(n)
        return n >= threshold

    got = report.first_true(pred, lo, hi)
    want = max(threshold, lo + 1) if threshold <= hi else None
    assert got == want
    assert len(calls) <= 22  # log2(10^6) + 2: bisection, not a scan


def _caps(d, prompt, output_len=256.0):
    return min(float(v.min()) for v in concurrency_limits(d, engine_policy("vllm"), float(prompt), output_len).values())


def test_context_limit_is_exact_and_earlier_than_the_sweep_point():
    d = deployment("llama-3.1-8b", "h100-sxm")
    limit = report.context_limit(d, "vllm", 256, 16)
    first = limit["context_tokens"]
    assert _caps(d, first - 1) >= 16 > _caps(d, first)  # the definition, one token either side
    assert limit["limited_by"] == "kv" and limit["sequences"] == _caps(d, first)
    sweep = report.context_sweep(d, "vllm", 256, 16)
    next_point = sweep.loc[sweep["scheduled_concurrency"] < 16, "context_tokens"].iloc[0]
    assert first <= next_point  # the sweep could only report its next grid point (32,768 here)


def test_context_limit_none_when_every_prompt_fits():
    d = deployment("llama-3.1-8b", "h200")
    assert report.context_limit(d, "vllm", 256, 1) is None


def test_largest_static_batch_is_the_last_that_fits():
    d = deployment("llama-3.1-8b", "h100-sxm")
    ctx = 1024 + 128
    b = report.largest_static_batch(d, ctx)
    sweep = report.batch_sweep(d, ctx, batches=[b, b + 1])
    assert list(sweep["fits"]) == [True, False]
    # the 70B model does not fit one GPU even for one sequence (140 GB of bf16 weights against 77 GB usable)
    assert report.largest_static_batch(deployment("llama-3.1-70b", "h100-sxm"), ctx) == 0
