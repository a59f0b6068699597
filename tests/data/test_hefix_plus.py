"""HeFix+ against the sandbox: every buggy program fails and every canonical solution passes its EvalPlus inputs.

All 164 problems, on their base inputs plus the first few plus inputs (the full 122k-input build is a launch
job, see docs/data.md), with a short per-candidate timeout so the three hanging bugs cost little.
"""

from __future__ import annotations

import collections

import pytest

from next_jax.data import readers
from next_jax.data.hefix_plus import (
    CHECK_SETUP,
    TOO_LARGE,
    _literal,
    build_hefix_plus,
    expected_outputs,
    make_test,
)
from next_jax.execution.verdict import Candidate

PLUS_INPUTS = 8


@pytest.fixture(scope="module")
def short_pool():
    from next_jax.execution.pool import VerificationPool

    with VerificationPool(workers=2, timeout=4.0) as p:
        yield p


@pytest.fixture(scope="module")
def hefix(data_dir, short_pool):
    fix = readers.read_humanevalfix(data_dir / "humanevalfix" / "humanevalpack.jsonl").records
    plus = readers.read_evalplus(data_dir / "evalplus" / "HumanEvalPlus.jsonl.gz").records
    return build_hefix_plus(fix, plus, short_pool, max_plus_inputs=PLUS_INPUTS)


@pytest.mark.slow
def test_every_buggy_fails_and_every_canonical_passes(hefix, short_pool):
    assert len(hefix) == 164
    canonical = short_pool.verify([Candidate(e.id, e.reference, e.hidden_tests, e.setup) for e in hefix])
    assert collections.Counter(v.status for v in canonical) == {"pass": 164}
    assert "passes_evalplus" not in {e.failure_type for e in hefix}
    buggy = short_pool.verify([Candidate(e.id, e.buggy_code, e.hidden_tests, e.setup) for e in hefix])
    assert all(not v.ok for v in buggy)
    # the visible tests include a failing one for every problem, so every prompt has a trace to show
    visible = short_pool.verify(
        [Candidate(e.id, e.buggy_code, tuple(e.tests[i] for i in e.failing_tests), e.setup) for e in hefix],
        details=True,
    )
    assert all(v.passed == 0 for v in visible)
    for e in hefix:
        assert set(e.tests) <= set(e.hidden_tests) and len(e.hidden_tests) > len(e.tests)
        assert e.provenance.dataset == "humanevalfix" and e.provenance.operator


def test_float_tolerance_follows_evalplus(short_pool):
    code = "def f(x):\n    return x / 3\n"
    close = make_test("f", (1.0,), 0.3333334, 0.0)  # off by 7e-8: within the default 1e-6
    far = make_test("f", (1.0,), 0.334, 0.0)
    exact = make_test("f", (3,), 1.0, 0.0)
    wrong_type = "assert _hefix_close([1.0], (1.0,), 0.0)"  # a list is not a tuple
    got = short_pool.verify(
        [Candidate(str(i), code, (t,), CHECK_SETUP) for i, t in enumerate([close, far, exact, wrong_type])]
    )
    assert [v.status for v in got] == ["pass", "fail", "pass", "fail"]


def test_literals_survive_giant_ints_and_non_finite_floats():
    ns: dict = {}
    exec(CHECK_SETUP, ns)
    for value in [10**6000, [float("inf"), -float("inf")], (1,), (), {"a": (2, 3)}]:
        assert eval(_literal(value), ns) == value
    assert eval(_literal(float("nan")), ns) != eval(_literal(float("nan")), ns)  # still a nan


def test_answers_too_large_together_are_split_not_a_crash(short_pool):
    """Individually small, collectively far above the channel's 16 MiB frame (the documented build died on a
    144 MB batch): the batch is split. An input whose answer alone is too large is dropped, the others kept."""
    problem = readers.EvalPlusProblem("HumanEval/0", "def big(i):\n", "big", "    return str(i) * (3 << 20)\n",
                                      (), (), 0.0)
    inputs = [(i,) for i in range(1, 10)] + [(1234567,)]  # the last: 7 x 3 MiB characters in one answer
    out = expected_outputs(short_pool, problem, inputs)
    assert [len(value) for value in out[:9]] == [3 << 20] * 9 and out[4][:2] == "55"
    assert out[9] is TOO_LARGE
