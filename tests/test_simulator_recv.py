"""SGLang's --scheduler-recv-interval in the simulator: hand-checked timelines with made-up costs."""

from __future__ import annotations

import pytest

from model.engines import SGLANG
from model.errors import RidgeplanError
from model.serving.policy import ENGINES
from model.serving.simulator.engine import Instance
from tests.test_simulator import LinearCost, _run


def test_sglang_source_weights():
    # managers/scheduler_recv_skipper.py: DECODE weighs 1, EXTEND (any mode not listed) 1000; default interval 1
    assert (SGLANG.scheduler_recv_interval, SGLANG.recv_weight_decode, SGLANG.recv_weight_other) == (1, 1, 1000)


def test_recv_interval_holds_an_arrival_until_the_tenth_decode_iteration():
    # r0 (100-token prompt, 40 tokens out) arrives at 0, r1 (100 tokens, 2 out) at 15 ms; overlap off.
    # it1: r0's prefill, 0 -> 20 ms (10 ms + 100 x 0.1 ms). Every decode iteration of r0 alone: 10.1 ms.
    # Interval 1: r1 is seen at 20 ms and prefilled alone, 20 -> 40 ms: TTFT 40 - 15 = 25 ms.
    # Interval 10: the loop at 20 ms follows an EXTEND batch (weight 1000 >= 10): it receives, but r1 arrived
    # before 20 ms, so that is the same as above. Send r1 at 25 ms instead: at 20 ms the counter resets and
    # r0 decodes 20 -> 30.1 ms (counter 1 at the loop at 30.1 ms), ..., the loop at 20 + 9 x 10.1 ms has
    # counter 9 and the one at 20 + 10 x 10.1 = 121 ms reaches 10: r1 is received then and prefilled
    # 121 -> 141 ms: TTFT 141 - 25 = 116 ms. With interval 1 it is prefilled at 30.1 ms: 50.1 - 25 = 25.1 ms.
    run1, _ = _run("sglang", [100, 100], [40, 2], arrivals=[0.0, 0.025], overlap=False)
    run10, table = _run("sglang", [100, 100], [40, 2], arrivals=[0.0, 0.025], overlap=False, recv_interval=10)
    assert (run1.first - run1.arrival)[1] == pytest.approx(0.0251)
    assert (run10.first - run10.arrival)[1] == pytest.approx(0.020 + 10 * 0.0101 + 0.020 - 0.025)
    assert table.calls[:12] == [(0, [(100, 1)])] + [(1, [])] * 10 + [(0, [(100, 1)])]


def test_recv_interval_idle_engine_receives_at_once():
    # nothing runs when r0 arrives: an idle loop spins and receives at its next iteration, TTFT = its prefill
    run, _ = _run("sglang", [100], [3], arrivals=[0.5], recv_interval=30)
    assert (run.first - run.arrival)[0] == pytest.approx(0.020)


def test_recv_interval_only_sglang_and_whole():
    policy = ENGINES["vllm"]
    with pytest.raises(RidgeplanError, match="recv_interval"):
        Instance(LinearCost(), policy, 1e9, recv_interval=10)
    with pytest.raises(RidgeplanError, match="recv_interval"):
        Instance(LinearCost(), ENGINES["sglang"], 1e9, recv_interval=0)
    Instance(LinearCost(), policy, 1e9, recv_interval=1)  # every iteration: what every engine does


def test_recv_interval_macro_steps_match_single_steps():
    # decode-only stretches run as macro steps of m iterations; the receive counter must advance by m as if
    # each iteration ran on its own (closed loop of 3 clients, staggered output lengths)
    import numpy as np

    from model.serving.simulator import Load
    from model.serving.simulator.loadgen import Requests
    from model.serving.simulator.run import _Run

    def go(macro):
        n = 12
        ins = np.array([100.0 + 37 * (i % 5) for i in range(n)])
        outs = np.array([23.0 + 11 * (i % 4) for i in range(n)])
        reqs = Requests(ins, outs, np.full(n, np.nan), np.zeros(n), np.full(n, -1))
        inst = Instance(LinearCost(), ENGINES["sglang"], 1e9, recv_interval=10)
        run = _Run({"both": [inst]}, reqs, Load("closed", concurrency=3, num_requests=n), macro_steps=macro)
        run.go()
        return run.first - run.arrival, run.finish

    (t_macro, f_macro), (t_single, f_single) = go(True), go(False)
    assert t_macro == pytest.approx(t_single)
    assert f_macro == pytest.approx(f_single)
    assert t_macro.max() > 0.05  # some requests did wait for a receive (several decode iterations of ~10 ms)


def test_uniform_range_lengths_by_hand():
    from model.serving.workload import Lengths

    # --random-range-ratio 0.8 on 1,000 in / 200 out: inputs on [800, 1000], outputs on [160, 200]; 5 points each
    # are 800, 850, 900, 950, 1000 and 160, 170, ..., 200: 25 equally likely pairs, means 900 and 180
    lengths = Lengths.uniform_range(1000, 200, 0.8, points=5)
    assert sorted(set(lengths.input_len)) == [800, 850, 900, 950, 1000]
    assert sorted(set(lengths.output_len)) == [160, 170, 180, 190, 200]
    assert lengths.weight == pytest.approx([1 / 25] * 25)
    assert float(lengths.input_len @ lengths.weight) == pytest.approx(900)
    assert float(lengths.output_len @ lengths.weight) == pytest.approx(180)
    fixed = Lengths.uniform_range(1000, 200, 1.0)
    assert (fixed.input_len.tolist(), fixed.output_len.tolist()) == ([1000], [200])
    for bad in (0, 1.5, -0.2):
        with pytest.raises(RidgeplanError, match="ratio"):
            Lengths.uniform_range(1000, 200, bad)


def test_recv_interval_engages_once_lengths_desynchronise_the_clients():
    # fixed lengths: the closed loop's clients stay in lockstep (every arrival meets an idle engine), so the
    # receive interval changes nothing; with output lengths drawn from a range they arrive while others decode
    import numpy as np

    from model.serving.simulator import Load
    from model.serving.simulator.loadgen import Requests
    from model.serving.simulator.run import _Run

    def mean_ttft(outs, k):
        n = len(outs)
        reqs = Requests(np.full(n, 100.0), np.asarray(outs, float), np.full(n, np.nan), np.zeros(n), np.full(n, -1))
        inst = Instance(LinearCost(), ENGINES["sglang"], 1e9, recv_interval=k)
        run = _Run({"both": [inst]}, reqs, Load("closed", concurrency=4, num_requests=n))
        run.go()
        return float(np.mean(run.first - run.arrival))

    fixed = [50] * 16
    spread = [40 + (7 * i) % 11 for i in range(16)]
    assert mean_ttft(fixed, 10) == pytest.approx(mean_ttft(fixed, 1))
    assert mean_ttft(spread, 10) > mean_ttft(spread, 1) + 0.01  # at least one decode iteration more on average
