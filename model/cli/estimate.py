"""`ridgeplan estimate` and `ridgeplan step`."""

from __future__ import annotations

from typing import Optional

import typer

from model.api import DEFAULT_GPU, DEFAULT_MODEL, deployment
from model.cli import app
from model.cli.output import console, gb, kv_table, ms, op_table_rich, print_json, si
from model.errors import require_positive
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


def _deployment(model, gpu, weights, activations, kv, tp, pp, ep, convention):
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep)):
        require_positive(name, value, integer=True)
    return deployment(model, gpu, weights=weights, activations=activations, kv=kv, tp=tp, pp=pp, ep=ep,
                      attention_convention=convention)


@app.command()
def estimate(
    model: str = MODEL, gpu: str = GPU,
    batch: int = typer.Option(1, "--batch", help="sequences served together"),
    input_len: int = typer.Option(1024, "--input-len", help="prompt tokens per sequence"),
    output_len: int = typer.Option(256, "--output-len", help="generated tokens per sequence"),
    weights: Optional[str] = WEIGHTS, activations: Optional[str] = ACTIVATIONS, kv: Optional[str] = KV,
    tp: int = TP, pp: int = PP, ep: int = EP, attention_flops: str = CONVENTION, json: bool = JSON,
) -> None:
    """Memory fit, prefill time (TTFT), per-token decode time (TPOT) and the per-operator breakdown."""
    for name, value in (("batch", batch), ("input_len", input_len), ("output_len", output_len)):
        require_positive(name, value, integer=True)
    d = _deployment(model, gpu, weights, activations, kv, tp, pp, ep, attention_flops)
    est = static_batch(d, batch, input_len, output_len)
    if json:
        print_json(est.to_dict())
        return
    head = [("model", d.arch.name), ("gpu", f"{d.device.name} x {d.layout.gpus_per_replica} ({d.layout.label()})"),
            ("precision", f"weights {d.precision.weights}, activations {d.resolved.activations}, KV {d.precision.kv}"),
            ("workload", f"batch {batch}, {input_len} in / {output_len} out"),
            ("memory", est.memory.summary())]
    if est.fits:
        head += [("TTFT (prefill)", ms(est.ttft_s)),
                 ("TPOT (mean decode step)", f"{ms(est.tpot_s)} (first {ms(est.tpot_first_s)}, last {ms(est.tpot_last_s)})"),
                 ("end-to-end latency", ms(est.e2e_latency_s)),
                 ("throughput", f"{est.throughput_tokens_per_s:,.1f} output tok/s ({est.throughput_per_gpu_tokens_per_s:,.1f} per GPU, "
                                f"{est.tokens_per_s_per_user or 0:,.1f} per user)")]
    console.print(kv_table("ridgeplan estimate", head))
    if not est.fits:
        console.print("Not fitting: no latency is reported. Try more GPUs (--tp), lower precision (--weights, --kv) or a smaller batch.")
        _assumptions(est.assumptions)
        return
    for title, step in (("prefill step", est.prefill), ("decode step at the mean context", est.decode)):
        if step is None:
            continue
        b = bound_table(step)
        console.print(op_table_rich(op_table(step), f"{title}: {ms(float(step.time_s[0]))} "
                      + ", ".join(f"{k[:-2]} {ms(v)}" for k, v in b.items() if v > 0)))
    _assumptions(est.assumptions)


@app.command()
def step(
    model: str = MODEL, gpu: str = GPU,
    batch: int = typer.Option(1, "--batch", help="sequences in the step"),
    new_tokens: int = typer.Option(1, "--new-tokens", help="new tokens per sequence (1 = decode)"),
    context: int = typer.Option(0, "--context", help="tokens already cached per sequence"),
    weights: Optional[str] = WEIGHTS, activations: Optional[str] = ACTIVATIONS, kv: Optional[str] = KV,
    tp: int = TP, pp: int = PP, ep: int = EP, attention_flops: str = CONVENTION, json: bool = JSON,
) -> None:
    """One forward step: time, memory and the per-operator roofline breakdown."""
    require_positive("batch", batch, integer=True)
    require_positive("new_tokens", new_tokens, integer=True)
    require_positive("context", context, integer=True, allow_zero=True)
    d = _deployment(model, gpu, weights, activations, kv, tp, pp, ep, attention_flops)
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
