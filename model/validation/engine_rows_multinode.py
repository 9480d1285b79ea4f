"""The prefill/decode split of InferenceMAX's multi-node GB200/GB300 DeepSeek-R1 runs, from the benchmark's own launch
configs (SemiAnalysisAI/InferenceX, Apache-2.0), for the engine rows whose columns lose it.

Two exports lose it:
- rows tagged `tp{T}_ep1` (T 12..72) record T, the run's GPU total, as every pool's TP (engine_rows_layout.
  multinode_total_reason); some are labelled agg but duplicate a disaggregated row of the same run;
- SGLang rows of February 2026 record a decode worker's GPUs (24 or 48) as attention TP with no attention DP, where
  the config runs it as DEP (data-parallel attention + expert parallel over every GPU of the worker).

A row is matched to the runs of its system, engine, precision and lengths whose concurrency list holds the row's
concurrency and whose GPU count is the one the row records: the total T for a tagged row (`by="total"`), or the
prefill and decode worker's GPUs for the February rows (`by="worker"`). One run (or several with one layout and
MTP setting) gives the split; several that differ are an ambiguity and the row is refused with both named.

Readings, each with its source (the excerpts are committed verbatim in tests/data/inferencex_multinode.txt):
- TensorRT-LLM (dynamo-trt, nvidia/DeepSeek-R1 FP4 on GB200): runners/launch_gb200-nv.sh @ 450d834a9 (Nov 2025),
  `./submit_disagg.sh <mtp_mode> <mode> ctx_num gen_num gen_tp ...  "<concurrencies>"`; .github/configs/
  nvidia-master.yaml @ 93e1b3ca1 (the same runs): "Prefill tp and ep are always 4 because each GB200 node has 4 GPUs
  and ctx_tp_size is hardcoded to 4", prefill dp-attn false for `tep` and true for `dep`; the decode worker runs
  TP gen_tp x EP gen_tp (`tep`: attention_dp false) or DEP gen_tp (`dep`: attention_dp true).
  The recorded concurrency of a `tep` run (gen_num > 1) is the listed value times gen_num: every recorded value of
  those runs is (141 x 4 = 564, 36 x 4 = 144, 34 x 3 = 102, 18 x 3 = 54), none other is; the dynamo script that
  multiplies (benchmark_disagg.slurm) is not in the snapshot, so this one reading rests on the rows themselves.
- SGLang (dynamo-sglang, DeepSeek-R1-0528 FP8 on GB200): runners/launch_gb200-nv.sh @ 450d834a9 and @ 175fe5364:
  `submit_disagg.sh PREFILL_NODES PREFILL_WORKERS DECODE_NODES DECODE_WORKERS ...` with the comments "3 prefill
  workers each at DEP8 and 1 decode worker at DEP48", "1 prefill worker at DEP4 and 4 decode workers at DEP4"
  (4 GPUs per GB200 node; a worker's GPUs = nodes x 4 / workers).
- SGLang February 2026: nvidia-master.yaml @ 2767db504 (GB200 FP4), @ 3282fdeba (GB300 FP4), @ 37f353be2 (GB200
  and GB300 FP8): prefill/decode num-worker, tp, ep, dp-attn per concurrency list.
DEP N is SGLang's `--tp N --dp N --enable-dp-attention --ep N` (srt-slurm recipes in InferenceX,
benchmarks/multi_node/srt-slurm-recipes/sglang/deepseek-v4/8k1k/disagg-gb200-1p1d-dep8-dep16-6-c512.yaml:
tensor-parallel-size 16, data-parallel-size 16, expert-parallel-size 16, enable-dp-attention true): one attention
head group per GPU and MoE-EP N, ridgeplan's TP1 x ADP N x EP N.
SGLang refuses an EP size that does not divide the physical experts (python/sglang/srt/eplb/expert_location.py:
`num_physical_experts = num_logical_experts + ep_num_redundant_experts; assert num_physical_experts % ep_size ==
0`), so DEP24/DEP48 decode workers of DeepSeek-R1 (256 routed experts) ran with redundant experts. The configs do
not record how many; these pools take 32, the count of the SGLang team's DeepSeek large-EP deployments (288
physical experts, lmsys.org/blog/2025-05-05-large-scale-ep), which 24 and 48 both divide. This one assumption
is named in each such row's `split_source`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model.placement.layout import Layout

TRT_NOV = "InferenceX runners/launch_gb200-nv.sh @ 450d834a9 (layouts: .github/configs/nvidia-master.yaml @ 93e1b3ca1)"
SGL_NOV = "InferenceX runners/launch_gb200-nv.sh @ 450d834a9"
SGL_DEC = "InferenceX runners/launch_gb200-nv.sh @ 175fe5364"
YAML = "InferenceX .github/configs/nvidia-master.yaml @ {}"


@dataclass(frozen=True)
class Pool:
    """One side of a disaggregated run: `workers` instances of `gpus` GPUs each, attention data-parallel or
    tensor-parallel, MoE-EP `ep` (MoE-TP the rest)."""

    workers: int
    gpus: int
    attention_dp: bool
    ep: int
    redundant_experts: int = 0

    def layout(self) -> Layout:
        tp, adp = (1, self.gpus) if self.attention_dp else (self.gpus, 1)
        return Layout(tp=tp, attention_dp=adp, ep=self.ep, moe_tp=self.gpus // self.ep,
                      redundant_experts=self.redundant_experts)


@dataclass(frozen=True)
class MultinodeRun:
    system: str
    backend: str
    precision: str  # the rows' precision column
    isl: int
    osl: int
    concurrencies: tuple[int, ...]  # as the rows record them
    prefill: Pool
    decode: Pool
    mtp: int  # decode MTP draft tokens (0: none)
    by: str  # "total": rows recording the GPU total; "worker": rows recording each worker's GPUs
    source: str

    @property
    def total_gpus(self) -> int:
        return self.prefill.workers * self.prefill.gpus + self.decode.workers * self.decode.gpus

    def label(self) -> str:
        def one(p: Pool) -> str:
            extra = f" (+{p.redundant_experts} redundant experts, assumed)" if p.redundant_experts else ""
            return f"{p.workers}x{p.layout().label()}{extra}"
        return f"{one(self.prefill)} + {one(self.decode)}" + (f" MTP{self.mtp}" if self.mtp else "")


def _trt(isl: int, mtp: int, mode: str, ctx: int, gen: int, gen_tp: int, concs: str) -> MultinodeRun:
    """One `./submit_disagg.sh "mtp=.." "<mode>" ctx gen gen_tp ...  "<concs>"` line: ctx prefill workers at TP4 x EP4
    (attention DP in `dep`), gen decode workers at gen_tp GPUs; a `tep` run's recorded concurrency is the list x gen."""
    dep = mode == "dep"
    scale = 1 if dep else gen
    return MultinodeRun("gb200", "trtllm", "fp4", isl, 1024, tuple(int(c) * scale for c in concs.split()),
                        Pool(ctx, 4, dep, 4), Pool(gen, gen_tp, dep, gen_tp), mtp, "total", TRT_NOV)


DEEPSEEK_R1_EXPERTS = 256  # config.json n_routed_experts
SGLANG_REDUNDANT_EXPERTS = 32  # lmsys.org/blog/2025-05-05-large-scale-ep (288 physical experts); see the docstring


def _sgl_dep(workers: int, gpus: int) -> Pool:
    """An SGLang DEP worker: redundant experts where its EP does not divide DeepSeek-R1's experts."""
    spare = 0 if DEEPSEEK_R1_EXPERTS % gpus == 0 else SGLANG_REDUNDANT_EXPERTS
    return Pool(workers, gpus, True, gpus, spare)


def _sgl(isl: int, p_nodes: int, p_workers: int, d_nodes: int, d_workers: int, concs: str, source: str,
         precision: str = "fp8", system: str = "gb200", by: str = "total") -> MultinodeRun:
    """One `submit_disagg.sh PREFILL_NODES PREFILL_WORKERS DECODE_NODES DECODE_WORKERS` launch: DEP workers of
    nodes x 4 / workers GPUs each."""
    p, d = p_nodes * 4 // p_workers, d_nodes * 4 // d_workers
    return MultinodeRun(system, "sglang", precision, isl, 1024, tuple(int(c) for c in concs.split("x")),
                        _sgl_dep(p_workers, p), _sgl_dep(d_workers, d), 0, by, source)


def _yaml(system: str, precision: str, isl: int, concs: tuple[int, ...], prefill: Pool, decode: Pool,
          commit: str) -> MultinodeRun:
    return MultinodeRun(system, "sglang", precision, isl, 1024, concs, prefill, decode, 0, "worker",
                        YAML.format(commit))


RUNS: tuple[MultinodeRun, ...] = (
    # TensorRT-LLM, 1k/1k then 8k/1k, MTP on then off (launch_gb200-nv.sh @ 450d834a9, in its order)
    _trt(1024, 3, "tep", 1, 4, 8, "1 2 4 8 16 36"),
    _trt(1024, 3, "dep", 1, 1, 16, "512 1075"),
    _trt(1024, 1, "dep", 2, 1, 16, "2150"),
    _trt(1024, 3, "dep", 1, 1, 32, "512"),
    _trt(1024, 1, "dep", 1, 1, 8, "2252"),
    _trt(1024, 0, "tep", 1, 4, 8, "1 2 4 8 16 32 64 141"),
    _trt(1024, 0, "dep", 1, 1, 32, "1075"),
    _trt(1024, 0, "dep", 1, 1, 16, "1075"),
    _trt(1024, 0, "dep", 2, 1, 16, "2048 4300"),
    _trt(1024, 0, "dep", 1, 1, 8, "4300"),
    _trt(8192, 3, "tep", 1, 3, 8, "1 2 4 8 18"),
    _trt(8192, 3, "dep", 5, 1, 32, "128 269"),
    _trt(8192, 3, "dep", 8, 1, 32, "538"),
    _trt(8192, 2, "dep", 8, 1, 16, "1075"),
    _trt(8192, 1, "dep", 6, 1, 8, "2150"),
    _trt(8192, 0, "tep", 1, 3, 8, "1 2 4 8 16 34"),
    _trt(8192, 0, "dep", 4, 1, 32, "256 538"),
    _trt(8192, 0, "dep", 6, 1, 16, "1075"),
    _trt(8192, 0, "dep", 8, 1, 16, "2150"),
    _trt(8192, 0, "dep", 5, 1, 8, "2150"),
    # SGLang FP8, November 2025 then December 2025
    _sgl(1024, 6, 3, 12, 1, "1024x2048x4096x4608x4864x4992x5120x5376x5632x6144x8192", SGL_NOV),
    _sgl(8192, 12, 6, 6, 1, "128x256x384x448x512x576x1024x2048x4096", SGL_NOV),
    _sgl(1024, 4, 2, 8, 1, "4096", SGL_DEC),
    _sgl(1024, 1, 1, 4, 4, "2x4x8x16x64x128", SGL_DEC),
    _sgl(1024, 6, 3, 12, 1, "1024x2048x4096", SGL_DEC),
    _sgl(8192, 12, 6, 6, 1, "128x256x384x448x512x576x1024x2048x4096", SGL_DEC),
    # SGLang, February 2026: the DEP24/DEP48 decode workers (the other entries of these configs are recorded right)
    _yaml("gb200", "fp4", 1024, (2048, 4096), Pool(4, 4, True, 4), _sgl_dep(1, 48), "2767db504"),
    _yaml("gb200", "fp4", 8192, (512, 2048, 4096), Pool(6, 4, False, 1), _sgl_dep(1, 48), "2767db504"),
    _yaml("gb300", "fp4", 1024, (512, 2048, 4096, 8192), Pool(4, 4, True, 4), _sgl_dep(1, 48), "3282fdeba"),
    _yaml("gb300", "fp4", 8192, (512, 2048, 4096), Pool(6, 4, False, 1), _sgl_dep(1, 48), "3282fdeba"),
    _yaml("gb200", "fp8", 1024, (1024, 2048, 4096), _sgl_dep(3, 8), _sgl_dep(1, 48), "37f353be2"),
    _yaml("gb200", "fp8", 8192, (2048, 4096, 6144), _sgl_dep(6, 8), _sgl_dep(1, 24), "37f353be2"),
    _yaml("gb300", "fp8", 8192, (2048, 4096), _sgl_dep(6, 8), _sgl_dep(1, 24), "37f353be2"),
)



def _num(value: Any) -> int | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else int(v)


def _candidates(row: Mapping[str, Any]) -> list[MultinodeRun]:
    from model.validation.engine_rows_layout import launch_tag, silicon_concurrency

    conc = silicon_concurrency(row.get("silicon_data_source", ""))
    if conc is None:
        return []
    tag = launch_tag(row)
    total = tag[0] if tag and tag[1] == 1 else None
    pre, dec = _num(row.get("prefill_tp_size")), _num(row.get("decode_tp_size"))
    out = []
    for run in RUNS:
        if (run.system, run.backend, run.precision, run.isl, run.osl) != (
                str(row.get("system")), str(row.get("backend")), str(row.get("precision")), _num(row.get("isl")),
                _num(row.get("osl"))) or conc not in run.concurrencies:
            continue
        by_total = run.by == "total" and total == run.total_gpus and total > 8
        by_worker = run.by == "worker" and str(row.get("mode")) != "agg" and (pre, dec) == (run.prefill.gpus,
                                                                                           run.decode.gpus)
        if by_total or by_worker:
            out.append(run)
    return out


def multinode_run(row: Mapping[str, Any]) -> tuple[MultinodeRun | None, str]:
    """(the run, '') when the launch configs give the row's split; (None, why) when candidates exist but do not
    (ambiguous, or MTP decoding, which the disaggregated simulation does not model); (None, '') when no config
    covers the row."""
    runs = _candidates(row)
    if not runs:
        return None, ""
    kinds = {(r.prefill, r.decode, r.mtp) for r in runs}
    if len(kinds) > 1:
        return None, ("ambiguous multi-node split: the launch configs run " + " and ".join(
            sorted({r.label() for r in runs})) + " at this GPU count and concurrency, and the row does not say which")
    run = runs[0]
    if run.mtp:
        tokens = f"{run.mtp} draft token" + ("s" if run.mtp > 1 else "")
        return None, (f"the launch config ({run.label()}, {run.source}) decodes with MTP ({tokens}), which the "
                      "disaggregated simulation does not model")
    return run, ""


def with_multinode_split(row: Mapping[str, Any]) -> dict:
    """The row with its split written in from the launch config it matches (mode disagg, per-pool columns, worker
    counts, `split_source`), or unchanged (plus an empty `split_source`) when none matches."""
    out = dict(row)
    run, _ = multinode_run(row)
    out["split_source"] = ""
    if run is None:
        return out
    out["mode"] = "disagg"
    for name, pool in (("prefill", run.prefill), ("decode", run.decode)):
        lay = pool.layout()
        out.update({f"{name}_num_workers": pool.workers, f"{name}_tp_size": lay.tp, f"{name}_pp_size": 1,
                    f"{name}_attention_dp_size": lay.attention_dp, f"{name}_moe_tp_size": lay.moe_tp,
                    f"{name}_moe_ep_size": lay.ep, f"{name}_redundant_experts": lay.redundant_experts})
    out["split_source"] = f"{run.label()} ({run.source})"
    return out


PLACEHOLDER_SOURCE = ("InferenceX .github/configs/nvidia-master.yaml @ 93e1b3ca1 and @ c040b5cf2, "
                      "dsr1-fp8/fp4-gb200-dynamo-sglang: `tp: 1`, `ep: 1` under 'tp, ep, and dp-attn do nothing because "
                      "they are hardcoded'")


def placeholder_reason(row: Mapping[str, Any]) -> str:
    """Why a GB200 SGLang DeepSeek-R1 row tagged `tp1_ep1` with every pool at TP1 is not a layout ('' otherwise): the
    December 2025 configs write tp 1 / ep 1 as placeholders (the worker split is set by node counts in the launch
    script), so TP1 is not the run (DeepSeek-R1 does not fit one GPU); these rows are not mapped to a launch here."""
    from model.validation.engine_rows_layout import launch_tag

    if (launch_tag(row) != (1, 1) or str(row.get("backend")) != "sglang"
            or str(row.get("system")) != "gb200" or "DeepSeek" not in str(row.get("model_path"))):
        return ""
    cols = [f"{p}_{c}" for p in ("prefill", "decode") for c in ("tp_size", "attention_dp_size", "moe_tp_size",
                                                                  "moe_ep_size")]
    if any((_num(row.get(c)) or 1) > 1 for c in cols):
        return ""
    return (f"the pools' TP1 is the launch config's placeholder ({PLACEHOLDER_SOURCE}); the run's split is set by "
            "node counts the row does not record, and is not mapped here")
