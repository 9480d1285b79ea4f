"""`ridgeplan train estimate` and `ridgeplan train plan`."""

from __future__ import annotations

from typing import Optional

import typer

from model.api import DEFAULT_MODEL
from model.cli import app
from model.cli.output import console, kv_table, print_json, si
from model.training import estimate_training, plan_training
from model.training.api import TrainingEstimate
from model.training.formulas import SECONDS_PER_DAY

train_app = typer.Typer(help="Training: memory, step time, MFU and time-to-train; the layout planner.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

MODEL = typer.Option(DEFAULT_MODEL, "--model", help="catalogue id or path to a Hugging Face config.json")
GPU = typer.Option("h100-sxm", "--gpu", help="hardware_db device id or path to a device TOML")
GPUS = typer.Option(8, "--gpus", help="number of GPUs")
NODE = typer.Option(None, "--node", help="hardware_db node id (network tiers); default: the device's own links")
TOKENS = typer.Option(None, "--tokens", help="training tokens D (time-to-train and cost)")
SEQ = typer.Option(4096, "--seq-len", help="tokens per sequence")
OPTIMIZER = typer.Option("adamw", "--optimizer", help="adamw|adamw8bit|sgd|galore|galore8bit|apollo-mini")
JSON = typer.Option(False, "--json", help="machine-readable output, units in the keys")


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


def _estimate_rows(e: TrainingEstimate) -> list[tuple[str, str]]:
    m = e.memory
    state = "fits" if e.fits else "DOES NOT FIT"
    delta = f"{m['headroom_bytes'] / 1e9:,.2f} GB to spare" if e.fits else f"short by {-m['headroom_bytes'] / 1e9:,.2f} GB"
    rows = [
        ("model / gpu", f"{e.model} on {e.gpus} x {e.gpu}" + (f" ({e.node})" if e.node else "")),
        ("layout", e.layout.label() + f", global batch {e.layout.global_batch} x {e.layout.seq_len} tokens, "
                                      f"{e.layout.micro_batches} micro-batches"),
        ("memory per GPU", f"{state}: {_gb(m['total_bytes'])} of {_gb(m['usable_bytes'])} usable ({delta}); weights "
                           f"{_gb(m['weights_bytes'])}, grads {_gb(m['grads_bytes'])}, optimizer {_gb(m['optimizer_bytes'])}, "
                           f"activations {_gb(m['activation_bytes'])}, buffers {_gb(m['buffer_bytes'])}"),
    ]
    if m["host_bytes"] or m["nvme_bytes"]:
        rows.append(("offloaded per GPU", f"CPU {_gb(m['host_bytes'])}, NVMe {_gb(m['nvme_bytes'])}"))
    if not e.fits:
        return rows
    parts = ", ".join(f"{k.removesuffix('_s')} {v:,.3f} s" for k, v in e.breakdown_s.items() if v > 0)
    rows += [
        ("step time", f"{e.step_time_s:,.3f} s ({parts})"),
        ("throughput", f"{e.tokens_per_s:,.0f} tok/s ({e.tokens_per_s / e.gpus:,.0f} per GPU)"),
        ("utilisation", f"MFU {e.mfu:.1%}, HFU {e.hfu:.1%}; bound by {e.binding}; bubble {e.bubble_fraction:.1%}"),
        ("FLOPs per step", f"{si(e.model_flops_per_step, 'FLOP')} model, {si(e.hardware_flops_per_step, 'FLOP')} hardware"),
    ]
    if e.time_to_train_s is not None:
        cost = f", ${e.cost_usd:,.0f} at ${e.price_usd_per_gpu_hour:.2f}/GPU-h" if e.cost_usd is not None else ""
        rows.append(("time to train", f"{e.time_to_train_s / SECONDS_PER_DAY:,.2f} days, {e.gpu_hours:,.0f} GPU-hours{cost}"))
    return rows


def _assumptions(notes) -> None:
    console.print("[bold]Assumptions[/bold]")
    for n in notes:
        console.print(f"  - {n}")


@train_app.command("estimate")
def train_estimate(
    model: str = MODEL, gpu: str = GPU, gpus: int = GPUS, node: Optional[str] = NODE,
    tp: int = typer.Option(1, "--tp"), pp: int = typer.Option(1, "--pp"),
    dp: Optional[int] = typer.Option(None, "--dp", help="default: gpus / (tp*pp*sp)"),
    sp: int = typer.Option(1, "--sp", help="sequence/context-parallel degree"),
    sp_kind: str = typer.Option("ulysses", "--sp-kind", help="ulysses|ring"),
    ep: int = typer.Option(1, "--ep", help="expert-parallel degree (MoE)"),
    zero: int = typer.Option(1, "--zero", help="ZeRO stage 0|1|2|3"),
    micro_batch: int = typer.Option(1, "--micro-batch"),
    global_batch: Optional[int] = typer.Option(None, "--global-batch", help="sequences per step (default about 4M tokens)"),
    seq_len: int = SEQ,
    recompute: str = typer.Option("selective", "--recompute", help="none|selective|full"),
    virtual_stages: int = typer.Option(1, "--virtual-stages", help="interleaved pipeline chunks per rank"),
    optimizer: str = OPTIMIZER, rank: Optional[int] = typer.Option(None, "--rank", help="GaLore/APOLLO rank"),
    offload: str = typer.Option("none", "--offload", help="optimizer states to none|cpu|nvme"),
    tokens: Optional[float] = TOKENS, json: bool = JSON,
) -> None:
    """Memory per GPU, time per step, MFU and time-to-train of one layout."""
    e = estimate_training(model, gpu, gpus, node=node, tp=tp, pp=pp, dp=dp, sp=sp, sp_kind=sp_kind, ep=ep, zero=zero,
                          micro_batch=micro_batch, global_batch=global_batch, seq_len=seq_len, recompute=recompute,
                          virtual_stages=virtual_stages, optimizer=optimizer, rank=rank, offload_optimizer=offload,
                          tokens=tokens)
    if json:
        print_json(e.to_dict())
        return
    console.print(kv_table("ridgeplan train estimate", _estimate_rows(e)))
    if not e.fits:
        console.print("Not fitting: no step time is reported. Try ZeRO 3, more tensor/pipeline parallelism, "
                      "--recompute full, a smaller --micro-batch, an 8-bit or low-rank --optimizer, or --offload cpu.")
    _assumptions(e.assumptions)


@train_app.command("plan")
def train_plan(
    model: str = MODEL, gpu: str = GPU, gpus: int = GPUS, node: Optional[str] = NODE,
    tokens: float = typer.Option(1e12, "--tokens", help="training tokens D"), seq_len: int = SEQ,
    global_batch: Optional[int] = typer.Option(None, "--global-batch", help="sequences per step (default about 4M tokens)"),
    deadline_days: Optional[float] = typer.Option(None, "--deadline-days"),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd"),
    objective: str = typer.Option("time", "--objective", help="time|cost (cost may use fewer GPUs)"),
    optimizer: str = OPTIMIZER, allow_offload: bool = typer.Option(False, "--allow-offload"),
    json: bool = JSON,
) -> None:
    """The fastest (or cheapest) layout for a cluster, or why none meets the ask."""
    p = plan_training(model, gpu, gpus, node=node, tokens=tokens, seq_len=seq_len, global_batch=global_batch,
                      deadline_days=deadline_days, budget_usd=budget_usd, objective=objective, optimizer=optimizer,
                      allow_offload=allow_offload)
    if json:
        print_json(p.to_dict())
        return
    head = [("ask", f"{p.model} on up to {p.gpus} x {p.gpu}, {p.tokens:.3g} tokens, minimise {p.objective}"
             + (f", deadline {p.deadline_s / SECONDS_PER_DAY:g} days" if p.deadline_s else "")
             + (f", budget ${p.budget_usd:,.0f}" if p.budget_usd else "")),
            ("search", f"{p.candidates_evaluated} layouts, {p.candidates_fitting} fit in memory"),
            ("answer" if p.feasible else f"infeasible ({p.binding})", p.explanation)]
    for r in p.relaxations:
        head.append(("nearest relaxation", f"{r['change']} = {r['value']:,.4g} ({r['why']})"
                     if isinstance(r["value"], float) else f"{r['change']} = {r['value']} ({r['why']})"))
    console.print(kv_table("ridgeplan train plan", head))
    if p.best is not None:
        console.print(kv_table("chosen layout", _estimate_rows(p.best)))
    if p.alternatives:
        console.print("[bold]Runners-up[/bold]" if p.feasible else "[bold]Closest layouts[/bold]")
        for a in p.alternatives:
            line = f"  - {a.layout.label()} on {a.gpus} GPUs: "
            line += (f"{a.time_to_train_s / SECONDS_PER_DAY:,.1f} days, MFU {a.mfu:.1%}" if a.fits
                     else f"needs {_gb(a.memory['total_bytes'])} per GPU")
            console.print(line)
    _assumptions(p.assumptions)
