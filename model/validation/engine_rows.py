"""Real-engine rows (aiconfigurator-core 0.12.0, Apache-2.0, NVIDIA; Blackwell systems only): steady state and
simulator against measured TTFT and TPOT, median |error| per engine, GPU, model and mode.

Nothing is fitted per row. Each row's deployment: model_path -> catalogue id, system -> hardware_db device,
precision -> weight/KV format, tp/pp from the row; the client is a closed loop at the row's
silicon_concurrency (per replica: batch_size x attention_dp when the total is larger) with N = 10 x C
requests (at least 8), all C clients starting together, none left out. That is aiconfigurator's own benchmark
runner when the first of these rows were measured (src/aiconfigurator/eval/benchmarks/genai_perf_runner.py,
Oct 2025: `aiperf profile --concurrency C --request-count 10C --warmup-request-count 2C`, fixed ISL/OSL,
ignore_eos); aiperf waits for every warm-up response before profiling starts, so the profiled run opens with
all C requests at once, like a cold start, and the warm-up only removes cold-start effects this model has
not got. Its later generated scripts send 50C (Feb-Mar 2026) and 20C (from Apr 2026) after the same 2C warm-up
(generator/config/backend_templates/benchmark/bench_run.sh.j2); the README shows the sensitivity.
Rows that cannot be expressed are listed with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from model.errors import RidgeplanError
from model.validation.engine_rows_layout import SYSTEMS
from model.validation.engine_rows_layout import silicon_concurrency as _concurrency  # one reader of the column

REQUESTS_PER_CLIENT = 10  # aiperf --request-count 10C (aiconfigurator eval runner, see the module docstring)
WARMUP_PER_CLIENT = 0  # aiperf's 2C warm-up drains before profiling: the profiled run still starts cold


@dataclass(frozen=True)
class EngineRowsReport:
    rows: pd.DataFrame  # one per row: predictions, errors, or the reason it is not expressible

    def summary(self, by: str) -> pd.DataFrame:
        ok = self.rows[self.rows["reason"] == ""].copy()
        assumed = ok["workers"].astype(str).str.contains("assumed")
        ok.loc[assumed, "mode"] = "disagg, workers assumed 1:1"
        out = []
        if ok.empty:
            return pd.DataFrame(columns=["mode", by, "rows"])
        for key, g in ok.groupby(["mode", by]):
            rec = {"mode": key[0], by: key[1], "rows": len(g)}
            for m in ("steady", "sim"):
                for q in ("ttft", "tpot"):
                    e = g[f"{m}_{q}_err"].dropna()
                    rec[f"{m}_{q}_median_abs_err"] = float(np.median(np.abs(e))) if len(e) else float("nan")
            out.append(rec)
        return pd.DataFrame(out)




_CACHE: dict = {}


def _setup(row: pd.Series, pool: str, policy, max_context: float, speculation=None, calibration: bool = False):
    """The deployment (model.validation.engine_rows_layout.row_deployment: catalogue model, GPU and node, quant
    modes, TP x attention-DP, MoE-TP x MoE-EP, the engine's layout rule) and its cost table, built once for every
    row that shares them."""
    from model.serving.simulator import build_cost_table
    from model.validation.engine_rows_layout import row_deployment

    p = f"{pool}_" if pool else ""
    key = (row["model_path"], row["system"], row["precision"], row.get("gemm_quant_mode"), row.get("moe_quant_mode"),
           row["backend"], *(row.get(f"{p}{c}") for c in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size",
                                                          "moe_ep_size", "redundant_experts")),
           policy, speculation, calibration)
    key = tuple("" if (isinstance(k, float) and k != k) else k for k in key)
    if key not in _CACHE:
        d = row_deployment(row, pool, calibration=calibration)
        _CACHE[key] = (d, build_cost_table(d, policy, max_context, speculation))
    return _CACHE[key]


def _layout_reason(r: pd.Series, prefix: str = "") -> str:
    """An empty or 0 attention_dp_size means attention DP is off (the rows write 0/NaN for 'not used') when the
    MoE columns close MoE-TP x MoE-EP = TP on their own (or are empty: a dense model); otherwise the row does not
    say how its GPUs are split."""
    tp, adp = r[f"{prefix}tp_size"], r[f"{prefix}attention_dp_size"]
    if pd.isna(tp):
        return f"{prefix}tp_size is empty"
    if pd.isna(adp) or adp == 0:
        moe = [r.get(f"{prefix}moe_tp_size"), r.get(f"{prefix}moe_ep_size")]
        moe = [1 if pd.isna(v) or v <= 0 else int(v) for v in moe]
        if moe[0] * moe[1] not in (1, int(tp)):
            return f"{prefix}attention_dp_size is {adp} and MoE-TP x MoE-EP ({moe[0]}x{moe[1]}) is not TP {int(tp)}"
    return ""


def _expressible(r: pd.Series) -> str:
    """Why a row cannot be expressed before building it ('' when it may be); the deployment itself refuses the
    rest (an unknown model, a layout its engine rejects, ...) with its own reason."""
    from model.validation.engine_rows_layout import multinode_total_reason, row_model
    from model.validation.engine_rows_defects import data_defect_reason
    from model.validation.engine_rows_multinode import placeholder_reason

    if _concurrency(r["silicon_data_source"]) is None:
        return "no silicon_concurrency in silicon_data_source"
    # data defects are reported with their evidence, never compared (engine_rows_defects)
    if why := data_defect_reason(r) or multinode_total_reason(r) or placeholder_reason(r):
        return why
    try:
        row_model(r)
    except RidgeplanError as err:
        return err.one_line()
    if r["mode"] != "agg":
        return _layout_reason(r, "prefill_") or _layout_reason(r, "decode_")
    return _layout_reason(r)


def _policy(engine: str, isl: int, system: str, batch_size: int | None = None, speculation=None):
    """The engine's policy as the benchmark launched it: vLLM's server defaults for the GPU; TensorRT-LLM as
    aiconfigurator's generator launches an aggregated worker (model.engines.trtllm.aic_agg_limits: max_batch_size
    = the row's batch size, max_num_tokens = batch size + ISL + 1500, no chunked context), or, for a run in
    InferenceX's MTP image, as its MTP script does (engine_rows_layout.mtp_max_num_tokens)."""
    from model.validation.engine_rows_layout import mtp_max_num_tokens

    from model.engines.trtllm import aic_agg_limits
    from model.engines.vllm import server_batch_defaults
    from model.hardware.db import load_device
    from model.serving.policy import ENGINES

    policy = ENGINES[engine]
    if engine == "vllm":
        dev = load_device(SYSTEMS[system][0])
        tokens, seqs = server_batch_defaults(dev.memory.total_bytes, dev.name)
        policy = policy.with_(max_num_batched_tokens=tokens, max_num_seqs=seqs)
    if engine == "trtllm":
        tokens, seqs = aic_agg_limits(isl, batch_size)
        if speculation is not None and seqs is not None:
            tokens = mtp_max_num_tokens(speculation.k, seqs, isl)
        policy = policy.with_(max_num_batched_tokens=tokens, max_num_seqs=seqs)
    return policy


def _group(rows: pd.DataFrame, max_context: float, per_client: int = REQUESTS_PER_CLIENT,
           warmup_per_client: int = WARMUP_PER_CLIENT, calibration: bool = False,
           range_ratio: float = 1.0) -> list[dict]:
    """Rows sharing model, GPU, precision, layout, engine and lengths: one vectorized steady state over their
    concurrencies, one simulation each over a shared cost table."""
    from model.serving.batching import steady_state
    from model.serving.estimate import closed_loop_queue_wait_s, latency_at, operating_points
    from model.serving.simulator import Load, simulate
    from model.serving.workload import Lengths
    from model.validation.engine_rows_layout import harness_recv_interval, row_batch_size, row_speculation

    r0 = rows.iloc[0]
    i, o = int(r0["isl"]), int(r0["osl"])
    outs = [_base(r) for _, r in rows.iterrows()]
    try:
        spec = row_speculation(r0)
        policy = _policy(r0["backend"], i, r0["system"], row_batch_size(r0), spec)
        d, table = _setup(r0, "", policy, max_context, spec, calibration)
        lengths = Lengths.uniform_range(i, o, range_ratio)
        cap = float(steady_state(d, policy, i, o, None, speculation=spec).concurrency[0])
        if cap < 1:
            raise RidgeplanError("memory", "does not fit: no sequence fits in the KV pool")
        cs = np.array([o_["concurrency"] for o_ in outs], dtype=float)
        ops = operating_points(d, policy, lengths, concurrency=np.minimum(cs, cap), speculation=spec)
        for k, out in enumerate(outs):
            lat = latency_at(ops, k, float(ops.rates[k]), False, (0.5,))
            out["steady_ttft_s"] = lat.ttft_mean_s + float(closed_loop_queue_wait_s(cs[k], cap, float(ops.rates[k])))
            out["steady_tpot_s"] = lat.tpot_mean_s
            c = int(cs[k])
            n = max(per_client * c, 8)
            load = Load("closed", concurrency=c, num_requests=n, warmup=min(warmup_per_client * c, n - 1))
            recv = harness_recv_interval(r0, int(out["total_concurrency"] or c))
            opts = {"recv_interval": recv} if recv > 1 else {}
            sim = simulate(d, lengths, load, policy, table=table, speculation=spec, **opts)
            out["sim_ttft_s"], out["sim_tpot_s"] = float(sim.ttft_s.mean()), float(sim.tpot_s.mean())
    except RidgeplanError as e:
        for out in outs:
            out["reason"] = e.one_line()
    return outs


DISAGG_RATIO = (1, 1)  # prefill : decode workers assumed where a disaggregated row leaves the counts empty


def rank_instances(workers: int, layout) -> tuple[int]:
    """Simulator instances of `workers` workers of a pool: one per attention-DP rank. A Deployment's batch, step cost
    and KV pool are one rank's (as the aggregated rows' _per_replica splits the concurrency), so a worker of A
    attention-DP ranks serves as A instances, each sent its own requests (the engines spread a worker's requests
    over its DP ranks); the per-rank step cost already takes every rank as loaded like this one at the MoE layers,
    where the ranks meet."""
    return (workers * layout.attention_dp,)


def _disagg_row(r: pd.Series, max_context: float, per_client: int, calibration: bool = False) -> dict:
    """A disaggregated row: its prefill and decode workers (or the assumed ratio), a closed loop through both
    pools; the steady state at the throughput the simulation reached."""
    from model.serving.disagg import DisaggPlan, disaggregated
    from model.serving.simulator import Load, simulate_disagg
    from model.serving.workload import Lengths, Workload

    out = _base(r)
    if out["reason"]:
        return out
    empty = r["prefill_num_workers"] != r["prefill_num_workers"] or r["decode_num_workers"] != r["decode_num_workers"]
    n_p, n_d = DISAGG_RATIO if empty else (int(r["prefill_num_workers"]), int(r["decode_num_workers"]))
    out["workers"] = f"{n_p}:{n_d}" + (" (assumed)" if empty else "")
    i, o, c = int(r["isl"]), int(r["osl"]), int(out["concurrency"])
    try:
        policy = _policy(r["backend"], i, r["system"])
        pre, t_pre = _setup(r, "prefill", policy, max_context, calibration=calibration)
        dec, t_dec = _setup(r, "decode", policy, max_context, calibration=calibration)
        plan = DisaggPlan(pre, *rank_instances(n_p, pre.layout), dec, *rank_instances(n_d, dec.layout))
        lengths = Lengths.fixed(i, o)
        n = max(per_client * c, 8)
        # aiconfigurator's generator launches TensorRT-LLM prefill workers with disable_overlap_scheduler: true
        # (generator/rule_plugin/trtllm.rule, `prefill disable_overlap_scheduler = true`; decode keeps it on)
        opts = {"overlap": False} if r["backend"] == "trtllm" else {}
        sim = simulate_disagg(plan, lengths, Load("closed", concurrency=c, num_requests=n), policy,
                              tables=(t_pre, t_dec), **opts)
        out["sim_ttft_s"], out["sim_tpot_s"] = float(sim.ttft_s.mean()), float(sim.tpot_s.mean())
        st = disaggregated(plan, Workload(lengths, rate_per_s=sim.requests_per_s), policy)
        out["steady_ttft_s"], out["steady_tpot_s"] = st.ttft_mean_s, st.tpot_s
    except RidgeplanError as e:
        out["reason"] = e.one_line()
    return out


def _per_replica(r: pd.Series) -> int | None:
    """The benchmark's concurrency per simulated unit, one attention-DP rank of an aggregated replica: batch_size is
    per attention-DP rank, so the total splits over the ranks (and over replicas beyond batch_size x
    attention_dp: Qwen3-32B-NVFP4 on GB200 ran 32)."""
    c = _concurrency(r["silicon_data_source"])
    if c is None or r["mode"] != "agg":
        return c
    from model.validation.engine_rows_layout import row_batch_size, row_layout

    # an empty attention_dp_size reads as one rank (row_layout), and the batch-size cap still holds: a total of
    # c448 at batch_size 56 is not 448 clients queued on one rank (nvidia/DeepSeek-V3.1-NVFP4 TRT rows)
    adp = row_layout(r).attention_dp  # the launch's attention-DP ranks (row_layout corrects one export's columns)
    per_rank = -(-c // adp)
    bs = row_batch_size(r)  # per launch rank (row_batch_size corrects the same export's batch size)
    if pd.isna(bs) or bs < 1:
        return per_rank
    return min(per_rank, int(bs))


def _dense(r: pd.Series) -> bool:
    from model.architecture.catalogue import load_architecture
    from model.validation.engine_rows_layout import row_model

    try:
        return not load_architecture(row_model(r)).is_moe
    except RidgeplanError:  # not expressible: the row carries its reason, and no error of its own
        return False


def _base(r: pd.Series) -> dict:
    return {"id": r["id"], "engine": r["backend"], "gpu": r["system"], "model": r["model_path"], "mode": r["mode"],
            "dense": _dense(r), "isl": r["isl"], "osl": r["osl"],
            "concurrency": _per_replica(r), "total_concurrency": _concurrency(r["silicon_data_source"]),
            "measured_ttft_s": r["silicon_ttft_ms"] / 1e3, "measured_tpot_s": r["silicon_tpot_ms"] / 1e3,
            "workers": "", "speculation": "MTP" if _mtp(r) else "", "split": r.get("split_source", "") or "",
            "reason": _expressible(r)}


def _mtp(r: pd.Series) -> bool:
    from model.validation.engine_rows_layout import mtp_image

    return bool(mtp_image(r))


def engine_rows_report(path, sample: int | None = None, seed: int = 0, per_client: int = REQUESTS_PER_CLIENT,
                       warmup_per_client: int = WARMUP_PER_CLIENT, models: tuple[str, ...] | None = None,
                       calibration: bool = False, range_ratio: float = 1.0) -> EngineRowsReport:
    """Every row against the model; `calibration=True` builds each deployment with its engine's public-table
    calibration (hardware_db/calibration/<gpu>.<engine>.toml) instead of the hand-set efficiency.
    `range_ratio`: aggregated rows' clients draw lengths uniform on [ratio x L, L] (InferenceX runs its client with
    --random-range-ratio 0.8: .github/workflows/benchmark-tmpl.yml); 1 keeps them fixed (docs/ttft.md)."""
    from model.validation.engine_rows_multinode import with_multinode_split

    if not 0 < range_ratio <= 1:
        raise RidgeplanError("range_ratio", f"must be in (0, 1] (lengths on [ratio x L, L]), got {range_ratio!r}")
    df = pd.read_csv(path)
    if models is not None:
        df = df[df["model_path"].isin(models)]
    if sample is not None and sample < len(df):
        df = df.sample(sample, random_state=seed)
    # multi-node runs whose columns lose the prefill/decode split get it from InferenceX's launch configs
    df = pd.DataFrame([with_multinode_split(r) for r in df.to_dict("records")], index=df.index)
    longest = float((df["isl"] + df["osl"]).max())
    reasons = df.apply(_expressible, axis=1)
    out = [_base(r) for _, r in df[reasons != ""].iterrows()]
    ok = df[(reasons == "") & (df["mode"] == "agg")]
    ok = ok.assign(mtp=ok.apply(_mtp, axis=1))  # an MTP run shares its launch with a plain one
    config = ["model_path", "system", "precision", "gemm_quant_mode", "moe_quant_mode", "tp_size", "pp_size",
              "attention_dp_size", "moe_tp_size", "moe_ep_size", "backend", "isl", "osl", "batch_size", "mtp"]
    for _, g in ok.groupby(config, dropna=False):
        out.extend(_group(g, longest, per_client, warmup_per_client, calibration, range_ratio))
    for _, r in df[(reasons == "") & (df["mode"] != "agg")].iterrows():
        out.append(_disagg_row(r, longest, per_client, calibration))
    rows = pd.DataFrame(out)
    for m in ("steady", "sim"):
        for q in ("ttft", "tpot"):
            col = f"{m}_{q}_s"
            if col not in rows:
                rows[col] = np.nan
            rows[f"{m}_{q}_err"] = rows[col] / rows[f"measured_{q}_s"] - 1
    return EngineRowsReport(rows)
