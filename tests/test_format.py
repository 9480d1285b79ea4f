"""model.format: the one formatter of the CLI, the app and the notebooks."""

from __future__ import annotations

import math
import re

from hypothesis import given
from hypothesis import strategies as st

from model import format as fmt


def test_numbers_by_hand():
    assert fmt.number(24.863539) == "24.9"
    assert fmt.number(116829156672.0) == "116,829,156,672"
    assert fmt.number(0.9999) == "1.00"  # rounded before the digits are chosen
    assert fmt.count(8192.0) == "8,192"
    assert fmt.params(116829156672.0) == "116.8 B (116,829,156,672)"
    assert fmt.si(1.9789e15, "FLOP/s") == "1.98 PFLOP/s"


def test_durations_pick_their_unit():
    assert fmt.seconds(0.027000521590359417) == "27.0 ms"
    assert fmt.seconds(0.000456) == "456 µs"
    assert fmt.seconds(3.1) == "3.10 s"
    assert fmt.seconds(math.inf) == "∞"


def test_missing_values_are_a_dash_with_the_reason():
    assert fmt.seconds(None) == "—"
    assert fmt.seconds(None, reason="does not fit") == "— (does not fit)"
    assert fmt.rate(float("nan")) == "—"


def test_memory_named_both_ways():
    # H100 SXM: marketed 80 GB; nvidia-smi 81,559 MiB = 81,559 * 2^20 = 85,520,809,984 B = 85.5 GB = 79.6 GiB
    text = fmt.memory_capacity(80e9, 81559 * 2**20)
    assert text == "marketed 80 GB; runtime total 85.5 GB = 79.6 GiB (fits use this)"


def test_keys_name_their_units():
    assert fmt.by_key("ttft_mean_s", 0.0265) == "26.5 ms"
    assert fmt.by_key("ttft_percentiles_s", {"p50": 0.0265, "p99": 0.0425}) == "p50: 26.5 ms; p99: 42.5 ms"
    assert fmt.by_key("output_tokens_per_s_per_gpu", 256.0) == "256 tok/s per GPU"
    assert fmt.by_key("rate_per_s", 2.0) == "2.00 req/s"
    assert fmt.by_key("cost_per_hour_usd", 6.0) == "$6.00/h"
    assert fmt.by_key("kv_pool_bytes", 12.3e9) == "12.3 GB"
    assert fmt.by_key("kv16_GB", 12.3) == "12.3 GB"
    assert fmt.by_key("fetch_ms", 0.5) == "500 µs"
    assert fmt.by_key("attention_tflop_per_s", 218.0) == "218 TFLOP/s"
    assert fmt.by_key("attention_share", 0.415) == "41.5%"
    assert fmt.by_key("decode_speedup", 2.345) == "2.35×"
    assert fmt.by_key("goodput_requests_per_s", None) == "—"
    assert fmt.by_key("fits", True) == "yes"
    assert fmt.by_key("prefill_pool", {"gpu": "h100-sxm", "capacity_requests_per_s": 47.26900731569021}) == \
        "gpu: h100-sxm; capacity requests: 47.3 req/s"


def test_labels_drop_the_unit():
    assert fmt.label("ttft_mean_s") == "ttft mean"
    assert fmt.label("output_tokens_per_s_per_gpu") == "output tokens per gpu"
    assert fmt.label("kv_pool_bytes") == "kv pool"


_LONG_FLOAT = re.compile(r"\d\.\d{5,}")
_KEYS = st.sampled_from(["gains", "ttft_s", "x", "kv_bytes", "tokens_per_s", "cost_usd", "gain", "share", "layers",
                         "flops", "power_w", "total_params", "bw_gb_s"])


@given(_KEYS, st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**15, 10**15)))
def test_never_none_nan_or_long_floats(key, value):
    text = fmt.by_key(key, value)
    assert "None" not in text and "nan" not in text.lower()
    assert not _LONG_FLOAT.search(text), text
