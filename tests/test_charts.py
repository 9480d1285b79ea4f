"""Chart colours: the stacked breakdown's segments are distinct, one hue per operator family."""

from __future__ import annotations

import colorsys

from model.api import deployment
from model.app import charts
from model.serving import report


def _hue(color: str) -> float:
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[0]


def test_every_operator_has_a_family():
    for model in ("deepseek-v3", "llama-3.1-8b", "qwen3-next-80b-a3b", "gemma-2-27b", "opt-13b", "mixtral-8x7b"):
        d = deployment(model, "h100-sxm", tp=8)
        ops = report.operator_stack({"decode": d.step(4, 1, 1000)})
        assert set(ops["family"]) <= set(report.FAMILIES), model
    assert report.operator_family("experts", "gemm") == "MoE"
    assert report.operator_family("tp_all_reduce", "collective") == "communication"
    assert report.operator_family("o_proj", "gemm") == "attention projections"


def test_deepseek_segments_distinct_and_hue_by_family():
    # the issue: experts, o_proj and tp_all_reduce shared one green in DeepSeek-V3's breakdown
    d = deployment("deepseek-v3", "h200", tp=8, weights="fp8")
    ops = report.operator_stack({"decode": d.step(16, 1, 1152)}).drop_duplicates("operator")
    colors = charts.family_colors(dict(zip(ops["operator"], ops["family"])))
    assert len(set(colors.values())) == len(colors)
    assert len({colors["experts"], colors["o_proj"], colors["tp_all_reduce"]}) == 3
    fam = dict(zip(ops["operator"], ops["family"]))
    for a in colors:
        for b in colors:
            if fam[a] != fam[b]:
                assert abs(_hue(colors[a]) - _hue(colors[b])) > 0.05, (a, b)


def test_stacked_chart_names_each_segment_on_hover():
    d = deployment("deepseek-v3", "h200", tp=8, weights="fp8")
    ops = report.operator_stack({"decode": d.step(16, 1, 1152)})
    spec = charts.stacked_bars(ops, "time_s", "operator", "phase", "ms", family="family").to_dict()
    fields = {t["field"] for t in spec["encoding"]["tooltip"]}
    assert {"operator", "family", "phase", "milliseconds"} <= fields
