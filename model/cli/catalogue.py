"""`ridgeplan hardware list|show`, `ridgeplan models list|show`, `ridgeplan formula`."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from model.architecture.catalogue import catalogue_entry, load_architecture, model_ids
from model.cli import app
from model import format as fmt
from model.format import memory_capacity
from model.cli.output import console, gb, kv_table, print_json, si
from model.hardware.db import list_devices, list_links, list_nodes, load_device
from model.operators.latex import formula_latex, operator_names
from model.operators.memory import kv_bytes_per_token
from model.operators.params import parameter_counts
from model.operators.symbols import DEFAULTS

hardware_app = typer.Typer(help="The hardware database.", no_args_is_help=True)
models_app = typer.Typer(help="The model catalogue.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")
app.add_typer(models_app, name="models")
JSON = typer.Option(False, "--json", help="machine-readable output")


@hardware_app.command("list")
def hardware_list(kind: Optional[str] = typer.Option(None, "--kind", help="gpu, cpu, ssd, csd, pim, ..."),
                  json: bool = JSON) -> None:
    """Every device, with its headline numbers."""
    devices = list_devices(kind)
    if json:
        print_json({"devices": [d.model_dump(exclude={"sources", "notes"}) for d in devices],
                    "links": [lk.id for lk in list_links()], "nodes": [n.id for n in list_nodes()]})
        return
    table = Table(title=f"{len(devices)} devices")
    for col in ("id", "name", "kind", "bf16/fp16 dense", "fp8", "memory (marketed)", "memory fits use", "bandwidth", "$/h"):
        table.add_column(col)
    for d in devices:
        p = d.peak_flop_per_s
        sixteen = p.get("bf16") or p.get("fp16")
        table.add_row(d.id, d.name, d.kind, si(sixteen, "FLOP/s") if sixteen else "-",
                      si(p["fp8"], "FLOP/s") if "fp8" in p else fmt.DASH, gb(d.memory.capacity_bytes),
                      gb(d.memory.total_bytes), si(d.memory.bandwidth_bytes_per_s, "B/s"),
                      fmt.usd(d.price.usd_per_hour) if d.price else fmt.DASH)
    console.print(table)


@hardware_app.command("show")
def hardware_show(device_id: str = typer.Argument(..., help="device id"), json: bool = JSON) -> None:
    """One device with every number and its source."""
    d = load_device(device_id)
    if json:
        print_json(d.model_dump())
        return
    rows = [("name", d.name), ("kind / arch", f"{d.kind} / {d.arch}"), ("note", d.unit_note or d.notes or fmt.DASH)]
    rows += [(f"peak {k}", si(v, "FLOP/s")) for k, v in d.peak_flop_per_s.items()]
    rows += [("memory", f"{d.memory.type or 'memory'}, {si(d.memory.bandwidth_bytes_per_s, 'B/s')}"),
             ("memory capacity", memory_capacity(d.memory.capacity_bytes, d.memory.runtime_total_bytes))]
    rows += [(f"ridge {k}", f"{fmt.number(v)} FLOP/B") for k, v in d.ridge_flop_per_byte.items() if k in ("bf16", "fp16", "fp8")]
    for name in ("scale_up", "scale_out", "host_link"):
        a = getattr(d, name)
        if a:
            rows.append((name, f"{a.link}: {si(a.bandwidth_bytes_per_s_per_direction, 'B/s')} per direction"))
    if d.power:
        rows.append(("TDP", f"{fmt.number(d.power.tdp_w)} W"))
    if d.price:
        rows.append(("price", f"{fmt.usd(d.price.usd_per_hour)}/h ({d.price.date}; {d.price.source})"))
    rows += [(f"source: {k}", v) for k, v in d.sources.items()]
    console.print(kv_table(d.id, rows))


@models_app.command("list")
def models_list(json: bool = JSON) -> None:
    """Every catalogue model with its parameter counts and KV bytes per token."""
    rows = []
    for ident in model_ids():
        a = load_architecture(ident)
        p = parameter_counts(a)
        rows.append({"id": ident, "model_type": a.model_type, "layers": a.num_layers, "total_params": p.total,
                     "active_params": p.active, "kv_bytes_per_token_bf16": kv_bytes_per_token(a)})
    if json:
        print_json({"models": rows})
        return
    table = Table(title=f"{len(rows)} models")
    for col in ("id", "type", "layers", "params", "active", "KV/token (bf16)"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["model_type"], str(r["layers"]), si(r["total_params"]), si(r["active_params"]),
                      f"{r['kv_bytes_per_token_bf16'] / 1024:,.1f} KiB")
    console.print(table)


@models_app.command("show")
def models_show(model_id: str = typer.Argument(..., help="catalogue id or path to config.json"), json: bool = JSON) -> None:
    """One model's structure, counts and where its numbers come from."""
    a = load_architecture(model_id)
    p = parameter_counts(a)
    entry = catalogue_entry(a.name)
    groups = [{"layers": g.count, "attention": g.attention.kind, "heads": g.attention.num_heads,
               "kv_heads": g.attention.num_kv_heads, "head_dim": g.attention.head_dim, "window": g.attention.window,
               "mlp": g.mlp.kind, "intermediate": g.mlp.intermediate_size if g.mlp.kind == "dense" else g.mlp.expert_intermediate_size,
               "experts": g.mlp.num_experts, "top_k": g.mlp.top_k} for g in a.groups]
    data = {"id": a.name, "model_type": a.model_type, "hidden_size": a.hidden_size, "vocab_size": a.vocab_size,
            "layers": a.num_layers, "groups": groups, "total_params": p.total, "active_params": p.active,
            "kv_bytes_per_token_bf16": kv_bytes_per_token(a), "tie_word_embeddings": a.tie_word_embeddings,
            "assumptions": list(a.assumptions)}
    if entry:
        data.update({"published_total_params": entry.published_total_params,
                     "published_active_params": entry.published_active_params, "params_source": entry.params_source})
    if json:
        print_json(data)
        return
    rows = [(fmt.label(k), fmt.count(v) if isinstance(v, int) and not isinstance(v, bool) else fmt.by_key(k, v))
            for k, v in data.items() if k not in ("groups", "assumptions", "kv_bytes_per_token_bf16")]
    rows.insert(rows.index(("active params", fmt.params(p.active))) + 1,
                ("KV per token (bf16)", f"{fmt.count(data['kv_bytes_per_token_bf16'])} B "
                                        f"({data['kv_bytes_per_token_bf16'] / 1024:,.1f} KiB)"))
    rows += [("assumptions", "; ".join(a.assumptions) or fmt.DASH)]
    console.print(kv_table(a.name, rows))
    gt = Table(title="layer groups", title_justify="left")
    for col in ("layers", "attention", "heads", "KV heads", "head dim", "window", "MLP", "intermediate", "experts",
                "top-k"):
        gt.add_column(col, justify="left" if col in ("attention", "MLP") else "right")
    for g in groups:
        moe = g["mlp"] != "dense"
        gt.add_row(fmt.count(g["layers"]), g["attention"], fmt.count(g["heads"]), fmt.count(g["kv_heads"]),
                   fmt.count(g["head_dim"]), fmt.count(g["window"]) if g["window"] else fmt.missing("full"),
                   g["mlp"], fmt.count(g["intermediate"]), fmt.count(g["experts"]) if moe else fmt.DASH,
                   fmt.count(g["top_k"]) if moe else fmt.DASH)
    console.print(gt)


@app.command()
def formula(model: str = typer.Option("llama-3.1-8b", "--model"),
            operator: str = typer.Option("qkv_proj", "--operator", help="operator name (see `ridgeplan formula --list`)"),
            quantity: str = typer.Option("flops", "--quantity", help="flops|weight_bytes|act_bytes|kv_read_bytes|kv_write_bytes|comm_bytes|cache_bytes|params"),
            batch: int = typer.Option(1, "--batch"), new_tokens: int = typer.Option(1, "--new-tokens"),
            context: int = typer.Option(0, "--context"), tp: int = typer.Option(1, "--tp"),
            list_ops: bool = typer.Option(False, "--list", help="list the model's operators")) -> None:
    """An operator's closed-form formula as LaTeX, and its value for the given scenario."""
    a = load_architecture(model)
    if list_ops:
        print("\n".join(operator_names(a)))
        return
    values = {**DEFAULTS, "B": batch, "T": new_tokens, "C": context, "tp": tp}
    print(formula_latex(a, operator, quantity, values=values))
