"""Measure a designed set of kernels on this machine and write the table that `calibration.py` fits.

`design()` lays out the cases (pure Python, no torch): GEMMs over (m, n, k) with LLM-shaped n/k in the 16-bit
dtype and FP8 where the GPU has it, causal prefill attention and decode attention over batch, heads and
context, copies from 1 KB to 1 GB, element-wise and RMSNorm kernels, and whole decode steps of a small
Llama-shaped stack (CUDA graphs on a GPU). `collect()` times them with PyTorch, which is imported inside the
functions that need it (extra `ridgeplan[collect]`), so the library itself never needs torch.

How each number is measured: the case's tensors are built once; the kernel runs `warmup` times; then before
every timed run a buffer of twice the L2 size (32 MB on a CPU) is overwritten, so no run finds its operands
in cache (weights of a served model are not cache-resident either, and the flush lets the host queue the
launch ahead of the kernel); a run is timed with CUDA events around it on a GPU, `time.perf_counter` around
it on a CPU. The recorded time is the median of `reps` runs (fewer when one run exceeds the case budget).

`--device cpu` runs the same code with tiny sizes; its rows are labelled `platform = cpu` and calibrate a CPU
device, never a GPU.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform as host
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.hardware.schema import Device

PLATFORMS = ("cuda", "cpu")
SHAPE_COLUMNS = ("m", "n", "k", "batch", "heads", "kv_heads", "head_dim", "seq_len", "causal", "context", "bytes",
                 "model", "new_tokens", "tp")
COLUMNS = ("kernel", "dtype", "op", *SHAPE_COLUMNS, "measured_s", "min_s", "p90_s", "reps", "warmup", "flush_l2",
           "method", "platform")
KB = 1024
MB = KB * KB
# LLM-shaped (n, k) of Llama-3.1-8B: QKV, O, gate+up, down, and a QKV shard under 8-way tensor parallelism
GEMM_NK = ((6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336), (768, 4096))
# Assumed costs for the run-time estimate (the measured ones are not known before running):
STARTUP_S = 15.0  # import torch, create the CUDA context, cuBLAS and cuDNN handles
HOST_PER_RUN_S = 30e-6  # Python, event records and the flush launch per timed run
SETUP_PER_CASE_S = 0.02  # allocating and filling the tensors of one case, picking its kernel
GRAPH_CAPTURE_S = 1.0  # building the step stack's weights and capturing its CUDA graph


@dataclass(frozen=True)
class Case:
    kernel: str  # gemm | attention | decode_attention | copy | elementwise | step
    dtype: str
    op: str  # what runs: linear, scaled_mm, sdpa, copy_, mul, silu, rms_norm, llama_step
    shape: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    platform: str
    quick: bool
    warmup: int
    reps: int
    case_budget_s: float  # fewer reps when one run is slower than this share of the time
    cases: tuple[Case, ...]
    step_model: str  # the `model` column of step rows: a catalogue id, or a config file next to the CSV
    step_config: dict  # the Hugging Face config of the step model (Llama-shaped)
    notes: tuple[str, ...] = ()


_TINY_LLAMA = {  # a Llama-shaped stack small enough for a CPU test; written next to the CSV as its config
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 704,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "num_hidden_layers": 2,
    "vocab_size": 2048, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16", "hidden_act": "silu",
}


def design(platform: str = "cuda", quick: bool = False, *, sixteen: str = "bf16", fp8: bool = True) -> Plan:
    """The cases to time. `sixteen`: the 16-bit dtype the device runs (bf16, or fp16 before Ampere)."""
    if platform not in PLATFORMS:
        raise RidgeplanError("device", f"unknown collector device {platform!r}", PLATFORMS)
    cases: list[Case] = []
    gpu = platform == "cuda"
    if gpu:
        ms = (1, 16, 128, 1024, 8192) if quick else (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
        nks = (GEMM_NK[1], GEMM_NK[2], GEMM_NK[4]) if quick else GEMM_NK
        dtypes = (sixteen, "fp8") if fp8 else (sixteen,)
        heads, head_dim = ((32, 8), (64, 8)) if quick else ((32, 8), (64, 8), (32, 32)), 128
        prefill_batches, prefill_lens = ((1,), (512, 2048, 8192)) if quick else ((1, 4), (128, 512, 2048, 8192))
        prefill = [(b, s) for b in prefill_batches for s in prefill_lens]
        decode = [(b, c) for b in (1, 16, 64) for c in (1024, 8192)] if quick else \
            [(b, c) for b in (1, 8, 32, 128) for c in (512, 2048, 8192, 32768)]
        decode_heads = heads[:1] if quick else heads
        copies = [KB * 16**i for i in range(6)] if quick else [KB * 4**i for i in range(11)]  # 1 KB .. 1 GB
        elementwise = (4 * KB, MB, 256 * MB) if quick else tuple(KB * 4**i for i in range(10))  # .. 256 MB
        ew_ops = ("mul", "silu", "rms_norm")
        steps = ((1, 1024), (32, 1024)) if quick else ((1, 1024), (8, 1024), (32, 1024), (128, 1024), (8, 4096))
        step_model, step_config = "llama-3.2-1b", _catalogue_config("llama-3.2-1b")
        warmup, reps, budget = (3, 10, 0.25) if quick else (5, 30, 1.0)
    else:
        ms, nks, dtypes = ((1, 16, 256) if quick else (1, 8, 64, 256)), ((128, 256), (512, 256)), ("fp32", sixteen)
        nks = nks if quick else (*nks, (256, 512))
        heads, head_dim = ((4, 2), (8, 2)), 64
        prefill = [(1, s) for s in (32, 128, 256)]
        decode = [(b, c) for b in (1, 4) for c in (64, 512, 2048)]
        decode_heads = heads[:1]
        copies = [KB * 4**i for i in range(0, 7, 2 if quick else 1)]  # 1 KB .. 4 MB
        elementwise = tuple(KB * 16**i for i in range(4))  # 1 KB .. 4 MB
        ew_ops = ("mul", "silu", "rms_norm")
        steps = ((1, 64), (4, 64))
        step_model, step_config = "step-model.json", dict(_TINY_LLAMA)
        warmup, reps, budget = (1, 5, 0.1) if quick else (2, 9, 0.2)
    notes = ["fp8 GEMM rows start at m = 16: cuBLASLt FP8 needs M divisible by 16"] if fp8 and gpu else []
    for dtype in dtypes:
        # cuBLASLt FP8 GEMMs need M divisible by 16 (engines pad smaller batches to 16): FP8 rows start at 16
        rows = sorted({-(-m // 16) * 16 for m in ms}) if dtype == "fp8" else ms
        cases += [Case("gemm", dtype, "scaled_mm" if dtype == "fp8" else "linear", {"m": m, "n": n, "k": k})
                  for m in rows for n, k in nks]
    att_dtype = sixteen
    cases += [Case("attention", att_dtype, "sdpa", dict(batch=b, heads=h, kv_heads=hk, head_dim=head_dim, seq_len=s,
                                                         causal=1)) for h, hk in heads for b, s in prefill]
    kv_cap = 4e9  # bytes of K and V: keeps every case inside a 24 GB GPU
    cases += [Case("decode_attention", att_dtype, "sdpa", dict(batch=b, heads=h, kv_heads=hk, head_dim=head_dim,
                                                               context=c))
              for h, hk in decode_heads for b, c in decode if b * c * 2 * hk * head_dim * 2 <= kv_cap]
    cases += [Case("copy", att_dtype, "copy_", {"bytes": n}) for n in copies]
    cases += [Case("elementwise", att_dtype, op, {"bytes": n}) for op in ew_ops for n in elementwise]
    cases += [Case("step", att_dtype, "llama_step", dict(model=step_model, batch=b, new_tokens=1, context=c, tp=1))
              for b, c in steps]
    return Plan(platform, quick, warmup, reps, budget, tuple(cases), step_model, step_config, tuple(notes))


def _catalogue_config(ident: str) -> dict:
    path = Path(str(resources.files("model.architecture") / "catalogue" / f"{ident}.json"))
    return json.loads(path.read_text())


def plan_table(plan: Plan) -> pd.DataFrame:
    """One row per case with the kernel-table columns (no measurements)."""
    rows = [{"kernel": c.kernel, "dtype": c.dtype, "op": c.op, **c.shape} for c in plan.cases]
    return pd.DataFrame(rows, columns=["kernel", "dtype", "op", *SHAPE_COLUMNS])


def estimate_seconds(plan: Plan, device: Device) -> dict[str, float]:
    """Expected wall time of a collection on `device`, from the model itself (before anything is measured).

    Per case: SETUP_PER_CASE_S + (warm-up + timed runs) x (predicted kernel time + L2 flush + HOST_PER_RUN_S),
    timed runs capped by the case budget; plus GRAPH_CAPTURE_S per step case and STARTUP_S once. Kernel times
    are the predictions of `predict_kernels` (steps: the operator graph) with the device's default efficiency.
    """
    from model.serving.deployment import deployment
    from model.roofline.efficiency_sets import efficiency_for
    from model.roofline.kernels import predict_kernels

    eff = efficiency_for(device, calibration=False)
    table = plan_table(plan)
    kernels = (table["kernel"] != "step").to_numpy()
    run_s = np.zeros(len(table))
    run_s[kernels] = predict_kernels(table[kernels], device, eff)
    for i in np.flatnonzero(~kernels):
        c = plan.cases[i].shape
        d = deployment(plan.step_config, device, calibration=False)
        run_s[i] = float(d.step(batch=c["batch"], new_tokens=1, context=c["context"]).time_s[0])
    l2 = (device.on_chip.l2_bytes if device.on_chip and device.on_chip.l2_bytes else 50e6)
    flush_s = 2 * 2 * l2 / device.memory.bandwidth_bytes_per_s / eff.mem_max
    reps = np.minimum(plan.reps, np.maximum(3, np.floor(plan.case_budget_s / run_s)))
    per_case = SETUP_PER_CASE_S + (plan.warmup + reps) * (run_s + flush_s + HOST_PER_RUN_S)
    per_case[~kernels] += GRAPH_CAPTURE_S
    return {"cases": float(len(table)), "runs": float((plan.warmup + reps).sum()), "kernel_s": float(per_case.sum()),
            "startup_s": STARTUP_S, "total_s": float(per_case.sum() + STARTUP_S)}


# --- measuring ----------------------------------------------------------------------------------------------

def import_torch():
    try:
        import torch
    except ImportError:
        raise RidgeplanError("torch", "PyTorch is not installed; the collector needs it",
                             hint="pip install 'ridgeplan[collect]'") from None
    return torch


def check_platform(torch, platform: str) -> None:
    if platform not in PLATFORMS:
        raise RidgeplanError("device", f"unknown collector device {platform!r}", PLATFORMS)
    if platform == "cuda" and not torch.cuda.is_available():
        raise RidgeplanError("device", "no CUDA GPU is visible to PyTorch, so there is nothing to calibrate", PLATFORMS,
                             hint="run on the GPU machine; --device cpu only tests the code path")


class _Timer:
    """Times one callable: CUDA events on a GPU, perf_counter on a CPU; an L2 flush before every run."""

    def __init__(self, torch, platform: str):
        self.torch, self.cuda = torch, platform == "cuda"
        if self.cuda:
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            l2 = int(getattr(props, "L2_cache_size", 0) or 50 * MB)
            self.flush_bytes = 2 * l2
            self.method = "cuda-events, L2 flushed before each run"
        else:
            self.flush_bytes = 32 * MB
            self.method = "perf_counter, 32 MB written before each run"
        self.flush_buf = torch.empty(self.flush_bytes, dtype=torch.uint8, device=platform)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def _one(self, fn: Callable[[], object]) -> float:
        self.flush_buf.fill_(1)
        if self.cuda:
            start, end = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def measure(self, fn: Callable[[], object], warmup: int, reps: int, budget_s: float) -> list[float]:
        for _ in range(warmup):
            fn()
        self.sync()
        first = self._one(fn)
        n = int(min(reps, max(3, budget_s // max(first, 1e-9))))
        if not self.cuda:
            return [first] + [self._one(fn) for _ in range(n - 1)]
        pairs = []  # queue every run, then read the events once: no host sync between runs
        for _ in range(n - 1):
            self.flush_buf.fill_(1)
            start, end = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
        self.sync()
        return [first] + [s.elapsed_time(e) / 1e3 for s, e in pairs]


_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "fp8": "float8_e4m3fn"}


def build_kernel(torch, case: Case, dev: str) -> Callable[[], object]:
    """Allocate the operands of one kernel case and return a callable that runs it once."""
    td = getattr(torch, _TORCH_DTYPES[case.dtype])
    s = case.shape
    F = torch.nn.functional
    if case.kernel == "gemm":
        m, n, k = s["m"], s["n"], s["k"]
        if case.dtype == "fp8":
            a = torch.randn(m, k, device=dev).to(td)
            w = torch.randn(n, k, device=dev).to(td)
            one = torch.ones((), device=dev)
            return lambda: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        a, w = torch.randn(m, k, device=dev, dtype=td), torch.randn(n, k, device=dev, dtype=td)
        return lambda: F.linear(a, w)
    if case.kernel == "attention":
        b, h, hk, d, n = s["batch"], s["heads"], s["kv_heads"], s["head_dim"], s["seq_len"]
        q = torch.randn(b, h, n, d, device=dev, dtype=td)
        # K and V expanded to every query head outside the timed region: the flash kernels take them that
        # way on every PyTorch version (the row still records the GQA shape the model predicts)
        k, v = (torch.randn(b, hk, n, d, device=dev, dtype=td).repeat_interleave(h // hk, dim=1) for _ in range(2))
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if case.kernel == "decode_attention":
        b, h, hk, d, c = s["batch"], s["heads"], s["kv_heads"], s["head_dim"], s["context"]
        # the query heads of one KV head are packed as rows (as decode kernels do): K and V are read once
        q = torch.randn(b, hk, h // hk, d, device=dev, dtype=td)
        k, v = (torch.randn(b, hk, c, d, device=dev, dtype=td) for _ in range(2))
        return lambda: F.scaled_dot_product_attention(q, k, v)
    elements = max(1, s["bytes"] // 2) if case.kernel in ("copy", "elementwise") else 0
    x, y = torch.randn(elements, device=dev, dtype=td), torch.empty(elements, device=dev, dtype=td)
    if case.op == "copy_":
        return lambda: y.copy_(x)
    if case.op == "mul":
        return lambda: torch.mul(x, 1.5, out=y)
    if case.op == "silu":
        return lambda: torch.ops.aten.silu.out(x, out=y)
    if case.op == "rms_norm":
        hidden = min(4096, elements)
        x2, weight = x[: elements // hidden * hidden].view(-1, hidden), torch.ones(hidden, device=dev, dtype=td)
        return lambda: F.rms_norm(x2, (hidden,), weight, 1e-5)
    raise RidgeplanError("kernel", f"no builder for {case.kernel}/{case.op}")


def fp8_available(torch, platform: str) -> tuple[bool, str]:
    """FP8 GEMMs through torch._scaled_mm need FP8 tensor cores (compute capability 8.9: Ada, Hopper and later)."""
    if platform != "cuda":
        return False, "fp8: not measured on a CPU"
    cap = torch.cuda.get_device_capability()
    if cap < (8, 9) or not hasattr(torch, "_scaled_mm"):
        return False, f"fp8: not measured (compute capability {cap[0]}.{cap[1]} has no FP8 tensor cores)"
    try:
        build_kernel(torch, Case("gemm", "fp8", "scaled_mm", {"m": 16, "n": 16, "k": 32}), "cuda")()
    except RuntimeError as err:
        return False, f"fp8: not measured (torch._scaled_mm failed: {str(err).splitlines()[0]})"
    return True, ""


def _skip_reason(torch, case: Case, platform: str) -> str:
    if case.op == "rms_norm" and (platform != "cuda" or not hasattr(torch.ops.aten, "_fused_rms_norm")):
        return "rms_norm: skipped (F.rms_norm is several kernels here, not the one kernel the model predicts)"
    return ""


@contextlib.contextmanager
def _attention_backends(torch, platform: str):
    """On a GPU, never let SDPA fall back to its unfused math path (that would time the wrong kernel)."""
    if platform != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
        yield


def collect(out: str | Path, *, platform: str = "cuda", quick: bool = False, progress: bool = True,
            plan: Plan | None = None) -> dict:
    """Time every case of the plan and write `out` (CSV with `#` provenance lines) and `out`.json beside it."""
    from model.calibration.collect_step import build_step

    torch = import_torch()
    check_platform(torch, platform)
    out = Path(out)
    if not out.parent.is_dir():
        raise RidgeplanError("out", f"folder {str(out.parent)!r} does not exist")
    started = time.perf_counter()
    sixteen = "bf16" if platform == "cpu" or torch.cuda.is_bf16_supported() else "fp16"
    has_fp8, fp8_note = fp8_available(torch, platform)
    plan = plan or design(platform, quick, sixteen=sixteen, fp8=has_fp8)
    notes = [*plan.notes, *([fp8_note] if fp8_note and platform == "cuda" else [])]
    meta = provenance(torch, platform)
    timer = _Timer(torch, platform)
    rows: list[dict] = []
    skipped: dict[str, list[Case]] = {}
    with _progress(progress, len(plan.cases)) as advance, _attention_backends(torch, platform):
        for case in plan.cases:
            advance(f"{case.kernel} {case.dtype} {_shape_label(case)}")
            reason = _skip_reason(torch, case, platform)
            if reason:
                skipped.setdefault(reason, []).append(case)
                continue
            try:
                if case.kernel == "step":
                    fn, method = build_step(torch, plan.step_config, case, platform)
                else:
                    fn, method = build_kernel(torch, case, platform), timer.method
                samples = timer.measure(fn, plan.warmup, plan.reps, plan.case_budget_s)
            except (RuntimeError, torch.OutOfMemoryError) as err:  # too big for this GPU, or unsupported here
                reason = f"{case.kernel} {case.dtype}: skipped ({(str(err).splitlines() or ['error'])[0][:120]})"
                skipped.setdefault(reason, []).append(case)
                continue
            finally:
                fn = None  # free the operands before the next case
                if platform == "cuda":
                    torch.cuda.empty_cache()
            rows.append({"kernel": case.kernel, "dtype": case.dtype, "op": case.op, **case.shape,
                         "measured_s": float(np.median(samples)), "min_s": float(np.min(samples)),
                         "p90_s": float(np.percentile(samples, 90)), "reps": len(samples), "warmup": plan.warmup,
                         "flush_l2": 1, "method": method, "platform": platform})
    notes += [f"{reason}: {len(cases)} case(s), e.g. {_shape_label(cases[0])}" for reason, cases in skipped.items()]
    meta["clocks_after"] = _clocks() if platform == "cuda" else {}
    elapsed = time.perf_counter() - started
    meta.update({"plan": {"quick": plan.quick, "warmup": plan.warmup, "max_reps": plan.reps,
                          "case_budget_s": plan.case_budget_s, "cases": len(plan.cases)},
                 "timing": TIMING, "elapsed_s": round(elapsed, 2), "rows": len(rows), "notes": notes,
                 "step_model": plan.step_model, "step_config": plan.step_config})
    if plan.step_model.endswith(".json"):
        (out.parent / plan.step_model).write_text(json.dumps(plan.step_config, indent=2) + "\n")
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in (*SHAPE_COLUMNS, "reps", "warmup", "flush_l2"):
        if col != "model":
            table[col] = table[col].astype("Int64")  # whole numbers print as such, blanks stay blank
    write_table(out, table, meta)
    return {"out": str(out), "rows": len(rows), "skipped": notes, "elapsed_s": elapsed, "platform": platform,
            "device": meta["device"]}


def _shape_label(case: Case) -> str:
    return " ".join(f"{k}={v}" for k, v in case.shape.items())


TIMING = ("tensors built once per case; warm-up runs; before every timed run a buffer of twice the L2 size "
          "(32 MB on a CPU) is overwritten; each run timed with CUDA events (GPU) or perf_counter (CPU); "
          "measured_s = median of the runs, min_s and p90_s their spread; steps replay a CUDA graph on a GPU")


@contextlib.contextmanager
def _progress(show: bool, total: int):
    if not show:
        yield lambda _label: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<48.48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("collect", total=total)
        state = {"started": False}

        def advance(label: str) -> None:
            if state["started"]:
                bar.advance(task)
            state["started"] = True
            bar.update(task, description=label)

        yield advance
        bar.update(task, completed=total, description="done")


def write_table(out: Path, table: pd.DataFrame, meta: dict) -> None:
    """The CSV with provenance as `# key: value` lines on top, and the same provenance as JSON beside it."""
    lines = ["# ridgeplan calibrate collect: measured kernel times (fit with `ridgeplan calibrate fit`)"]
    for key in ("platform", "device", "collected_utc", "torch", "cuda", "driver", "python", "host"):
        if meta.get(key):
            lines.append(f"# {key}: {_clean(meta[key])}")
    for key, value in (meta.get("clocks_before") or {}).items():
        lines.append(f"# clock {key}: {value}")
    lines.append(f"# timing: {TIMING}")
    lines += [f"# note: {_clean(n)}" for n in meta.get("notes", [])]
    out.write_text("\n".join(lines) + "\n" + table.to_csv(index=False, float_format="%.6g"))
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


def _clean(value: object) -> str:
    return " ".join(str(value).replace("#", "no.").split())


def read_provenance(path: str | Path) -> dict[str, str]:
    """The `# key: value` lines at the top of a collected CSV."""
    out: dict[str, str] = {}
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            key, sep, value = line[1:].strip().partition(": ")
            if sep and key not in out:
                out[key] = value
    return out


def provenance(torch, platform: str) -> dict:
    meta = {"platform": platform, "collected_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": host.python_version(), "host": host.platform(),
            "ridgeplan_collector": "model.calibration.collect"}
    if platform == "cuda":
        i = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(i)
        meta.update({"device": props.name, "compute_capability": f"{props.major}.{props.minor}",
                     "multiprocessors": props.multi_processor_count, "memory_bytes": props.total_memory,
                     "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
        clocks = _clocks()  # driver version and SM/memory clocks: pynvml when installed, else nvidia-smi
        meta["driver"] = clocks.pop("driver", "") or "not recorded (neither pynvml nor nvidia-smi available)"
        meta["clocks_before"] = clocks
    else:
        meta.update({"device": f"CPU: {_cpu_name()} ({torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs)",
                     "cuda": "", "driver": ""})
    return meta


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return host.processor() or host.machine()


def _clocks() -> dict:
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(int(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or 0))
        return {"driver": pynvml.nvmlSystemGetDriverVersion(),
                "sm_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                "sm_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
                "memory_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
                "power_limit_w": pynvml.nvmlDeviceGetPowerManagementLimit(h) / 1000}
    except Exception:  # pynvml missing or NVML unusable: fall back to nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {}
    query = "driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit"
    try:
        text = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", "0"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in text.split(",")]
    if len(values) != 5:
        return {}
    return dict(zip(("driver", "sm_mhz", "sm_max_mhz", "memory_mhz", "power_limit_w"), values))
