"""The bounded least-recently-used map behind the planner's and the stacked evaluator's per-process memories."""

from model.lru import LRU


def test_least_recently_used_goes_first():
    m = LRU(2)
    m.put("a", 1)
    m.put("b", 2)
    assert m.get("a") == 1  # reading "a" makes "b" the least recent
    m.put("c", 3)
    assert "b" not in m and m.get("a") == 1 and m.get("c") == 3 and len(m) == 2


def test_rewriting_refreshes_and_replaces():
    m = LRU(2)
    m.put("a", 1)
    m.put("b", 2)
    m.put("a", 10)
    m.put("c", 3)
    assert m.get("a") == 10 and "b" not in m


def test_capacity_zero_remembers_nothing_and_clear_empties():
    m = LRU(0)
    assert m.put("a", 1) == 1 and m.get("a") is None and len(m) == 0
    m = LRU(3)
    m.put("a", 1)
    m.clear()
    assert m.get("a", "missing") == "missing"
