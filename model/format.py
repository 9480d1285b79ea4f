"""How a person reads a number: a unit, an SI prefix or thousands separators, a handful of significant digits,
and a dash with the reason where there is no value. One module for every face (CLI tables, the app, the
notebooks); the library below the faces never imports it, and `--json` output never passes through it.

Keys in the library's dicts carry their unit (`ttft_mean_s`, `kv_pool_bytes`, `output_tokens_per_s_per_gpu`,
`cost_per_hour_usd`); `by_key` reads that suffix to pick the formatter, so a dict of results renders without
a table of special cases per command.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DASH = "—"
# the shape of every JSON document ridgeplan writes (CLI --json, the app's downloads, bench); bump it when a key
# is renamed or removed or changes meaning, and say so in CHANGELOG.md
SCHEMA_VERSION = 2
SIG = 3  # significant digits shown by default: the model is not more accurate than that

_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def with_schema(data: dict) -> dict:
    """`data` with `schema_version` as its first key."""
    return {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}


def missing(reason: str | None = None) -> str:
    """The dash shown for a value that does not exist, with why when known ('— (does not fit)')."""
    return f"{DASH} ({reason})" if reason else DASH


def is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, (int, float)) or getattr(getattr(x, "dtype", None), "kind", "") in ("i", "u", "f")


def _absent(x: Any) -> bool:
    return x is None or (is_number(x) and math.isnan(float(x)))


def number(x: float | None, sig: int = SIG, reason: str | None = None) -> str:
    """`sig` significant digits, thousands separators for the integer part: 24.863539 -> '24.9',
    116829156672.0 -> '116,829,156,672', 0.000123 -> '0.000123'."""
    if _absent(x):
        return missing(reason)
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    if abs(x) >= 10 ** (sig - 1):
        return f"{x:,.0f}"  # every integer digit, separated
    x = float(f"{x:.{sig}g}")  # round first, so 0.9999 reads '1.00', not '1.000'
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude >= sig - 1:
        return f"{x:,.0f}"
    if magnitude < -4:
        return f"{x:.{sig - 1}e}"
    decimals = sig - 1 - magnitude
    return f"{x:,.{decimals}f}"


def count(x: float | None, reason: str | None = None) -> str:
    """A count of things: integers with separators ('12,345'); a fractional count keeps 3 significant digits."""
    if _absent(x):
        return missing(reason)
    x = float(x)
    if not math.isfinite(x):
        return number(x)
    if x == round(x) or abs(x) >= 100:
        return f"{x:,.0f}"
    return number(x)


def si(x: float | None, unit: str = "", sig: int = SIG, reason: str | None = None) -> str:
    """SI prefix: 1.9789e15, 'FLOP/s' -> '1.98 PFLOP/s'; 512, 'B' -> '512 B'."""
    if _absent(x):
        return missing(reason)
    x = float(x)
    if math.isinf(x) or x == 0:
        return f"{number(x)} {unit}".strip()
    for scale, prefix in _PREFIXES:
        if abs(x) >= scale * (1 - 0.5 * 10 ** -sig):
            return f"{number(x / scale, sig)} {prefix}{unit}"
    return f"{number(x, sig)} {unit}".strip()


def seconds(x_s: float | None, reason: str | None = None, sig: int = SIG) -> str:
    """A duration in the unit that reads best: '1.23 s', '12.3 ms', '456 µs', '78 ns'; inf -> '∞'."""
    if _absent(x_s):
        return missing(reason)
    x = float(x_s)
    if math.isinf(x):
        return "∞"
    if x == 0:
        return "0 s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(x) >= scale * (1 - 0.5 * 10 ** -sig):
            return f"{number(x / scale, sig)} {unit}"
    return f"{number(x / 1e-9, sig)} ns"


def milliseconds(x_s: float | None, reason: str | None = None) -> str:
    """Always in ms with two decimals (columns of latencies that must line up): 0.0123 -> '12.30 ms'."""
    if _absent(x_s):
        return missing(reason)
    return "∞" if math.isinf(float(x_s)) else f"{float(x_s) * 1e3:,.2f} ms"


def size(x_bytes: float | None, reason: str | None = None) -> str:
    """Bytes with a decimal SI prefix: 1.2345e9 -> '1.23 GB' (decimal: GB = 10^9 bytes, GiB = 2^30)."""
    return si(x_bytes, "B", reason=reason)


def gb(x_bytes: float | None, reason: str | None = None, decimals: int = 1) -> str:
    """Memory capacities and footprints always in decimal gigabytes (10^9 bytes), as vendors market them:
    8.55e10 -> '85.5 GB'."""
    if _absent(x_bytes):
        return missing(reason)
    return f"{float(x_bytes) / 1e9:,.{decimals}f} GB"


def gib(x_bytes: float | None, reason: str | None = None, decimals: int = 1) -> str:
    """Binary gibibytes (2^30 bytes): 8.59e10 -> '80.0 GiB'."""
    if _absent(x_bytes):
        return missing(reason)
    return f"{float(x_bytes) / 2**30:,.{decimals}f} GiB"


def memory_capacity(marketed_bytes: float, runtime_total_bytes: float | None = None) -> str:
    """A device's memory named both ways: what it is sold as, and (when known) what the runtime reports,
    which fit checks use: 'marketed 80 GB; runtime total 85.5 GB = 79.6 GiB (fits use this)'."""
    if not runtime_total_bytes:
        return f"{gb(marketed_bytes)} = {gib(marketed_bytes)} (marketed; fits use this)"
    return (f"marketed {gb(marketed_bytes, decimals=0)}; runtime total {gb(runtime_total_bytes)} = "
            f"{gib(runtime_total_bytes)} (fits use this)")


def rate(x_per_s: float | None, unit: str = "tok/s", reason: str | None = None) -> str:
    """A throughput: '12,345 tok/s', '3.21 req/s'."""
    if _absent(x_per_s):
        return missing(reason)
    return f"{number(x_per_s) if abs(float(x_per_s)) < 1000 else count(x_per_s)} {unit}".strip()


def usd(x: float | None, suffix: str = "", reason: str | None = None) -> str:
    """Dollars: '$1,234.50', '$0.0412'."""
    if _absent(x):
        return missing(reason)
    x = float(x)
    return f"${x:,.2f}{suffix}" if abs(x) >= 0.1 or x == 0 else f"${number(x)}{suffix}"


def percent(x_fraction: float | None, reason: str | None = None) -> str:
    """A share in [0, 1] as a percentage: 0.1234 -> '12.3%'."""
    if _absent(x_fraction):
        return missing(reason)
    return f"{number(float(x_fraction) * 100)}%"


def times(x: float | None, reason: str | None = None) -> str:
    """A ratio or speed-up: 2.345 -> '2.35×'."""
    if _absent(x):
        return missing(reason)
    return f"{number(x)}×"


def params(x: float | None, reason: str | None = None) -> str:
    """A parameter count: 116829156672 -> '116.8 B (116,829,156,672)'."""
    if _absent(x):
        return missing(reason)
    x = float(x)
    for scale, word in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.1f} {word} ({x:,.0f})"
    return count(x)


def yes_no(x: bool | None, reason: str | None = None) -> str:
    return missing(reason) if x is None else ("yes" if x else "no")


# --- keys with units --------------------------------------------------------------------------------------------

_RATE_UNITS = {"rate": "req/s", "tokens": "tok/s", "tok": "tok/s", "requests": "req/s", "req": "req/s", "images": "img/s",
               "img": "img/s", "samples": "samples/s", "sequences": "seq/s", "steps": "steps/s"}
_SIZE_SCALE = {"bytes": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_FLOP_SCALE = {"flop": 1.0, "gflop": 1e9, "tflop": 1e12, "pflop": 1e15}
_RATIO_WORDS = ("speedup", "gain", "ratio", "over", "multiplier", "factor", "vs")
_SHARE_WORDS = ("share", "fraction", "attainment", "utilisation", "utilization", "mfu", "hfu", "efficiency")


def by_key(key: str, value: Any) -> str:
    """`value` formatted by the unit its `key` names (`*_s`, `*_ms`, `*_us`, `*_bytes`, `*_gb`, `*_per_s`,
    `*_usd`, `*_w`, `*_j`, shares, ratios, parameter and token counts); dicts and lists recursively."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "; ".join(f"{label(str(sub))}: {by_key(_inherit(str(sub), key), v)}" for sub, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(by_key(key, v) for v in value)
    if not is_number(value):
        return str(value)
    x = float(value)
    if math.isnan(x):
        return DASH
    return _by_unit(key.lower().split("_"), x) or (count(x) if math.isfinite(x) and x == round(x) else number(x))


def _inherit(sub: str, parent: str) -> str:
    """A sub-key without a unit of its own ('p99', 'h100-sxm') takes its parent's ('ttft_percentiles_s')."""
    return sub if _by_unit(sub.lower().split("_"), 1.0) else parent


def _by_unit(words: list[str], x: float) -> str | None:
    """The formatted value if the key's words name a unit, else None."""
    if "usd" in words:
        return usd(x, "/h" if "hour" in words else "")
    if any(w in _RATIO_WORDS for w in words):
        return times(x)
    for i, w in enumerate(words[:-1]):  # a rate: '<thing>_per_s[_per_<whom>]', '<thing>_s' for tok/GB
        per_s = words[i:i + 2] == ["per", "s"]
        if per_s or (w in _SIZE_SCALE or w in ("tok", "img")) and words[i + 1] == "s":
            thing = words[i - 1] if per_s and i else w
            rest = words[i + 2:]
            whom = " per " + " ".join(rest[1:]).replace("gpu", "GPU") if rest[:1] == ["per"] else ""
            if thing in _SIZE_SCALE:
                return si(x * _SIZE_SCALE[thing], "B/s") + whom
            if "flop" in thing:
                return si(x * _FLOP_SCALE.get(thing.rstrip("s"), 1.0), "FLOP/s") + whom
            return rate(x, _RATE_UNITS.get(thing, "/s")) + whom
    flop_word = next((w for w in words if w.rstrip("s") in _FLOP_SCALE), None)
    if flop_word and "byte" not in words:
        # 'tflops' alone is the marketing unit of a rate; 'flops_1t' is a count of operations
        unit = "FLOP/s" if flop_word.startswith(("t", "g", "p")) else "FLOP"
        return si(x * _FLOP_SCALE[flop_word.rstrip("s")], unit)
    if words[-2:] == ["per", "byte"]:
        return f"{number(x)} FLOP/B"
    size_word = next((w for w in words if w in _SIZE_SCALE), None)
    if size_word:
        return size(x * _SIZE_SCALE[size_word])
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if unit in words:
            return seconds(x * scale)
    if "w" in words:
        return f"{number(x)} W"
    if "j" in words:
        return f"{number(x)} J" + (" per token" if "token" in words else "")
    if "params" in words:
        return params(x)
    if any(w in _SHARE_WORDS for w in words) or words[-2:] == ["hit", "rate"]:
        return percent(x) if 0 <= x <= 1 else number(x)
    if "tokens" in words:
        return f"{count(x)} tokens"
    return None


_UNIT_WORDS = {"s", "ms", "us", "usd", "w", "j", *_SIZE_SCALE}


def label(key: str) -> str:
    """A key as a reader's label, its unit moved to the value: 'ttft_mean_s' -> 'ttft mean',
    'output_tokens_per_s_per_gpu' -> 'output tokens', 'kv_pool_bytes' -> 'kv pool'."""
    words = key.split("_")
    for i in range(len(words) - 1):
        if words[i:i + 2] == ["per", "s"] and i:
            words = words[:i] + words[i + 2:]  # 'output_tokens_per_s_per_gpu' -> 'output tokens per gpu'
            break
    if len(words) > 1 and words[-1].lower() in _UNIT_WORDS:
        words = words[:-1]
    return " ".join(words)


def rows(data: Mapping[str, Any], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, formatted value) for each key of `data` except `skip`."""
    return [(label(k), by_key(k, v)) for k, v in data.items() if k not in skip]
