"""Read NVIDIA's public measured kernel tables (aiconfigurator-core, Apache-2.0) into ridgeplan kernel rows.

The aiconfigurator-core wheel ships `aiconfigurator_core/systems/data/<gpu>/<op>/<engine>/<version>/*.parquet`:
GEMMs per dtype, context/generation attention, MLA, quantize (memory-bound) kernels and all-reduce, measured per
GPU and serving engine. This module lists and reads only those parquet files, from the wheel (zipfile) or an
extracted folder, and never anything else: in particular never `systems/silicon_sample.csv`, the project's
held-out test. `TableSource.opened` records every member read, so a test can check that.

Each table becomes rows of `model.roofline.kernels` / `model.calibration.collective_rows` form (kernel, dtype,
shape columns, measured_s) with a `family` (gemm_bf16, attention_decode, mla_prefill, all_reduce, ...) and a
`size` (FLOPs, bytes or message bytes) used to order shapes for the held-out splits.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import RidgeplanError

DATA_PREFIX = "systems/data/"
PACKAGE = "aiconfigurator-core"
# table GPU folder -> hardware_db device id
GPU_IDS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200", "gb200": "gb200", "b300_sxm": "b300",
           "gb300": "gb300", "a100_sxm": "a100-sxm-80gb", "l40s": "l40s", "rtx_pro_6000_server": "rtx-pro-6000-server",
           "b60": "arc-pro-b60"}
ENGINES = ("vllm", "sglang", "trtllm")
FAMILIES = ("gemm_bf16", "gemm_fp8", "gemm_fp4", "attention_prefill", "attention_decode", "mla_prefill",
            "mla_decode", "copy", "all_reduce", "moe_16", "moe_8", "moe_4", "moe_wo")
# DeepSeek-V3 MLA shapes (the tables' model): per head q/k 128 + 64 rope, v 128; the decode cache is one latent
# of 512 + 64 per token, absorbed decode attends with 576-wide queries and 512-wide values
MLA_PREFILL_HEAD_DIM, MLA_PREFILL_KV_DIM = 160.0, 320.0  # 4*160 = 2*(192 + 128) FLOPs; q,o 2*160 + k,v 320 elements
MLA_DECODE_HEAD_DIM, MLA_DECODE_KV_DIM = 544.0, 576.0  # 4*544 = 2*(576 + 512) FLOPs per head per key
# context_mla_perf kernel sources that time absorbed prefill: aiconfigurator's collector/sglang/collect_mla.py builds
# the layer with head_dim = kv_lora_rank + qk_rope_head_dim (576), v_head_dim = kv_lora_rank (512) and one KV head
# unless the backend is trtllm_mla, and SGLang's FlashAttentionBackend.forward_extend then runs absorbed MLA
# (flash_attn_with_kvcache over the latent cache, q_nope as `qv`); its trtllm_mla branch and TensorRT-LLM's
# collector (collector/trtllm/collect_mla.py: head_dim = qk_nope + qk_rope = 192, num_kv_heads = num_heads,
# v_head_dim 128) time the expanded MHA path
ABSORBED_PREFILL_SOURCES = ("flash_attention", "triton")


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RidgeplanError("pyarrow", "reading the kernel tables needs pyarrow: pip install 'ridgeplan[calibrate]'") \
            from None
    return pq


@dataclass
class TableSource:
    """The parquet tables of an aiconfigurator-core wheel or extracted folder; `opened` lists what was read."""

    path: Path
    opened: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise RidgeplanError("path", f"no such wheel or folder {str(self.path)!r}")
        if self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise RidgeplanError("path", f"{self.path.name} is neither a wheel nor a folder")
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
            roots = {n[: n.index(DATA_PREFIX) + len(DATA_PREFIX)] for n in names if DATA_PREFIX in n}
            self._members = {n[len(r):]: n for r in roots for n in names if n.startswith(r) and n.endswith(".parquet")}
        else:
            self._zip = None
            root = next((c for c in (self.path, self.path / "data", self.path / "systems" / "data",
                                     self.path / "aiconfigurator_core" / "systems" / "data")
                         if c.is_dir() and c.name == "data" and c.parent.name == "systems"), None)
            if root is None:
                raise RidgeplanError("path", f"no systems/data folder under {str(self.path)!r}")
            self._members = {str(p.relative_to(root)): str(p) for p in root.rglob("*.parquet")}
        if not self._members:
            raise RidgeplanError("path", f"no kernel tables (systems/data/**/*.parquet) in {str(self.path)!r}")

    @property
    def version(self) -> str:
        match = re.search(r"aiconfigurator_core-([0-9][^-]*)-", self.path.name)
        return match.group(1) if match else "unknown"

    def files(self) -> list[str]:
        """Relative table paths <gpu>/<op>/<engine>/<version>/<name>.parquet (listing only, nothing opened)."""
        return sorted(self._members)

    def read(self, rel: str) -> pd.DataFrame:
        if rel not in self._members or not rel.endswith(".parquet"):
            raise RidgeplanError("table", f"{rel!r} is not a kernel table of this source")
        member = self._members[rel]
        self.opened.append(member)
        pq = _pyarrow()
        if self._zip is not None:
            return pq.read_table(io.BytesIO(self._zip.read(member))).to_pandas()
        return pq.read_table(member).to_pandas()

    def newest(self, gpu: str, op: str, engine: str, name: str) -> str | None:
        """The newest version's <name>.parquet for one GPU, op folder and engine (None when absent)."""
        found = [f for f in self._members if f.startswith(f"{gpu}/{op}/{engine}/") and f.endswith(f"/{name}.parquet")]
        return max(found, key=lambda f: tuple(int(x) for x in re.findall(r"\d+", f.split("/")[3]))) if found else None

    def versions(self, gpu: str, op: str, engine: str, name: str) -> list[tuple[str, str]]:
        """(version, relative path) of every version's <name>.parquet for one GPU, op folder and engine."""
        return sorted((f.split("/")[3], f) for f in self._members
                      if f.startswith(f"{gpu}/{op}/{engine}/") and f.endswith(f"/{name}.parquet"))

    def gpus(self) -> list[str]:
        return sorted({f.split("/")[0] for f in self._members})


def _fastest(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per shape: the fastest kernel the engine offers for it (engines pick their best backend)."""
    return table.sort_values("latency").drop_duplicates(keys, keep="first")


def _gemm(t: pd.DataFrame) -> pd.DataFrame:
    # FP8: per-tensor or block-scaled, whichever kernel the engine runs faster for the shape; the row keeps which
    # one it was (`block_scaled` = 1: the table's fp8_block kernel, Efficiency.gemm_max_8b and the other _8b terms)
    dtypes = {"bfloat16": ("bf16", "gemm_bf16"), "fp8": ("fp8", "gemm_fp8"), "fp8_block": ("fp8", "gemm_fp8"),
              "nvfp4": ("fp4", "gemm_fp4")}
    t = t[t["gemm_dtype"].isin(list(dtypes))]
    t = t.assign(block_scaled=(t["gemm_dtype"] == "fp8_block").astype(float),
                 gemm_dtype=t["gemm_dtype"].replace({"fp8_block": "fp8"}))
    t = _fastest(t, ["gemm_dtype", "m", "n", "k"])
    out = pd.DataFrame({"kernel": "gemm", "dtype": t["gemm_dtype"].map(lambda d: dtypes[d][0]),
                        "family": t["gemm_dtype"].map(lambda d: dtypes[d][1]),
                        "m": t["m"], "n": t["n"], "k": t["k"], "block_scaled": t["block_scaled"],
                        "measured_s": t["latency"] * 1e-3})
    return out.assign(size=2.0 * out["m"] * out["n"] * out["k"])


def _plain(t: pd.DataFrame) -> pd.DataFrame:
    """bf16 attention with a bf16 KV cache and no sliding window (fp8-KV and windowed kernels are other paths)."""
    keep = (t["kv_cache_dtype"] == "bfloat16") & (t.get("window_size", 0) == 0) & (t.get("beam_width", 1) == 1)
    return t[keep & (t["attn_dtype"] == "bfloat16")] if "attn_dtype" in t else t[keep]


def _context_attention(t: pd.DataFrame) -> pd.DataFrame:
    t = _fastest(_plain(t), ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim"])
    out = pd.DataFrame({"kernel": "attention", "dtype": "bf16", "family": "attention_prefill",
                        "batch": t["batch_size"], "heads": t["num_heads"], "kv_heads": t["num_key_value_heads"],
                        "head_dim": t["head_dim"], "seq_len": t["isl"], "measured_s": t["latency"] * 1e-3})
    return out.assign(size=2.0 * out["batch"] * out["heads"] * out["head_dim"] * out["seq_len"] ** 2)


def _generation_attention(t: pd.DataFrame) -> pd.DataFrame:
    t = _fastest(_plain(t), ["batch_size", "step", "num_heads", "num_key_value_heads", "head_dim"])
    out = pd.DataFrame({"kernel": "decode_attention", "dtype": "bf16", "family": "attention_decode",
                        "batch": t["batch_size"], "heads": t["num_heads"], "kv_heads": t["num_key_value_heads"],
                        "head_dim": t["head_dim"], "context": t["step"] + 1, "measured_s": t["latency"] * 1e-3})
    return out.assign(size=2.0 * out["batch"] * out["kv_heads"] * out["head_dim"] * out["context"])


def _mla(t: pd.DataFrame, decode: bool) -> pd.DataFrame:
    # one GPU's heads (tp_size 1 rows: how other tp rows count heads is not stated), bf16 KV cache
    t = t[(t["kv_cache_dtype"] == "bfloat16") & (t["tp_size"] == 1) & (t["mla_dtype"] == "bfloat16")]
    if decode:
        t = _fastest(t, ["batch_size", "step", "num_heads"])
        out = pd.DataFrame({"kernel": "decode_attention", "dtype": "bf16", "family": "mla_decode",
                            "batch": t["batch_size"], "heads": t["num_heads"], "kv_heads": 1.0,
                            "head_dim": MLA_DECODE_HEAD_DIM, "kv_dim": MLA_DECODE_KV_DIM, "context": t["step"] + 1,
                            "mla": 1.0, "measured_s": t["latency"] * 1e-3})
        return out.assign(size=out["batch"] * out["context"] * MLA_DECODE_KV_DIM)
    t = _fastest(t, ["batch_size", "isl", "num_heads"])
    # the kernel the row timed: SGLang's FlashAttention (Hopper) and Triton backends run prefill absorbed, every
    # query head against the one latent (MQA: 576-wide q/k, 512-wide v); TensorRT-LLM and SGLang's trtllm_mla
    # (Blackwell) run it expanded (MHA, 192-wide q/k, 128-wide v)
    absorbed = t["kernel_source"].isin(ABSORBED_PREFILL_SOURCES) if "kernel_source" in t \
        else pd.Series(False, index=t.index)
    out = pd.DataFrame({"kernel": "attention", "dtype": "bf16", "family": "mla_prefill", "batch": t["batch_size"],
                        "heads": t["num_heads"], "kv_heads": t["num_heads"].where(~absorbed, 1),
                        "head_dim": np.where(absorbed, MLA_DECODE_HEAD_DIM, MLA_PREFILL_HEAD_DIM),
                        "kv_dim": np.where(absorbed, MLA_DECODE_KV_DIM, MLA_PREFILL_KV_DIM), "seq_len": t["isl"],
                        "mla": 1.0, "measured_s": t["latency"] * 1e-3})
    return out.assign(size=out["batch"] * out["heads"] * out["seq_len"] ** 2)


def _quantize(t: pd.DataFrame) -> pd.DataFrame:
    # static FP8 quantization of an m x k BF16 matrix: reads 2 bytes and writes 1 per element; `copy` rows move
    # 2 x bytes (read + write), so bytes = 1.5 m k
    # vLLM's static_scaled_fp8_quant and TensorRT-LLM's torch op stream at memory speed; SGLang's table times its
    # own path at ~10% of HBM bandwidth on H100 (not a streaming ceiling), so it is left out
    t = _fastest(t[~t["kernel_source"].str.contains("sglang", case=False)], ["m", "k"])
    out = pd.DataFrame({"kernel": "copy", "dtype": "bf16", "family": "copy", "bytes": 1.5 * t["m"] * t["k"],
                        "measured_s": t["latency"] * 1e-3})
    return out.assign(size=out["bytes"])


def _all_reduce(custom: pd.DataFrame | None, nccl: pd.DataFrame | None) -> pd.DataFrame:
    """The engine's all-reduce: its CUDA-graph custom kernel or NCCL, whichever is faster for the size."""
    parts = []
    if custom is not None:
        graph = custom["kernel_source"].str.contains("graph|TRTLLM", case=False, regex=True)
        parts.append(custom[graph & (custom["op_name"] == "all_reduce")][["num_gpus", "message_size", "latency"]])
    if nccl is not None:
        keep = (nccl["op_name"] == "all_reduce") & (nccl["nccl_dtype"] == "half")
        parts.append(nccl[keep][["num_gpus", "message_size", "latency"]])
    if not parts:
        return pd.DataFrame()
    t = _fastest(pd.concat(parts), ["num_gpus", "message_size"])
    out = pd.DataFrame({"kernel": "all_reduce", "dtype": "bf16", "family": "all_reduce",
                        "message_bytes": 2.0 * t["message_size"], "ranks": t["num_gpus"],
                        "measured_s": t["latency"] * 1e-3})
    return out.assign(size=out["message_bytes"])


# (op folder, table name, converter) of the kernel tables read per engine
_KERNEL_TABLES = (("gemm", "gemm_perf", _gemm), ("attention", "context_attention_perf", _context_attention),
                  ("attention", "generation_attention_perf", _generation_attention),
                  ("mla", "context_mla_perf", lambda t: _mla(t, decode=False)),
                  ("mla", "generation_mla_perf", lambda t: _mla(t, decode=True)),
                  ("quantize", "scale_matrix_perf", _quantize))


@dataclass(frozen=True)
class EngineTables:
    gpu: str  # table folder name
    engine: str
    rows: pd.DataFrame  # kernel/collective rows with family, size, measured_s, file
    files: tuple[str, ...]  # relative table paths read
    rows_read: int  # rows in those files before filtering


def engine_rows(source: TableSource, gpu: str, engine: str) -> EngineTables:
    """Every usable measurement for one GPU and engine, as ridgeplan rows."""
    if engine not in ENGINES:
        raise RidgeplanError("engine", f"unknown engine {engine!r}", ENGINES)
    frames, files, read = [], [], 0
    for op, name, convert in _KERNEL_TABLES:
        rel = source.newest(gpu, op, engine, name)
        if rel is None:
            continue
        raw = source.read(rel)
        files.append(rel)
        read += len(raw)
        frames.append(convert(raw).assign(file=rel))
    custom_rel = source.newest(gpu, "comm", engine, "custom_allreduce_perf")
    nccl_rel = source.newest(gpu, "comm", "nccl", "nccl_perf")
    custom = source.read(custom_rel) if custom_rel else None
    nccl = source.read(nccl_rel) if nccl_rel else None
    for rel, raw in ((custom_rel, custom), (nccl_rel, nccl)):
        if rel:
            files.append(rel)
            read += len(raw)
    ar = _all_reduce(custom, nccl)
    if len(ar):
        frames.append(ar.assign(file=" + ".join(r for r in (custom_rel, nccl_rel) if r)))
    moe = source.versions(gpu, "moe", engine, "moe_perf")
    if moe:  # whole MoE layers, every version (a newer one may reuse an older one's shapes)
        from model.calibration.moe_rows import moe_table_rows, newest_per_shape
        from model.engines import get_engine

        raw = [(version, source.read(rel)) for version, rel in moe]
        files += [rel for _, rel in moe]
        read += sum(len(t) for _, t in raw)
        frames.append(moe_table_rows(newest_per_shape(raw), get_engine(engine).unfused_expert_quant)
                      .assign(file=" + ".join(rel for _, rel in moe)))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(rows):
        rows = rows[np.isfinite(rows["measured_s"]) & (rows["measured_s"] > 0)].reset_index(drop=True)
        rows = with_v_head_dim(rows, engine)
    return EngineTables(gpu, engine, rows, tuple(files), read)


# SGLang's attention tables at head dimension 192 are MiMo-V2-Flash's layers only, keys and queries 192 wide, values
# 128 (aiconfigurator collector/sglang/collect_attn.py refuses head_dim 192 without the MiMo-V2 contract;
# collector/cases/models/MiMoV2FlashForCausalLM_cases.yaml: head_dim 192, v_head_dim 128). The tables do not say
# it, so the rows carry it (model.roofline.kernels.unfused_kv_store). TensorRT-LLM's MHA treats V as 192 wide (the
# same file) and vLLM's tables omit the model
SGLANG_V_HEAD_DIM = {192.0: 128.0}


def with_v_head_dim(rows: pd.DataFrame, engine: str) -> pd.DataFrame:
    """The rows with v_head_dim set where the engine's attention tables time narrower value heads (NaN elsewhere)."""
    if engine != "sglang" or "head_dim" not in rows:
        return rows
    attention = rows["family"].isin(("attention_prefill", "attention_decode")).to_numpy()
    v_head_dim = rows["head_dim"].map(SGLANG_V_HEAD_DIM).to_numpy(float)
    return rows.assign(v_head_dim=np.where(attention, v_head_dim, np.nan))
