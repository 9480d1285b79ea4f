"""The efficiency set of a device: the hand-set class defaults (ARCH_DEFAULTS, the engines' MoE kernel shares) and
the calibration files on top of them (`efficiency_for`).

The class defaults' sources are in docs/efficiency_sources.md; the per-engine files fitted to NVIDIA's public kernel
tables (`ridgeplan calibrate import`) and a user's own fit (`ridgeplan calibrate fit`) in docs/calibration.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.errors import RidgeplanError
from model.hardware.schema import Device
from model.roofline.efficiency import Efficiency


# Defaults per architecture class, from public measurements: docs/efficiency_sources.md has every number
# with its citation and whether it is measured (M) or inferred (I). Summary of the main anchors:
# large-GEMM ceilings from the "maximum achievable matmul FLOPS" table (stas00/ml-engineering): H100 BF16
# 794/989 = 0.80, FP8 1403/1979 = 0.71; A100 0.87; B200 0.78/0.76; MI300X 0.51-0.60. m_half fitted to vLLM
# FP8-vs-BF16 GEMM sweeps. Streaming bandwidth 0.85 (H100 GEMV), 0.87 (A100), 0.74 (B200). Kernel floors
# 1.6-2.6 us (gpu-benches). FlashAttention-2/3: 0.70-0.75 of peak. NCCL base latency about 6.6 us plus
# per-hop latency; measured 8-GPU small all-reduce 12.5-19 us. Because the kernel floor is additive,
# mem_bytes_half is small: the floor itself produces the measured fall-off of small transfers.
_BASE = dict(gemm_max_4=0.5, gemm_max_32=0.6, gemm_n_half=128.0, attention_q_half=16.0, mem_bytes_half=0.5e6,
             vector_max=0.5, dequant_penalty=0.2, step_overhead_s=5.0e-4, collective_base_s=8.0e-6)


# Grouped MoE kernels (Efficiency.moe_gemm_scale_* / moe_mem_scale_*), per engine: the MoE stages of `ridgeplan
# calibrate import` (model.calibration.importer, rows model.calibration.moe_rows) fitted to NVIDIA's measured MoE
# layers, aiconfigurator-core 0.12.0 systems/data/<gpu>/moe/<engine>/<version>/moe_perf.parquet (balanced routing,
# MoE-TP sweep, 1-16,384 tokens), the mean over B200/B300/GB200/GB300 (Blackwell) and H100/H200 (Hopper) kernel
# tables. Which kernels those are per engine: model.engines.<engine>.MOE_KERNELS. Measured/modelled with the dense
# ceilings, medians over a class's rows: block-FP8 grouped GEMMs 1.2x at one token rising to 2-3.4x past 1k tokens
# per expert (vLLM/SGLang on B200), W4A16 Marlin 2.3x at one token and 4-5x past 32 tokens per expert.
# A class is listed only where its fit lowers the held-out median |error| of its tables (interpolation and
# extrapolation shapes, mean over the class's GPUs) by more than the tables' run-to-run spread (2.4-2.9 points,
# TensorRT-LLM 1.3.0rc23 reuse.yaml); elsewhere the two-parameter form does not describe the kernel and it stays at
# the dense ceilings (1): Blackwell NVFP4 on every engine (vLLM 16.7 -> 18.1%, SGLang 16.2 -> 19.1%, TensorRT-LLM
# 33.9 -> 33.3%), BF16 under SGLang and TensorRT-LLM, Hopper BF16 under vLLM and TensorRT-LLM and FP8 under
# TensorRT-LLM (docs/moe.md, "Expert kernels"). Hopper has no FP4 tables (no FP4 tensor cores).
MOE_ENGINE_DEFAULTS: dict[str, dict[str, dict[str, float]]] = {
    "blackwell": {
        "vllm": dict(moe_gemm_scale_16=0.55, moe_mem_scale_16=1.03, moe_gemm_scale_8=0.25, moe_mem_scale_8=0.94,
                     moe_gemm_scale_wo=0.22, moe_mem_scale_wo=0.41),
        "sglang": dict(moe_gemm_scale_8=0.22, moe_mem_scale_8=0.86, moe_gemm_scale_wo=0.38, moe_mem_scale_wo=0.54),
        "trtllm": dict(moe_gemm_scale_8=0.65, moe_mem_scale_8=0.65, moe_gemm_scale_wo=0.24, moe_mem_scale_wo=0.25),
    },
    "hopper": {
        "vllm": dict(moe_gemm_scale_8=0.37, moe_mem_scale_8=0.87, moe_gemm_scale_wo=0.44, moe_mem_scale_wo=0.44),
        "sglang": dict(moe_gemm_scale_16=0.35, moe_mem_scale_16=0.78, moe_gemm_scale_8=0.51, moe_mem_scale_8=0.87,
                       moe_gemm_scale_wo=0.39, moe_mem_scale_wo=0.73),
        "trtllm": dict(moe_gemm_scale_wo=0.62, moe_mem_scale_wo=0.62),
    },
}
MOE_NEUTRAL = {f"moe_{kind}_scale_{c}": 1.0 for kind in ("gemm", "mem") for c in ("16", "8", "4", "wo")}
# without an engine: the mean of the three engines' values (1 where an engine keeps the dense ceilings)
_MOE_CLASS = {arch: {name: round(float(np.mean([e.get(name, 1.0) for e in engines.values()])), 2)
                     for name in sorted({n for e in engines.values() for n in e})}
              for arch, engines in MOE_ENGINE_DEFAULTS.items()}


def _eff(arch: str, **values: float) -> Efficiency:
    # hand-set classes give FP8/FP4 GEMMs the tile of their 16-bit GEMMs (only a calibration fits their own)
    tiles = {f"gemm_tile_m_{c}": values["gemm_tile_m"] for c in ("8", "4") if "gemm_tile_m" in values}
    return Efficiency(**{**_BASE, **tiles, **values}, source=f"{arch} class defaults (docs/efficiency_sources.md)")


ARCH_DEFAULTS: dict[str, Efficiency] = {
    "hopper": _eff("hopper", gemm_max_16=0.80, gemm_max_8=0.71, gemm_m_half=0, attention_max=0.70,
                   linear_attention_max=0.35, mem_max=0.85, kernel_floor_s=2.4e-6, **_MOE_CLASS["hopper"]),
    # FP4 activation quantization: 4.86 us + 2.58 B per element, the Blackwell class fit of NVIDIA's FP4 GEMM tables
    # (hardware_db/calibration/_class-blackwell.vllm.toml, from B200/B300/GB200/GB300; aiconfigurator-core 0.12.0);
    # FP8: 3.52 us + 3.63 B per element, the same class fit of the SGLang FP8 tables (_class-blackwell.sglang.toml;
    # the TensorRT-LLM and vLLM class fits give 3.49 and 3.48 us)
    "blackwell": _eff("blackwell", gemm_max_16=0.78, gemm_max_8=0.76, gemm_max_4=0.7, gemm_m_half=0,
                      attention_max=0.71, linear_attention_max=0.35, mem_max=0.74, kernel_floor_s=3.0e-6,
                      gemm_quant_s_4=4.86e-6, gemm_quant_bytes_4=2.58, gemm_quant_s_8=3.52e-6, gemm_quant_bytes_8=3.63,
                      **_MOE_CLASS["blackwell"]),
    "ampere": _eff("ampere", gemm_max_16=0.87, gemm_max_8=0.75, gemm_max_4=0.6, gemm_max_32=0.7, gemm_m_half=0,
                   attention_max=0.70, linear_attention_max=0.35, mem_max=0.87, kernel_floor_s=2.6e-6),
    "ada": _eff("ada", gemm_max_16=0.75, gemm_max_8=0.70, gemm_max_4=0.6, gemm_max_32=0.7, gemm_m_half=0,
                attention_max=0.55, linear_attention_max=0.3, mem_max=0.88, kernel_floor_s=1.6e-6),
    "turing": _eff("turing", gemm_max_16=0.60, gemm_max_8=0.50, gemm_max_4=0.45, gemm_m_half=0,
                   attention_max=0.35, linear_attention_max=0.25, mem_max=0.80, kernel_floor_s=3.0e-6),
    "volta": _eff("volta", gemm_max_16=0.80, gemm_max_8=0.6, gemm_max_32=0.75, gemm_m_half=0, attention_max=0.40,
                  linear_attention_max=0.25, mem_max=0.88, kernel_floor_s=2.2e-6),
    "pascal": _eff("pascal", gemm_max_16=0.6, gemm_max_8=0.5, gemm_max_32=0.75, gemm_m_half=0, attention_max=0.3,
                   linear_attention_max=0.2, mem_max=0.8, kernel_floor_s=3.0e-6),
    "cdna2": _eff("cdna2", gemm_max_16=0.77, gemm_max_8=0.60, gemm_m_half=0, attention_max=0.40,
                  linear_attention_max=0.25, mem_max=0.78, kernel_floor_s=2.4e-6, step_overhead_s=1.0e-3),
    "cdna3": _eff("cdna3", gemm_max_16=0.55, gemm_max_8=0.45, gemm_m_half=0, attention_max=0.45,
                  linear_attention_max=0.25, mem_max=0.75, kernel_floor_s=3.0e-6, step_overhead_s=1.0e-3),
    "gaudi3": _eff("gaudi3", gemm_max_16=0.74, gemm_max_8=0.77, gemm_m_half=0, attention_max=0.50,
                   linear_attention_max=0.25, mem_max=0.80, kernel_floor_s=5.0e-6, step_overhead_s=2.0e-3),
    "tpu": _eff("tpu", gemm_max_16=0.78, gemm_max_8=0.50, gemm_m_half=0, attention_max=0.60,
                linear_attention_max=0.3, mem_max=0.85, kernel_floor_s=2.0e-6, step_overhead_s=1.0e-3),
    # CPUs: vector units with no large MMA tiles, so small GEMMs keep most of their efficiency; STREAM-class
    # bandwidth 0.7-0.8 of theoretical on desktops and servers (inferred, see docs/efficiency_sources.md notes)
    "cpu": _eff("cpu", gemm_max_16=0.6, gemm_max_8=0.5, gemm_max_32=0.7, gemm_m_half=2, gemm_n_half=16, gemm_tile_m=1,
                attention_max=0.3, attention_q_half=1, linear_attention_max=0.3, mem_max=0.70, kernel_floor_s=5.0e-6,
                step_overhead_s=1.0e-3, collective_base_s=20e-6),
    # phones and laptop SoCs without tensor-core tiles (Apple GPUs run one-token GEMMs as GEMVs on SIMD units, so no
    # tile padding), unified memory (inferred)
    "edge": _eff("edge", gemm_max_16=0.5, gemm_max_8=0.4, gemm_max_32=0.5, gemm_m_half=0, gemm_tile_m=1,
                 attention_max=0.3, linear_attention_max=0.2, mem_max=0.65, kernel_floor_s=10e-6,
                 step_overhead_s=2.0e-3),
    # processing-in-memory, computational storage, FPGAs, dataflow parts: streaming engines, no tile padding
    "near-memory": _eff("near-memory", gemm_max_16=0.7, gemm_max_8=0.7, gemm_max_32=0.7, gemm_m_half=1, gemm_tile_m=1,
                        attention_max=0.5, attention_q_half=1, linear_attention_max=0.5, mem_max=0.8,
                        kernel_floor_s=5.0e-6, step_overhead_s=1.0e-3),
    "generic": _eff("generic", gemm_max_16=0.6, gemm_max_8=0.55, gemm_m_half=0, attention_max=0.4,
                    linear_attention_max=0.25, mem_max=0.75, kernel_floor_s=3.0e-6),
}
for _alias, _arch in (("tpu-v5e", "tpu"), ("tpu-v5p", "tpu"), ("tpu-v3", "tpu"), ("cdna4", "cdna3")):
    ARCH_DEFAULTS.setdefault(_alias, ARCH_DEFAULTS[_arch])

# device kinds whose arch names vary (x86-zen4, arm-neoverse-v2, apple-m2, pim-hbm2, fpga-versal, ...)
_KIND_CLASS = {"cpu": "cpu", "edge": "edge", "pim": "near-memory", "csd": "near-memory", "fpga": "near-memory",
               "accelerator": "near-memory", "npu": "generic", "ssd": "near-memory"}


ENGINES = ("vllm", "sglang", "trtllm")  # the engine names of model.serving.policy


def calibration_path(device_id: str, engine: str | None = None) -> Path:
    """hardware_db/calibration/<id>.<engine>.toml (fitted per engine), or <id>.toml when engine is None."""
    from model.hardware.db import builtin_root

    name = f"{device_id}.{engine}.toml" if engine else f"{device_id}.toml"
    return builtin_root() / "calibration" / name


def _pick_calibration(device: Device, engine: str | None) -> tuple[Path | None, Path | None]:
    """(class file, device file) that exist for this device and engine. A `ridgeplan calibrate fit` file <id>.toml
    (measured on the user's own GPU) wins over the public-table file <id>.<engine>.toml; a class file
    (`_class-<arch>.<engine>.toml`) applies to every device of the class, below the device's own file. Without an
    engine only <id>.toml is looked for."""
    names = ((calibration_path(device.id), calibration_path(device.id, engine)) if engine
             else (calibration_path(device.id),))
    device_file = next((p for p in names if p.is_file()), None)
    class_file = calibration_path(f"_class-{device.arch}", engine) if engine else None
    return (class_file if class_file is not None and class_file.is_file() else None), device_file


def _load_calibration(eff: Efficiency, path: Path) -> Efficiency:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    builtin = path.resolve().parent == calibration_path("x").resolve().parent
    return eff.with_overrides(dict(data.get("efficiency", {})),
                              f"calibration {path.name}" + (" (hardware_db/calibration)" if builtin else ""))


def efficiency_for(device: Device, calibration: str | Path | None | bool = None,
                   engine: str | None = None) -> Efficiency:
    """The efficiency set for a device: arch defaults, the class calibration, the file's [efficiency], then the
    device calibration.

    `calibration`: None picks up hardware_db/calibration/<id>.toml (your own `calibrate fit`); True also the
    public-table files <id>.<engine>.toml on top of the class file _class-<arch>.<engine>.toml, when they exist;
    False ignores them all; a path loads that file.
    `engine`: vllm | sglang | trtllm, whose kernel tables the per-engine files were fitted to; None (callers that
    model no serving engine: training, kernel checks) uses only an engine-less <id>.toml.
    """
    if engine is not None and engine not in ENGINES:
        raise RidgeplanError("engine", f"unknown engine {engine!r}", ENGINES)
    if device.arch in ARCH_DEFAULTS:
        eff = ARCH_DEFAULTS[device.arch]
        if engine is not None and device.arch in MOE_ENGINE_DEFAULTS:  # that engine's own MoE kernels; a class it
            # does not list keeps the dense ceilings (1), not the engine-less mean of the class defaults
            eff = replace(eff, **{**MOE_NEUTRAL, **MOE_ENGINE_DEFAULTS[device.arch][engine]},
                          source=f"{eff.source}; {engine} MoE kernels (kernel-table fit)")
    elif device.kind in _KIND_CLASS and _KIND_CLASS[device.kind] != "generic":
        cls = _KIND_CLASS[device.kind]
        eff = replace(ARCH_DEFAULTS[cls],
                      source=f"{cls} class defaults for a {device.kind} (inferred; no measurements)")
    else:
        eff = replace(ARCH_DEFAULTS["generic"],
                      source=f"generic defaults (no efficiency class for arch {device.arch!r})")
    # the per-engine public-table files apply when asked for (calibration=True): on the Blackwell engine rows they
    # make simulated dense TTFT and disaggregated TPOT worse (docs/calibration.md), so the default keeps the hand-set
    # classes plus a user's own fit
    picked = engine if calibration is True else None
    class_file, device_file = _pick_calibration(device, picked) if calibration in (None, True) else (None, None)
    if class_file is not None:
        eff = _load_calibration(eff, class_file)
    if device.efficiency:
        eff = eff.with_overrides(dict(device.efficiency), "the device's own measured "
                                 + ", ".join(f"{k} {v:g}" for k, v in device.efficiency.items()))
    if calibration not in (None, True, False):
        path = Path(calibration)
        if not path.is_file():
            raise RidgeplanError("calibration", f"no such calibration file {str(path)!r}")
        device_file = path
    if device_file is not None:
        eff = _load_calibration(eff, device_file)
    elif class_file is None and calibration is not False:
        eff = replace(eff, source=f"{eff.source}; hand-set, no calibration file for {device.id}"
                      + (f" ({engine})" if engine else " (no engine named)"))
    return eff
