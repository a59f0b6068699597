"""Calls sent ahead of the judge (prefetch.py): which tests qualify, and that verdicts are those of one request
per call, for stateful, failing, raising, hanging and dying candidates."""

from __future__ import annotations

import pytest

from next_jax.execution import judge as judge_module
from next_jax.execution import prefetch, session
from next_jax.execution.verdict import Candidate

NAMES = {"f": ["callable"], "math": ["module", "math"], "K": ["value", ["i", "3"]]}


def _plan(*tests, setup="", names=NAMES, entry="f"):
    return prefetch.plan(tests, setup, names, entry)


@pytest.mark.parametrize("test", [
    "assert f(1, 'a') == 2",
    "assert f([1, 2], k=(3, 4)) != {'a': [1]}",
    "assert set(f({'x': 1})) == set([1, 2])",
    "assert math.isclose(f(2.5), 6.25, rel_tol=0.001)",
    "assert abs(f(-1) - 2) < 1e-9",
    "assert not f(0)",
    "assert f(None) is None",
    "assert sorted(f('abc'))[0] == 'a'",
    "assert 3 == f(3)",
    "assert f(b'\\x00', -2, 1e999) == 1",
])
def test_single_literal_calls_qualify(test):
    planned = _plan(test)
    assert planned is not None and len(planned) == 1
    assert planned[0]["op"] == "call" and planned[0]["target"] == "f"


@pytest.mark.parametrize("test", [
    "assert f(1) == 1 or f(2) == 2",          # conditional second call
    "assert f(1) == 2 and True",              # short-circuit
    "assert 0 < f(1) < 3",                    # chained comparison
    "assert f(f(1)) == 1",                    # two calls
    "assert f(x) == 1",                       # argument not a literal
    "assert f({1, 2}) == 1",                  # a set: encoding order would follow the dispatcher's hash seed
    "assert f(int('3')) == 1",                # a call inside the arguments
    "assert f(1).value == 2",                 # attribute of the result: a request on a handle
    "assert dict(f(1)) == {}",                # dict() looks up `keys` on a handle
    "assert getattr(f(1), 'x') == 2",         # not an allow-listed helper
    "assert [f(i) for i in (1, 2)] == [1, 2]",
    "assert (lambda: f(1))() == 1",
    "assert 1 / 0 == f(1)",                   # something that raises before the call
    "assert len(5) == f(1)",
    "assert f(1) == K",                       # a candidate value besides the call
    "assert f == 1",                          # the function, not a call
    "assert f(1) == 1, 'message'",            # a message evaluated only on failure
    "assert f(*[1]) == 1",
    "x = f(1)\nassert x == 1",                # not one assert
    "assert cmath.isclose(f(1), 1)",          # a module the program did not import
    "assert f(1",
])
def test_anything_else_falls_back_to_one_request_per_call(test):
    assert _plan(test) is None


def test_plans_cover_whole_candidates_only():
    assert _plan("assert f(1) == 1", "assert f(2) == 2") is not None
    assert _plan("assert f(1) == 1", "assert f(x) == 2") is None
    assert _plan("assert f(1) == 1", setup="x = 2") is None
    assert _plan() is None
    assert _plan("assert f('" + "a" * 20_000 + "') == 1") is None  # the plan must fit in the pipe unread


def test_builtin_named_entry_point_is_the_candidate():
    names = {"sum": ["callable"]}
    assert prefetch.plan(("assert sum(1, 2) == 3",), "", names, "sum")[0]["target"] == "sum"
    assert prefetch.plan(("assert sum([1, 2]) == 3",), "", names, "f") is None  # the judge's real sum: no call


class _FakeChannel:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)

    def recv(self):
        raise AssertionError("no live request expected")


def test_judge_refuses_a_call_the_plan_did_not_foresee():
    proxy = judge_module.Proxy(_FakeChannel())
    proxy.prefetched, proxy.prefetched_count, proxy.test = {0: ["g", {"value": ["i", "1"]}]}, 1, 0
    with pytest.raises(judge_module.CandidateGone):
        proxy.call("f", (1,), {})
    assert proxy.channel.sent[-1]["op"] == "prefetch_mismatch"
    proxy.prefetched, proxy.prefetched_count, proxy.test = {0: ["f", {"value": ["i", "7"]}]}, 1, 0
    assert proxy.call("f", (1,), {}) == 7
    with pytest.raises(judge_module.CandidateGone):  # a second call in the same test
        proxy.call("f", (1,), {})


def _verify_both_ways(pool, monkeypatch, code, tests):
    """Verdicts with calls sent ahead, then with one request per call."""
    candidate = Candidate("c", code, tuple(tests))
    ahead = pool.verify([candidate], details=True)[0]
    monkeypatch.setattr(session.prefetch, "plan", lambda *a, **k: None)
    one_by_one = pool.verify([candidate], details=True)[0]
    monkeypatch.undo()
    return ahead, one_by_one


def _comparable(verdict):
    return (verdict.status, verdict.passed, verdict.total,
            [{k: v for k, v in d.items() if k != "stdout"} for d in verdict.details])


@pytest.mark.parametrize("code, tests", [
    ("n = 0\ndef f(x):\n    global n\n    n += x\n    return n\n",
     ["assert f(1) == 1", "assert f(2) == 3", "assert f(3) == 7", "assert f(4) == 10"]),
    ("def f(x):\n    if x == 2:\n        raise KeyError('k')\n    return x\n",
     ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"]),
    ("def f(x):\n    class Box: pass\n    return Box() if x else [x]\n",
     ["assert f(0) == [0]", "assert f(1) == [1]", "assert f(0) == [0]"]),
    ("def f(x):\n    return x * 0.1\n", ["assert math.isclose(f(3), 0.3)", "assert f(2) == 0.2"]),
    ("import math\ndef f(x):\n    return x * 0.1\n", ["assert math.isclose(f(3), 0.3)", "assert f(2) == 0.2"]),
])
def test_verdicts_match_one_request_per_call(pool, monkeypatch, code, tests):
    ahead, one_by_one = _verify_both_ways(pool, monkeypatch, code, tests)
    assert _comparable(ahead) == _comparable(one_by_one)


@pytest.mark.parametrize("code, tests", [
    ("def f(x):\n    return [x, {'k': (x, 1.5)}, 'é', None]\n",
     ["assert f(1) == [1, {'k': (1, 1.5)}, 'é', None]", "assert f(2) == [2, {'k': (2, 1.5)}, 'e', None]",
      "assert f(3) != [3]"]),
    ("def f(x):\n    return None if x else 0\n",
     ["assert f(1) is None", "assert f(0) is None", "assert f(0) is not None", "assert f(1) is not None"]),
    ("def f(x):\n    return x\n", ["assert f(1)", "assert f(0)", "assert not f(0)", "assert not f([1])"]),
    ("def f(x):\n    return x > 1\n", ["assert f(2) == True", "assert f(0) is False", "assert f(3) is False"]),
    ("def f(x):\n    class Box: pass\n    return Box()\n", ["assert f(1) == 1", "assert f(1)", "assert f(2) != 2"]),
    ("def f(x):\n    return 1 / x\n", ["assert f(1) == 1.0", "assert f(0) == 0", "assert f(4) == 0.25"]),
    ("def f(x):\n    return x * 0.1\n", ["assert f(3) == 0.30000000000000004", "assert f(3) == 0.3"]),
])
def test_comparisons_decided_without_the_judge_match_the_judge(pool, monkeypatch, code, tests):
    names = {"f": ["callable"]}
    planned = prefetch.plan(tests, "", names, "f")
    assert planned is not None and prefetch.local_results(tests, planned, [{"value": None}] * len(tests)) is not None
    ahead, one_by_one = _verify_both_ways(pool, monkeypatch, code, tests)
    assert _comparable(ahead) == _comparable(one_by_one)


def test_local_comparisons_need_no_judge(pool, monkeypatch):
    def no_judge(self):
        raise AssertionError("the judge was asked")

    monkeypatch.setattr(session.JudgeHost, "acquire", no_judge)
    verdict = pool.verify([Candidate("c", "def f(x):\n    return x + 1\n", ("assert f(1) == 2", "assert f(2) == 4"))],
                          details=True)[0]
    assert (verdict.status, verdict.passed) == ("fail", 1)
    assert verdict.details[1]["expected"] == "4" and verdict.details[1]["got"] == "3"


@pytest.mark.parametrize("test", [
    "assert len(f(1)) == 1",            # the tested side is not the call itself
    "assert sorted(f(1))",
    "assert f(1) < 2",                  # an ordering can raise TypeError on mixed types: the judge reports it
    "assert f(1) == [1, x]",            # not a literal
    "assert f(1) is 1",
    "assert math.isclose(f(1), 1.0)",
])
def test_other_forms_still_go_to_the_judge(test):
    names = {"f": ["callable"], "math": ["module", "math"]}
    planned = prefetch.plan((test,), "", names, "f")
    assert planned is None or prefetch.local_results((test,), planned, [{"value": None}]) is None


def test_a_candidate_that_hangs_mid_plan_keeps_the_tests_it_passed(pool, monkeypatch):
    code = "def f(x):\n    while x == 2:\n        pass\n    return x\n"
    tests = ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"]
    assert prefetch.plan(tests, "", {"f": ["callable"]}, "f") is not None
    ahead, one_by_one = _verify_both_ways(pool, monkeypatch, code, tests)
    assert ahead.status == one_by_one.status == "timeout"
    assert ahead.passed == one_by_one.passed == 1
    assert ahead.details[1]["test"] == one_by_one.details[1]["test"] == 1


def test_a_candidate_that_dies_mid_plan_keeps_the_tests_it_passed(pool, monkeypatch):
    code = "import os\ndef f(x):\n    if x == 2:\n        os._exit(0)\n    return x\n"
    tests = ["assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3"]
    ahead, one_by_one = _verify_both_ways(pool, monkeypatch, code, tests)
    assert ahead.status == one_by_one.status == "runtime_error"
    assert ahead.passed == one_by_one.passed == 1
