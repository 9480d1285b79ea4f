"""The multi-node split table (model.validation.engine_rows_multinode) against the InferenceX launch configs it
cites (verbatim excerpts in tests/data/inferencex_multinode.txt), and hand-built rows -> the deployments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.errors import RidgeplanError
from model.validation.engine_rows_layout import multinode_total_reason, row_deployment
from model.validation.engine_rows_multinode import RUNS, SGLANG_REDUNDANT_EXPERTS, multinode_run, with_multinode_split

EXCERPTS = Path(__file__).parent / "data" / "inferencex_multinode.txt"


def _sections() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    key = ""
    for line in EXCERPTS.read_text().splitlines():
        if line.startswith("=== "):
            key = line[4:]
            out[key] = []
        elif key:
            out[key].append(line)
    return out


def _section(fragment: str) -> list[str]:
    return next(v for k, v in _sections().items() if fragment in k)


def _trt_lines() -> set[tuple]:
    """(isl, mtp draft tokens, mode, ctx workers, gen workers, gen tp, concurrency list) of every launch line; the
    draft depth is the number after the memory fraction (nvidia-master.yaml @ 93e1b3ca1 names it DECODE_MTP_SIZE:
    3 for `"0.9" 3 0`, 1 for `"0.7" 1 0`)."""
    out, isl = set(), 0
    for line in _section("450d834a9551fed30c88956ea8e30d112e6be2f0 (2025-11-05): dynamo-trtllm"):
        m = re.search(r'"\$isl" = "(\d+)"', line)
        isl = int(m.group(1)) if m else isl
        m = re.search(r'submit_disagg\.sh "mtp=(on|off)" "(tep|dep)" (\d+) (\d+) (\d+) \d+ \d+ "[\d.]+" (\d+) \d+ '
                      r'"([\d ]+)"', line)
        if m:
            mtp = int(m.group(6)) if m.group(1) == "on" else 0
            out.add((isl, mtp, m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5)),
                     tuple(int(c) for c in m.group(7).split())))
    return out


def _sgl_lines(fragment: str) -> set[tuple]:
    """(isl, prefill nodes, prefill workers, decode nodes, decode workers, concurrency list) of every launch."""
    out, isl, lists = set(), 0, {}
    for line in _section(fragment):
        m = re.search(r'"\$ISL" = "(\d+)"', line)
        isl = int(m.group(1)) if m else isl
        m = re.search(r'(\w*concurrency_list)="([\dx]+)"', line)
        if m:
            lists[m.group(1)] = tuple(int(c) for c in m.group(2).split("x"))
        m = re.search(r"submit_disagg\.sh (\d+) (\d+) (\d+) (\d+) \d+ \$ISL \$OSL \$(\w+)", line)
        if m:
            out.add((isl, *(int(m.group(k)) for k in range(1, 5)), lists[m.group(5)]))
    return out


def _yaml_entries() -> set[tuple]:
    """(commit, system, precision, isl, concurrencies, prefill (workers, tp, ep, dp-attn), decode (...)) of every
    search-space entry of the nvidia-master.yaml blocks."""
    out = set()
    for key, lines in _sections().items():
        if "nvidia-master.yaml" not in key:
            continue
        commit = key.split("@ ")[1][:9]
        name = isl = entry = side = None
        for line in lines:
            if m := re.match(r"dsr1-(fp\d)-(gb\d00)-", line):
                name = (m.group(2), m.group(1))
            elif m := re.search(r"- isl: (\d+)", line):
                isl = int(m.group(1))
            elif m := re.search(r"conc-list: \[([\d ,]+)\]", line):
                if entry:
                    out.add(entry())
                concs = tuple(int(c) for c in m.group(1).replace(",", " ").split())
                pools: dict[str, dict] = {"prefill": {}, "decode": {}}
                entry = (lambda c=commit, n=name, i=isl, cs=concs, p=pools: (
                    c, *n, i, cs, *(tuple(p[s].get(f) for f in ("num-worker", "tp", "ep", "dp-attn"))
                                    for s in ("prefill", "decode"))))
            elif m := re.match(r"\s+(prefill|decode):", line):
                side = m.group(1)
            elif entry and side and (m := re.match(r"\s+(num-worker|tp|ep|dp-attn): (\w+)", line)):
                pools[side][m.group(1)] = m.group(2) == "true" if m.group(1) == "dp-attn" else int(m.group(2))
        if entry:
            out.add(entry())
    return out


def test_trtllm_runs_are_the_launch_lines():
    """Every TensorRT-LLM run of the table is one launch line (and each line is in the table): ctx workers at TP4 x
    EP4 (attention DP in `dep`), gen workers at gen_tp GPUs, MTP depth, and the recorded concurrency (the list x
    gen_num for `tep`)."""
    table = set()
    for r in (r for r in RUNS if r.backend == "trtllm"):
        dep = r.decode.attention_dp
        scale = 1 if dep else r.decode.workers
        assert r.prefill.gpus == 4 and r.prefill.ep == 4 and r.prefill.attention_dp == dep
        assert r.decode.ep == r.decode.gpus
        table.add((r.isl, r.mtp, "dep" if dep else "tep", r.prefill.workers, r.decode.workers, r.decode.gpus,
                   tuple(c // scale for c in r.concurrencies)))
    assert table == _trt_lines() and len(table) == 20


def test_sglang_runs_are_the_launch_lines():
    """Nov 2025 and Dec 2025 SGLang launches: DEP workers of nodes x 4 GPUs / workers."""
    for commit, fragment in (("450d834a9", "450d834a9551fed30c88956ea8e30d112e6be2f0 (2025-11-05): dynamo-sglang"),
                             ("175fe5364", "175fe53647fcda4161c31d4595d36e9a6a7efbfc (2025-12-01): dynamo-sglang")):
        table = {(r.isl, r.prefill.workers * r.prefill.gpus // 4, r.prefill.workers,
                  r.decode.workers * r.decode.gpus // 4, r.decode.workers, r.concurrencies)
                 for r in RUNS if r.backend == "sglang" and r.by == "total" and commit in r.source}
        assert table == _sgl_lines(fragment) and table
    # the launch script's own words for two of them: "3 prefill workers each at DEP8 and 1 decode worker at DEP48"
    mid = next(r for r in RUNS if "175fe5364" in r.source and r.total_gpus == 72 and r.isl == 1024)
    assert (mid.prefill.workers, mid.prefill.gpus, mid.decode.workers, mid.decode.gpus) == (3, 8, 1, 48)
    low = next(r for r in RUNS if "175fe5364" in r.source and r.total_gpus == 20)  # "1 prefill at DEP4, 4 decode at DEP4"
    assert (low.prefill.workers, low.prefill.gpus, low.decode.workers, low.decode.gpus) == (1, 4, 4, 4)


def test_february_sglang_runs_are_yaml_entries():
    entries = _yaml_entries()
    runs = [r for r in RUNS if r.by == "worker"]
    assert len(runs) == 7
    for r in runs:
        commit = r.source.split("@ ")[1]
        want = (commit, r.system, r.precision, r.isl, r.concurrencies,
                *((p.workers, p.gpus, p.ep, p.attention_dp) for p in (r.prefill, r.decode)))
        assert want in entries, want


def _row(**kw) -> dict:
    base = {"model_path": "deepseek-ai/DeepSeek-R1", "system": "gb200", "backend": "trtllm", "precision": "fp4",
            "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "isl": 1024, "osl": 1024, "mode": "agg"}
    return {**base, **kw}


def _tagged(total: int, conc: int, **kw) -> dict:
    return _row(id=f"2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c{conc}_tp{total}_ep1_27", tp_size=total,
                silicon_data_source=f"source_file=2026-04-06.csv; silicon_concurrency={conc}; measured=2025-11-17",
                **kw)


def test_a_tagged_total_becomes_the_disaggregated_run():
    """tp12 at c4300, 1k/1k: `"mtp=off" "dep" 1 1 8 ... "4300"` = 1 ctx worker DEP4 + 1 gen worker DEP8 (4 + 8 = 12);
    the aggregated label of this duplicate is replaced by the run it is."""
    row = with_multinode_split(_tagged(12, 4300))
    assert row["mode"] == "disagg" and (row["prefill_num_workers"], row["decode_num_workers"]) == (1, 1)
    assert row_deployment(row, "prefill").layout.label() == "TP1xADP4xEP4"
    assert row_deployment(row, "decode").layout.label() == "TP1xADP8xEP8"
    assert "450d834a9" in row["split_source"] and multinode_total_reason(row) == ""
    # `tep`, 4 gen workers: the recorded c564 is the listed 141 x 4; 4 + 4 x 8 = 36 GPUs
    tep = with_multinode_split(_tagged(36, 564))
    assert (tep["prefill_tp_size"], tep["prefill_moe_ep_size"], tep["decode_num_workers"]) == (4, 4, 4)
    assert row_deployment(tep, "decode").layout.label() == "TP8xEP8"


def test_ambiguous_and_mtp_runs_are_refused_with_the_reason():
    # c16 at 36 GPUs: the listed 4 x 4 of both the MTP and the plain `tep` launch
    run, why = multinode_run(_tagged(36, 16))
    assert run is None and "ambiguous" in why and "MTP3" in why
    assert "ambiguous" in multinode_total_reason(_tagged(36, 16))
    assert with_multinode_split(_tagged(36, 16))["mode"] == "agg"  # left as it is
    # c144 = 36 x 4: only the MTP launch lists it
    assert "MTP (3 draft tokens)" in multinode_total_reason(_tagged(36, 144))
    # no launch of this total lists the concurrency: the original refusal
    assert "not recorded" in multinode_total_reason(_tagged(36, 7))


def test_sglang_dep48_decode_worker_of_a_february_row():
    """gb200 fp8 1k/1k, decode recorded as tp 48 without attention DP (SGLang would refuse: 48 does not divide 128
    heads): nvidia-master.yaml @ 37f353be2 runs 3 prefill DEP8 + 1 decode DEP48; 256 + 32 = 288 = 48 x 6 experts."""
    row = _row(backend="sglang", precision="fp8", gemm_quant_mode="fp8", moe_quant_mode="fp8_block", mode="disagg",
               id="2026_03_25_deepseek_r1_gb200_sglang_fp8_disagg_1024x1024_c2048_tp8_0_ep8_0_807",
               silicon_data_source="source_file=2026-03-25.csv; silicon_concurrency=2048; measured=2026-02-09",
               prefill_tp_size=8, prefill_attention_dp_size=1, prefill_moe_tp_size=1, prefill_moe_ep_size=8,
               decode_tp_size=48, decode_attention_dp_size=1, decode_moe_tp_size=6, decode_moe_ep_size=8)
    with pytest.raises(RidgeplanError, match="48 does not divide"):
        row_deployment(row, "decode")
    split = with_multinode_split(row)
    dec = row_deployment(split, "decode")
    assert dec.layout.label() == "TP1xADP48xEP48xR32" and dec.layout.redundant_experts == SGLANG_REDUNDANT_EXPERTS
    assert (256 + SGLANG_REDUNDANT_EXPERTS) % 48 == 0 and (256 + SGLANG_REDUNDANT_EXPERTS) % 24 == 0
    assert row_deployment(split, "prefill").layout.label() == "TP1xADP8xEP8"
    assert (split["prefill_num_workers"], split["decode_num_workers"]) == (3, 1)
    assert "assumed" in split["split_source"]
    # the same columns at a concurrency the config does not list: unchanged
    other = dict(row, silicon_data_source="silicon_concurrency=999")
    assert with_multinode_split(other)["decode_tp_size"] == 48


def test_a_disaggregated_worker_is_one_simulator_instance_per_attention_dp_rank():
    """A Deployment's batch, step cost and KV pool are one attention-DP rank's (the aggregated rows split their
    concurrency per rank): 2 prefill workers of DEP4 are 2 x 4 = 8 instances, 1 decode worker of DEP16 is 16, and a
    TP8 worker (no attention DP) is 1."""
    from model.placement.layout import Layout
    from model.validation.engine_rows import rank_instances

    assert rank_instances(2, Layout(tp=1, attention_dp=4, ep=4)) == (8,)
    assert rank_instances(1, Layout(tp=1, attention_dp=16, ep=16)) == (16,)
    assert rank_instances(3, Layout(tp=8, ep=8)) == (3,)


def test_tp1_placeholder_rows_are_refused_with_the_reason():
    """December 2025 SGLang GB200 configs write `tp: 1, ep: 1` as placeholders: a tp1_ep1 row is not DeepSeek-R1 on
    one GPU; a row whose pools record real degrees is not touched."""
    from model.validation.engine_rows_multinode import placeholder_reason

    row = _row(backend="sglang", precision="fp8", mode="disagg",
               id="2026_04_06_deepseek_r1_gb200_sglang_fp8_disagg_1024x1024_c64_tp1_ep1_1149",
               prefill_tp_size=1, prefill_attention_dp_size=1, prefill_moe_tp_size=1, prefill_moe_ep_size=1,
               decode_tp_size=1, decode_attention_dp_size=1, decode_moe_tp_size=1, decode_moe_ep_size=1)
    assert "placeholder" in placeholder_reason(row) and "93e1b3ca1" in placeholder_reason(row)
    assert placeholder_reason(dict(row, decode_attention_dp_size=4)) == ""
    assert placeholder_reason(dict(row, backend="trtllm")) == ""
