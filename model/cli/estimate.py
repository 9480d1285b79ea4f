"""`ridgeplan estimate` and `ridgeplan step`."""

from __future__ import annotations

from typing import Optional

import typer
from rich.text import Text

from model.api import DEFAULT_GPU, DEFAULT_MODEL, deployment
from model.cli import app
from model import format as fmt
from model.cli.output import console, dict_table, gb, kv_table, ms, op_table_rich, print_json, si
from model.errors import RidgeplanError, require_positive
from model.serving.breakdown import bound_table, op_table
from model.serving.static import memory_report, static_batch
from model.serving.workload import mean_decode_context_tokens

MODEL = typer.Option(DEFAULT_MODEL, "--model", help="catalogue id or path to a Hugging Face config.json")
GPU = typer.Option(DEFAULT_GPU, "--gpu", help="hardware_db device id or path to a device TOML")
WEIGHTS = typer.Option(None, "--weights", help="bf16|fp16|fp8|int8|int4|mxfp4|nvfp4 (default: the checkpoint's)")
ACTIVATIONS = typer.Option(None, "--activations", help="GEMM activation dtype bf16|fp16|fp8|int8|int4|fp4 (default: natural path)")
KV = typer.Option(None, "--kv", help="KV-cache precision bf16|fp16|fp8|int8|int4|int2 (default 16-bit)")
TP = typer.Option(1, "--tp", help="tensor-parallel degree")
PP = typer.Option(1, "--pp", help="pipeline-parallel degree")
EP = typer.Option(1, "--ep", help="MoE expert-parallel degree (short form of --moe-ep)")
ADP = typer.Option(None, "--attention-dp", help="attention data-parallel ranks (TP x attention-DP GPUs run the MoE layers)")
MOE_TP = typer.Option(None, "--moe-tp", help="tensor split inside each expert (MoE-TP x MoE-EP = TP x attention-DP)")
MOE_EP = typer.Option(None, "--moe-ep", help="experts split this many ways (default --ep)")
EP_COMM = typer.Option("auto", "--ep-comm", help="auto | allgather | normal | low_latency: how tokens reach the experts")
EPLB = typer.Option(False, "--eplb", help="expert-parallel load balancer on (removes --moe-imbalance skew)")
IMBALANCE = typer.Option(1.0, "--moe-imbalance", help="routing skew beyond uniform: busiest EP rank / mean load")
DISPATCH = typer.Option(None, "--dispatch", help="bf16 | fp8 | nvfp4 dispatched tokens (default: the expert GEMM input)")
REDUNDANT = typer.Option(0, "--redundant-experts", help="extra expert copies (EPLB) so experts split evenly over --moe-ep")
NODE = typer.Option(None, "--node", help="hardware_db node type (e.g. dgx-b200, gb200-nvl72): NVLink domain size and NIC")
TBO = typer.Option(False, "--two-batch-overlap", help="overlap one micro-batch's MoE communication with the other's compute")
JSON = typer.Option(False, "--json", help="machine-readable output, units in the keys")
CONVENTION = typer.Option("causal", "--attention-flops", help="causal (triangle) or square attention FLOP count")


def _deployment(model, gpu, weights, activations, kv, tp, pp, ep, convention, **moe):
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep)):
        require_positive(name, value, integer=True)
    return deployment(model, gpu, weights=weights, activations=activations, kv=kv, tp=tp, pp=pp, ep=ep,
                      attention_convention=convention, **moe)


@app.command()
def estimate(
    model: str = MODEL, gpu: str = GPU,
    input_len: int = typer.Option(1024, "--input-len", help="prompt tokens (the mean with --lengths lognormal)"),
    output_len: int = typer.Option(256, "--output-len", help="generated tokens (the mean with --lengths lognormal)"),
    lengths: str = typer.Option("fixed", "--lengths", help="fixed | lognormal"),
    trace: Optional[str] = typer.Option(None, "--trace", help="CSV of input_len,output_len[,timestamp] (overrides lengths)"),
    batch: Optional[int] = typer.Option(None, "--batch", help="static batch: B prompts prefilled together, decoded in lock-step"),
    concurrency: Optional[float] = typer.Option(None, "--concurrency", help="sequences in flight (closed loop)"),
    rate: Optional[float] = typer.Option(None, "--rate", help="Poisson arrivals, requests/s for the whole deployment"),
    max_throughput: bool = typer.Option(False, "--max", help="the engine at its own maximum batch (offline)"),
    weights: Optional[str] = WEIGHTS, activations: Optional[str] = ACTIVATIONS, kv: Optional[str] = KV,
    experts: Optional[str] = typer.Option(None, "--experts", help="MoE expert weight format (default: as the checkpoint)"),
    tp: int = TP, pp: int = PP, ep: int = EP,
    dp: int = typer.Option(1, "--dp", help="independent replicas"),
    attention_dp: Optional[int] = ADP, moe_tp: Optional[int] = MOE_TP, moe_ep: Optional[int] = MOE_EP,
    ep_comm: str = EP_COMM, eplb: bool = EPLB, moe_imbalance: float = IMBALANCE, dispatch: Optional[str] = DISPATCH,
    two_batch_overlap: bool = TBO, redundant_experts: int = REDUNDANT, node: Optional[str] = NODE,
    engine: str = typer.Option("vllm", "--engine", help="vllm | sglang | trtllm (batching and memory policy, layout "
                               "rules; with --calibrated its kernel calibration)"),
    calibrated: bool = typer.Option(False, "--calibrated", help="use the engine's calibration fitted to NVIDIA's public "
                                    "kernel tables (hardware_db/calibration; off by default: see docs/calibration.md)"),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="token budget per iteration (prefill chunk)"),
    no_chunked_prefill: bool = typer.Option(False, "--no-chunked-prefill", help="prefill-prioritising scheduling"),
    max_seqs: Optional[int] = typer.Option(None, "--max-seqs", help="engine max_num_seqs"),
    prefix_hit_rate: float = typer.Option(0.0, "--prefix-hit-rate", help="share of prompt tokens served from a prefix cache"),
    spec_alpha: Optional[float] = typer.Option(None, "--spec-alpha", help="speculative decoding acceptance rate"),
    spec_k: int = typer.Option(4, "--spec-k", help="speculative draft length"),
    spec_draft: Optional[str] = typer.Option(None, "--spec-draft", help="draft model id, or mtp for the checkpoint's multi-token-prediction modules (default: a self-draft costing 5% of a step)"),
    offload: Optional[str] = typer.Option(None, "--offload", help="weights | kv | experts"),
    offload_tier: str = typer.Option("host-xeon-8480", "--offload-tier", help="a cpu, ssd or csd device id"),
    offload_fraction: float = typer.Option(1.0, "--offload-fraction"),
    offload_devices: int = typer.Option(1, "--offload-devices", help="drives striped together"),
    expert_hit_rate: float = typer.Option(0.0, "--expert-hit-rate", help="offloaded experts: GPU cache hit rate"),
    in_place_attention: bool = typer.Option(False, "--in-place-attention", help="KV on a CSD: attention runs on the drive"),
    disagg: Optional[str] = typer.Option(None, "--disagg", help="P:D prefill and decode instances (needs --rate)"),
    decode_gpu: Optional[str] = typer.Option(None, "--decode-gpu", help="decode pool GPU (default: --gpu)"),
    decode_tp: Optional[int] = typer.Option(None, "--decode-tp", help="decode pool TP (default: --tp)"),
    ttft_ms: Optional[float] = typer.Option(None, "--ttft-ms", help="TTFT target for goodput"),
    tpot_ms: Optional[float] = typer.Option(None, "--tpot-ms", help="TPOT target for goodput"),
    attainment: float = typer.Option(0.9, "--attainment", help="share of requests that must meet the targets"),
    simulate: bool = typer.Option(False, "--simulate", help="simulate the engine (the default for --concurrency, "
                                  "--rate and --trace loads; kept for scripts)"),
    steady_state: bool = typer.Option(False, "--steady-state", help="the analytical steady state instead of the simulator"),
    num_requests: Optional[int] = typer.Option(None, "--num-requests", help="simulated requests (default: 1000, "
                                               "at least 10 per client in a closed loop)"),
    warmup: int = typer.Option(0, "--warmup", help="first requests left out of the simulated statistics"),
    seed: int = typer.Option(0, "--seed", help="simulator random seed"),
    burstiness: float = typer.Option(1.0, "--burstiness", help="open loop: gamma arrivals (1 = Poisson, < 1 burstier)"),
    attention_flops: str = CONVENTION, json: bool = JSON,
) -> None:
    """TTFT/TPOT (mean and percentiles), throughput per GPU and per user, max concurrency, goodput, memory and
    the breakdown, for continuous batching (default), a static --batch, or disaggregated --disagg P:D.
    Latencies under a --concurrency, --rate or --trace load come from the engine simulator unless
    --steady-state; the output's latency_mode says which."""
    from model.serving.estimate import SLO
    from model.serving.estimate import estimate as serve
    from model.serving.policy import engine_policy
    from model.serving.speculation_offload import Offload, Speculation
    from model.serving.workload import Lengths, Workload

    require_positive("input_len", input_len, integer=True)
    require_positive("output_len", output_len, integer=True)
    modes = sum(x is not None for x in (batch, concurrency, rate)) + int(max_throughput)
    if modes > 1:
        raise RidgeplanError("mode", "give one of --batch, --concurrency, --rate or --max")
    if simulate and steady_state:
        raise RidgeplanError("mode", "give --simulate or --steady-state, not both")
    if concurrency is not None and concurrency <= 0:
        raise RidgeplanError("concurrency", f"must be > 0, got {concurrency:g}")
    d = deployment(model, gpu, weights=weights, activations=activations, kv=kv, experts=experts, tp=tp, pp=pp, ep=ep,
                   dp=dp, attention_dp=attention_dp, moe_tp=moe_tp, moe_ep=moe_ep, ep_comm=ep_comm, eplb=eplb,
                   moe_imbalance=moe_imbalance, dispatch_dtype=dispatch, two_batch_overlap=two_batch_overlap,
                   redundant_experts=redundant_experts, node=node, engine=engine, attention_convention=attention_flops,
                   calibration=True if calibrated else None)
    if batch is not None:
        _static(d, batch, input_len, output_len, json)
        return
    if trace:
        from model.serving.simulator import read_trace

        read_trace(trace)  # checks every column, naming the field and row at fault
    dist = Lengths.from_input(input_len, output_len, lengths, trace)
    replay = trace is not None and rate is None and concurrency is None  # the trace's own arrival times
    if rate is None and concurrency is None and not max_throughput and disagg is None:
        concurrency = 16.0
    workload = Workload(dist, concurrency=concurrency, rate_per_s=rate, prefix_hit_rate=prefix_hit_rate)
    policy = engine_policy(engine).with_(max_num_batched_tokens=chunk, max_num_seqs=max_seqs,
                                         chunked_prefill=False if no_chunked_prefill else None)
    slo = SLO.from_ms(ttft_ms, tpot_ms, attainment)
    if spec_draft == "mtp":
        spec = Speculation.multi_token_prediction(spec_k, spec_alpha)
    else:
        spec = Speculation(spec_alpha, spec_k, draft_model=spec_draft) if spec_alpha is not None else None
    off = (Offload(offload, offload_tier, offload_fraction, offload_devices, expert_hit_rate,
                   in_place_attention=in_place_attention) if offload else None)
    sim_opts = None
    if not steady_state and not max_throughput:
        sim_opts = dict(num_requests=num_requests, warmup=warmup, seed=seed, burstiness=burstiness, trace=trace,
                        replay=replay)
    if disagg is not None:
        _disagg(d, disagg, decode_gpu, decode_tp, workload, policy, slo, json, sim_opts)
        return
    est = serve(d, workload, policy, slo, speculation=spec, offload=off)
    out = est.to_dict()
    if est.fits and sim_opts is not None:
        out = _simulated(d, est, out, workload, policy, spec, off, sim_opts)
    else:
        out["latency_mode"] = "steady_state"
    if json:
        print_json(out)
        return
    _print_serving(est, out)


def _simulated(d, est, out, workload, policy, spec, off, o) -> dict:
    from model.serving.simulator import Load, load_for, simulate
    from model.serving.simulator.report import merge

    if o["replay"] and _has_arrivals(o["trace"]):
        load = Load("trace", num_requests=o["num_requests"], warmup=o["warmup"])
    else:
        rate_wl = workload
        if workload.rate_per_s is not None:  # one rank's share of the rate (attention-DP ranks x replicas)
            from dataclasses import replace

            rate_wl = replace(workload, rate_per_s=workload.rate_per_s / d.layout.batch_ranks)
        load = load_for(rate_wl, o["num_requests"], o["warmup"], o["burstiness"])
    sim = simulate(d, workload.lengths, load, policy, prefix_hit_rate=workload.prefix_hit_rate, speculation=spec,
                   offload=off, seed=o["seed"], trace=o["trace"])
    merged = merge(out, sim, d.layout.batch_ranks)
    if "goodput_requests_per_s" in out and not est.slo.empty:  # the goodput search on the simulator too
        from model.serving.simulator.run import simulated_goodput

        from model.serving.batching import steady_state

        lengths = workload.lengths  # the engine's own maximum rate bounds the search
        top = steady_state(d, policy, lengths.mean_input, lengths.mean_output, None, workload.prefix_hit_rate,
                           speculation=spec, offload=off)
        good = simulated_goodput(d, lengths, policy, est.slo.ttft_s, est.slo.tpot_s, est.slo.attainment,
                                 float(top.requests_per_s[0]) * 1.05, seed=o["seed"], speculation=spec, offload=off)
        merged["goodput_requests_per_s"] = good * d.layout.dp
        merged["steady_state"]["goodput_requests_per_s"] = out["goodput_requests_per_s"]
    return merged


def _static(d, batch, input_len, output_len, json) -> None:
    require_positive("batch", batch, integer=True)
    est = static_batch(d, batch, input_len, output_len)
    if json:
        print_json(est.to_dict())
        return
    head = [("model", d.arch.name), ("gpu", f"{d.device.name} x {d.layout.gpus_per_replica} ({d.layout.label()})"),
            ("precision", f"weights {d.precision.weights}, activations {d.resolved.activations}, KV {d.precision.kv}"),
            ("workload", f"static batch {batch}, {input_len} in / {output_len} out"),
            ("memory", est.memory.summary())]
    if est.fits:
        head += [("TTFT (prefill)", ms(est.ttft_s)),
                 ("TPOT (mean decode step)", f"{ms(est.tpot_s)} (first {ms(est.tpot_first_s)}, last {ms(est.tpot_last_s)})"),
                 ("end-to-end latency", ms(est.e2e_latency_s)),
                 ("throughput", f"{fmt.rate(est.throughput_tokens_per_s)} output ({fmt.rate(est.throughput_per_gpu_tokens_per_s)} "
                                f"per GPU, {fmt.rate(est.tokens_per_s_per_user)} per user)")]
    console.print(kv_table("ridgeplan estimate (static batch)", head))
    if not est.fits:
        console.print("Not fitting: no latency is reported. Try more GPUs (--tp), lower precision (--weights, --kv) or a smaller batch.")
        _assumptions(est.assumptions)
        return
    for title, st in (("prefill step", est.prefill), ("decode step at the mean context", est.decode)):
        if st is None:
            continue
        b = bound_table(st)
        console.print(op_table_rich(op_table(st), f"{title}: {ms(float(st.time_s[0]))} "
                      + ", ".join(f"{k[:-2]} {ms(v)}" for k, v in b.items() if v > 0)))
    _assumptions(est.assumptions)


def _pct(values: dict) -> str:
    return ", ".join(f"{k} {ms(v)}" for k, v in values.items())


def _has_arrivals(path) -> bool:
    from model.serving.simulator import read_trace

    return "arrival_s" in read_trace(path)


def _per_user(x: dict) -> str:
    return fmt.rate(x["output_tokens_per_s_per_user"], reason="no decode")


def _print_serving(est, x=None) -> None:
    x = x or est.to_dict()
    d = est.deployment
    mem = x["memory_per_gpu"]
    head = [("model", d.arch.name), ("gpus", f"{d.device.name} x {est.gpus} ({d.layout.label()})"),
            ("precision", f"weights {d.precision.weights}, activations {d.resolved.activations}, KV {d.precision.kv}"),
            ("workload", f"{est.workload.lengths.describe()}, {est.workload.mode}"
                         + (f" {est.workload.concurrency:g}" if est.workload.concurrency else "")
                         + (f" {est.workload.rate_per_s:g} req/s" if est.workload.rate_per_s else "")),
            ("memory per GPU", f"weights {gb(mem['weights_bytes'])}, activations {gb(mem['activation_bytes'])}, "
                               f"KV pool {gb(mem['kv_pool_bytes'])} ({gb(mem['kv_bytes_per_sequence'])} per sequence)")]
    if not est.fits:
        head.append(("fits", f"NO: short by {gb(mem['shortfall_bytes'])} per GPU for one sequence beside the weights; "
                             "no latency is reported. Try more GPUs (--tp), lower precision (--weights, --kv)"))
        console.print(kv_table("ridgeplan estimate", head))
        _assumptions(est.assumptions)
        return
    head += [("max concurrency", f"{fmt.count(x['max_concurrency_per_replica'])} sequences per replica (limited by {x['concurrency_limited_by']})"),
             ("operating point", f"{fmt.number(x['concurrency_per_replica'])} sequences in flight per replica"
                                 + ("" if x["sustainable"] else " (OVERLOADED: the rate exceeds capacity)")),
             ("TTFT", f"unbounded: {x['ttft_unbounded_reason']}" if x.get("ttft_unbounded_reason")
                      else f"mean {ms(x['ttft_mean_s'])}; {_pct(x['ttft_percentiles_s'])}"),
             ("TPOT", f"mean {ms(x['tpot_mean_s'])}; {_pct(x['tpot_percentiles_s'])}; TBT p99 {ms(x['tbt_p99_s'])}"),
             ("throughput", f"{fmt.rate(x['output_tokens_per_s'])} output ({fmt.rate(x['output_tokens_per_s_per_gpu'])} per GPU, "
                            f"{_per_user(x)} per user), {fmt.rate(x['requests_per_s'], 'req/s')}")]
    if x.get("cost_per_million_output_tokens_usd"):
        head.append(("cost", f"{fmt.usd(x['cost_per_million_output_tokens_usd'])} per million output tokens"))
    if "goodput_requests_per_s" in x:
        head.append(("goodput", f"{fmt.rate(x['goodput_requests_per_s'], 'req/s', reason='no SLO given')} meet the SLO "
                                f"at p{int(est.slo.attainment * 100)}"))
    b = x["breakdown_s"]
    head.append(("iteration", f"{ms(x['iteration_s'])}: " + ", ".join(f"{k.replace('_', ' ')} {ms(v)}" for k, v in b.items())))
    mode = x.get("latency_mode", "steady_state")
    if mode == "simulation":
        head.append(("simulated run", f"{x['simulation']['load']}; {x['iterations']:,} iterations, "
                                      f"{x['preemptions']} preemptions, queue up to {x['max_queue']}"))
        st = x["steady_state"]
        head.append(("steady state (for comparison)", f"TTFT mean {ms(st['ttft_mean_s'])}, TPOT mean {ms(st['tpot_mean_s'])}"))
    console.print(kv_table(f"ridgeplan estimate (continuous batching; latencies: {mode.replace('_', ' ')})", head))
    s = est.state
    ctx = float(mean_decode_context_tokens(est.workload.lengths.mean_input, est.workload.lengths.mean_output))
    step_result = d.step(max(float(s.decode_seqs[0]), 1.0), 1, ctx)
    console.print(op_table_rich(op_table(step_result), "decode step at the operating point"))
    _assumptions(x.get("assumptions", est.assumptions))


def _disagg(d, spec: str, decode_gpu, decode_tp, workload, policy, slo, json, sim_opts=None) -> None:
    from dataclasses import replace

    from model.serving.disagg import DisaggPlan, disaggregated
    from model.placement.layout import Layout

    try:
        n_p, n_d = (int(x) for x in spec.split(":"))
    except ValueError:
        raise RidgeplanError("disagg", f"expected P:D instance counts such as 1:2, got {spec!r}") from None
    dec = d
    if decode_gpu or decode_tp:
        dec = deployment(d.arch, decode_gpu or d.device, weights=d.precision.weights, kv=d.precision.kv,
                         tp=decode_tp or d.layout.tp, engine=policy.name)
    dec = replace(dec, layout=Layout(tp=dec.layout.tp, pp=dec.layout.pp))
    plan = DisaggPlan(replace(d, layout=Layout(tp=d.layout.tp, pp=d.layout.pp)), n_p, dec, n_d)
    est = disaggregated(plan, workload, policy, slo)
    out = est.to_dict()
    out["latency_mode"] = "steady_state"
    if sim_opts is not None:
        from model.serving.simulator import load_for, simulate_disagg

        sim = simulate_disagg(plan, workload.lengths, load_for(workload, sim_opts["num_requests"], sim_opts["warmup"],
                              sim_opts["burstiness"]), policy, seed=sim_opts["seed"]).to_dict()
        out["steady_state"] = {k: out[k] for k in ("ttft_mean_s", "ttft_percentiles_s", "tpot_s")}
        out.update({k: sim[k] for k in ("ttft_mean_s", "ttft_percentiles_s", "tpot_mean_s", "tpot_percentiles_s",
                                        "confidence_95", "iterations")})
        out["tpot_s"] = sim["tpot_mean_s"]
        out["latency_mode"] = "simulation"
        out["assumptions"] = [*out["assumptions"], *sim["assumptions"]]
    if json:
        print_json(out)
        return
    if slo.ttft_s is None and slo.tpot_s is None:  # goodput needs targets: say so instead of printing None
        out = {k: v for k, v in out.items() if not k.startswith("goodput")}
        out["goodput"] = "— (give --ttft-ms and/or --tpot-ms)"
    console.print(dict_table("ridgeplan estimate (disaggregated prefill/decode)", out))
    _assumptions(est.assumptions)


@app.command()
def step(
    model: str = MODEL, gpu: str = GPU,
    batch: int = typer.Option(1, "--batch", help="sequences in the step"),
    new_tokens: int = typer.Option(1, "--new-tokens", help="new tokens per sequence (1 = decode)"),
    context: int = typer.Option(0, "--context", help="tokens already cached per sequence"),
    weights: Optional[str] = WEIGHTS, activations: Optional[str] = ACTIVATIONS, kv: Optional[str] = KV,
    tp: int = TP, pp: int = PP, ep: int = EP, attention_dp: Optional[int] = ADP, moe_tp: Optional[int] = MOE_TP,
    moe_ep: Optional[int] = MOE_EP, ep_comm: str = EP_COMM, eplb: bool = EPLB, moe_imbalance: float = IMBALANCE,
    dispatch: Optional[str] = DISPATCH, two_batch_overlap: bool = TBO, redundant_experts: int = REDUNDANT,
    node: Optional[str] = NODE, attention_flops: str = CONVENTION,
    engine: str = typer.Option("vllm", "--engine", help="vllm | sglang | trtllm: layout rules (and, with "
                               "--calibrated, its kernel calibration)"),
    calibrated: bool = typer.Option(False, "--calibrated", help="use the engine's public-table calibration"),
    json: bool = JSON,
) -> None:
    """One forward step: time, memory and the per-operator roofline breakdown."""
    require_positive("batch", batch, integer=True)
    require_positive("new_tokens", new_tokens, integer=True)
    require_positive("context", context, integer=True, allow_zero=True)
    d = _deployment(model, gpu, weights, activations, kv, tp, pp, ep, attention_flops, attention_dp=attention_dp,
                    moe_tp=moe_tp, moe_ep=moe_ep, ep_comm=ep_comm, eplb=eplb, moe_imbalance=moe_imbalance,
                    dispatch_dtype=dispatch, two_batch_overlap=two_batch_overlap,
                    redundant_experts=redundant_experts, node=node, engine=engine,
                    calibration=True if calibrated else None)
    r = d.step(batch, new_tokens, context)
    mem = memory_report(r)
    df = op_table(r)
    total_flops = float(df["flops"].sum())
    total_bytes = float(df["bytes"].sum())
    if json:
        print_json({
            "model": d.arch.name, "gpu": d.device.id, "layout": d.layout.label(), "batch": batch,
            "new_tokens": new_tokens, "context_tokens": context, "fits": mem.fits, "memory": mem.to_dict(),
            "step_time_s": float(r.time_s[0]) if mem.fits else None,
            "flops": total_flops, "bytes": total_bytes,
            "bounds_s": bound_table(r) if mem.fits else None,
            "operators": df.drop(columns=["description"]).to_dict(orient="records") if mem.fits else None,
            "assumptions": d.assumptions(),
        })
        return
    console.print(kv_table("ridgeplan step", [
        ("model / gpu", f"{d.arch.name} on {d.device.name} ({d.layout.label()})"),
        ("step", f"{batch} sequences x {new_tokens} new tokens on {context} cached"),
        ("memory", mem.summary()),
        ("work", f"{si(total_flops, 'FLOP')}, {si(total_bytes, 'B')} moved ({fmt.number(total_flops / max(total_bytes, 1))} FLOP/B)"),
        ("step time", ms(float(r.time_s[0])) if mem.fits else fmt.missing("does not fit")),
    ]))
    if mem.fits:
        console.print(op_table_rich(df, "operators"))
    _assumptions(d.assumptions())


def _assumptions(notes) -> None:
    console.print("[bold]Assumptions[/bold]")
    for n in notes:
        console.print(Text(f"  - {n}"))
