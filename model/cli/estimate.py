"""`ridgeplan estimate` and `ridgeplan step`."""

from __future__ import annotations

from typing import Optional

import typer

from model.api import DEFAULT_GPU, DEFAULT_MODEL, deployment
from model.cli import app
from model.cli.output import console, gb, kv_table, ms, op_table_rich, print_json, si
from model.errors import RidgeplanError, require_positive
from model.serving.breakdown import bound_table, op_table
from model.serving.static import memory_report, static_batch

MODEL = typer.Option(DEFAULT_MODEL, "--model", help="catalogue id or path to a Hugging Face config.json")
GPU = typer.Option(DEFAULT_GPU, "--gpu", help="hardware_db device id or path to a device TOML")
WEIGHTS = typer.Option(None, "--weights", help="bf16|fp16|fp8|int8|int4|mxfp4|nvfp4 (default: the checkpoint's)")
ACTIVATIONS = typer.Option(None, "--activations", help="GEMM activation dtype bf16|fp16|fp8|int8|int4|fp4 (default: natural path)")
KV = typer.Option(None, "--kv", help="KV-cache precision bf16|fp16|fp8|int8|int4|int2 (default 16-bit)")
TP = typer.Option(1, "--tp", help="tensor-parallel degree")
PP = typer.Option(1, "--pp", help="pipeline-parallel degree")
EP = typer.Option(1, "--ep", help="expert-parallel degree")
JSON = typer.Option(False, "--json", help="machine-readable output, units in the keys")
CONVENTION = typer.Option("causal", "--attention-flops", help="causal (triangle) or square attention FLOP count")


def _deployment(model, gpu, weights, activations, kv, tp, pp, ep, convention, engine="vllm"):
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep)):
        require_positive(name, value, integer=True)
    return deployment(model, gpu, weights=weights, activations=activations, kv=kv, tp=tp, pp=pp, ep=ep,
                      attention_convention=convention, engine=engine)


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
    dp: int = typer.Option(1, "--dp", help="data-parallel replicas (with --ep: attention data-parallel ranks)"),
    engine: str = typer.Option("vllm", "--engine", help="vllm | sglang | trtllm (batching and memory policy, and the "
                               "engine's kernel calibration)"),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="token budget per iteration (prefill chunk)"),
    no_chunked_prefill: bool = typer.Option(False, "--no-chunked-prefill", help="prefill-prioritising scheduling"),
    max_seqs: Optional[int] = typer.Option(None, "--max-seqs", help="engine max_num_seqs"),
    prefix_hit_rate: float = typer.Option(0.0, "--prefix-hit-rate", help="share of prompt tokens served from a prefix cache"),
    spec_alpha: Optional[float] = typer.Option(None, "--spec-alpha", help="speculative decoding acceptance rate"),
    spec_k: int = typer.Option(4, "--spec-k", help="speculative draft length"),
    spec_draft: Optional[str] = typer.Option(None, "--spec-draft", help="draft model id (default: a self-draft costing 5% of a step)"),
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
    attention_flops: str = CONVENTION, json: bool = JSON,
) -> None:
    """TTFT/TPOT (mean and percentiles), throughput per GPU and per user, max concurrency, goodput, memory and
    the breakdown, for continuous batching (default), a static --batch, or disaggregated --disagg P:D."""
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
    d = deployment(model, gpu, weights=weights, activations=activations, kv=kv, experts=experts, tp=tp, pp=pp, ep=ep,
                   dp=dp, attention_convention=attention_flops, engine=engine)
    if batch is not None:
        _static(d, batch, input_len, output_len, json)
        return
    if trace:
        dist = Lengths.from_csv(trace)
    elif lengths == "lognormal":
        dist = Lengths.lognormal(input_len, output_len)
    elif lengths == "fixed":
        dist = Lengths.fixed(input_len, output_len)
    else:
        raise RidgeplanError("lengths", f"unknown length distribution {lengths!r}", ["fixed", "lognormal"])
    if rate is None and concurrency is None and not max_throughput and disagg is None:
        concurrency = 16.0
    workload = Workload(dist, concurrency=concurrency, rate_per_s=rate, prefix_hit_rate=prefix_hit_rate)
    policy = engine_policy(engine).with_(max_num_batched_tokens=chunk, max_num_seqs=max_seqs,
                                         chunked_prefill=False if no_chunked_prefill else None)
    slo = SLO(ttft_s=ttft_ms / 1e3 if ttft_ms else None, tpot_s=tpot_ms / 1e3 if tpot_ms else None, attainment=attainment)
    spec = Speculation(spec_alpha, spec_k, draft_model=spec_draft) if spec_alpha is not None else None
    off = (Offload(offload, offload_tier, offload_fraction, offload_devices, expert_hit_rate,
                   in_place_attention=in_place_attention) if offload else None)
    if disagg is not None:
        _disagg(d, disagg, decode_gpu, decode_tp, workload, policy, slo, json)
        return
    est = serve(d, workload, policy, slo, speculation=spec, offload=off)
    if json:
        print_json(est.to_dict())
        return
    _print_serving(est)


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
                 ("throughput", f"{est.throughput_tokens_per_s:,.1f} output tok/s ({est.throughput_per_gpu_tokens_per_s:,.1f} per GPU, "
                                f"{est.tokens_per_s_per_user or 0:,.1f} per user)")]
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


def _print_serving(est) -> None:
    x = est.to_dict()
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
    head += [("max concurrency", f"{x['max_concurrency_per_replica']:,.0f} sequences per replica (limited by {x['concurrency_limited_by']})"),
             ("operating point", f"{x['concurrency_per_replica']:,.1f} sequences in flight per replica"
                                 + ("" if x["sustainable"] else " (OVERLOADED: the rate exceeds capacity)")),
             ("TTFT", f"mean {ms(x['ttft_mean_s'])}; {_pct(x['ttft_percentiles_s'])}"),
             ("TPOT", f"mean {ms(x['tpot_mean_s'])}; {_pct(x['tpot_percentiles_s'])}; TBT p99 {ms(x['tbt_p99_s'])}"),
             ("throughput", f"{x['output_tokens_per_s']:,.1f} output tok/s ({x['output_tokens_per_s_per_gpu']:,.1f} per GPU, "
                            f"{x['output_tokens_per_s_per_user'] or 0:,.1f} per user), {x['requests_per_s']:,.2f} req/s")]
    if x.get("cost_per_million_output_tokens_usd"):
        head.append(("cost", f"${x['cost_per_million_output_tokens_usd']:,.3f} per million output tokens"))
    if "goodput_requests_per_s" in x:
        head.append(("goodput", f"{x['goodput_requests_per_s']:,.2f} req/s meet the SLO at p{int(est.slo.attainment * 100)}"))
    b = x["breakdown_s"]
    head.append(("iteration", f"{ms(x['iteration_s'])}: " + ", ".join(f"{k.replace('_', ' ')} {ms(v)}" for k, v in b.items())))
    console.print(kv_table("ridgeplan estimate (continuous batching)", head))
    s = est.state
    ctx = est.workload.lengths.mean_input + est.workload.lengths.mean_output / 2
    step_result = d.step(max(float(s.decode_seqs[0]), 1.0), 1, ctx)
    console.print(op_table_rich(op_table(step_result), "decode step at the operating point"))
    _assumptions(est.assumptions)


def _disagg(d, spec: str, decode_gpu, decode_tp, workload, policy, slo, json) -> None:
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
    if json:
        print_json(out)
        return
    rows = [(k, str(v)) for k, v in out.items() if k != "assumptions"]
    console.print(kv_table("ridgeplan estimate (disaggregated prefill/decode)", rows))
    _assumptions(est.assumptions)


@app.command()
def step(
    model: str = MODEL, gpu: str = GPU,
    batch: int = typer.Option(1, "--batch", help="sequences in the step"),
    new_tokens: int = typer.Option(1, "--new-tokens", help="new tokens per sequence (1 = decode)"),
    context: int = typer.Option(0, "--context", help="tokens already cached per sequence"),
    weights: Optional[str] = WEIGHTS, activations: Optional[str] = ACTIVATIONS, kv: Optional[str] = KV,
    tp: int = TP, pp: int = PP, ep: int = EP, attention_flops: str = CONVENTION,
    engine: str = typer.Option("vllm", "--engine", help="vllm | sglang | trtllm: whose kernel calibration to use"),
    json: bool = JSON,
) -> None:
    """One forward step: time, memory and the per-operator roofline breakdown."""
    require_positive("batch", batch, integer=True)
    require_positive("new_tokens", new_tokens, integer=True)
    require_positive("context", context, integer=True, allow_zero=True)
    d = _deployment(model, gpu, weights, activations, kv, tp, pp, ep, attention_flops, engine)
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
        ("work", f"{si(total_flops, 'FLOP')}, {si(total_bytes, 'B')} moved ({total_flops / max(total_bytes, 1):.1f} FLOP/B)"),
        ("step time", ms(float(r.time_s[0])) if mem.fits else "- (does not fit)"),
    ]))
    if mem.fits:
        console.print(op_table_rich(df, "operators"))
    _assumptions(d.assumptions())


def _assumptions(notes) -> None:
    console.print("[bold]Assumptions[/bold]")
    for n in notes:
        console.print(f"  - {n}")
