"""Verification pool behaviour on honest programs: statuses, details, handles, determinism, evaluate."""

from next_jax.execution import session
from next_jax.execution.verdict import Candidate


def _one(pool, code, tests, setup="", details=False):
    return pool.verify([Candidate("c", code, tuple(tests), setup)], details=details)[0]


def test_pass_and_fail_report_expected_and_got(pool):
    ok = _one(pool, "def add(a, b):\n    return a + b\n", ["assert add(1, 2) == 3", "assert add('a', 'b') == 'ab'"])
    assert (ok.status, ok.passed, ok.total) == ("pass", 2, 2)
    bad = _one(pool, "def add(a, b):\n    return a - b\n", ["assert add(2, 2) == 0", "assert add(1, 2) == 3"])
    assert (bad.status, bad.passed, bad.total) == ("fail", 1, 2)
    first = bad.details[0]
    assert first["test"] == 1 and first["expected"] == "3" and first["got"] == "-1"


def test_statuses_for_errors(pool):
    assert _one(pool, "def f(:\n", ["assert f() == 1"]).status == "syntax_error"
    err = _one(pool, "def f():\n    return {}['k']\n", ["assert f() == 1"])
    assert err.status == "runtime_error" and err.details[0]["type"] == "KeyError"
    assert err.details[0]["line"] == 2
    assert _one(pool, "raise ValueError('at import')\n", ["assert f() == 1"]).status == "runtime_error"
    missing = _one(pool, "def g():\n    return 1\n", ["assert f() == 1"])
    assert missing.status == "fail" and missing.details[0]["type"] == "NameError"


def test_comparison_forms_run_on_plain_values(pool):
    code = ("import math\ndef f(x):\n    return x / 3\n"
            "def s(xs):\n    return set(xs)\n"
            "def n():\n    return None\n")
    tests = ["assert math.isclose(f(1), 0.3333333333)", "assert set(s([1, 2, 2])) == {1, 2}",
             "assert n() is None", "assert s([1])", "assert not s([])",
             "for i in range(3):\n    assert f(3 * i) == i"]
    verdict = _one(pool, code, tests, setup="import math")
    assert verdict.status == "pass", verdict


def test_objects_become_handles(pool):
    """MBPP 367-style: trusted setup builds objects of a class the program defines and passes them back."""
    code = ("class Node:\n    def __init__(self, data):\n        self.data = data\n        self.left = None\n"
            "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n"
            "def make():\n    return Node(5)\n")
    setup = "root = Node(1)\nroot.left = Node(2)\n"
    verdict = _one(pool, code, ["assert depth(root) == 2", "assert make().data == 5", "assert make() != make()"],
                   setup=setup)
    assert verdict.status == "pass", verdict
    # A handle never equals a value, whatever the object's __eq__ says.
    cheat = _one(pool, "class T:\n    def __eq__(self, o):\n        return True\ndef make():\n    return T()\n",
                 ["assert make() == 5"])
    assert cheat.status == "fail"


def test_humaneval_style_check(pool):
    code = "def inc(x):\n    return x + 1\n"
    test = "def check(candidate):\n    for i in range(20):\n        assert candidate(i) == i + 1\n\ncheck(inc)\n"
    assert _one(pool, code, [test]).status == "pass"
    assert _one(pool, code.replace("+ 1", "+ 2"), [test]).status == "fail"


def test_numpy_scalars_are_converted(pool):
    code = "import numpy as np\ndef total(xs):\n    return np.sum(np.array(xs))\n"
    assert _one(pool, code, ["assert total([1, 2, 3]) == 6"]).status == "pass"


def test_deterministic_hash_order_and_random(pool):
    code = ("import random\ndef f():\n    return [list({'a', 'b', 'c', 'd'}), random.random()]\n")
    first = _one(pool, code, ["assert f() == 0"], details=True)
    second = _one(pool, code, ["assert f() == 0"], details=True)
    assert first.details[0]["got"] == second.details[0]["got"]


def test_details_per_test_and_stdout(pool):
    verdict = _one(pool, "def f(x):\n    print('hello', x)\n    return x\n", ["assert f(1) == 1", "assert f(2) == 3"],
                   details=True)
    assert [d.get("ok") for d in verdict.details[:2]] == [True, False]
    assert "hello 1" in verdict.details[-1]["stdout"]


def test_invalid_records(pool):
    verdict = pool.verify([Candidate("x", "def f(): pass", ())])[0]
    assert verdict.status == "invalid_record"
    huge = pool.verify([Candidate("y", "x = 1\n" * 400_000, ("assert x == 1",))])[0]
    assert huge.status == "invalid_record"


def test_a_trusted_side_failure_costs_one_verdict_not_the_batch(pool, monkeypatch):
    real = session.run_candidate

    def flaky(fresh, judges, candidate, *args, **kwargs):
        if candidate.id == "boom":
            raise SystemError("AST constructor recursion depth mismatch")
        return real(fresh, judges, candidate, *args, **kwargs)

    monkeypatch.setattr(session, "run_candidate", flaky)
    code, tests = "def f():\n    return 1\n", ("assert f() == 1",)
    verdicts = pool.verify([Candidate(i, code, tests) for i in ("a", "boom", "b")])
    assert [(x.id, x.status) for x in verdicts] == [("a", "pass"), ("boom", "sandbox_error"), ("b", "pass")]
    assert verdicts[1].details[0]["type"] == "SystemError"


def test_evaluate_reference_outputs(pool):
    out = pool.evaluate("def f(x):\n    return [x] * 2\n", ["f(3)", "f('a')", "f(1/0)"])
    assert out[0] == {"value": [3, 3]} and out[1] == {"value": ["a", "a"]}
    assert out[2]["exception"]["type"] == "ZeroDivisionError"


def test_program_cannot_shadow_builtins_or_modules_used_by_tests(pool):
    cheat = ("class _M:\n    def isclose(self, *a, **k):\n        return True\nmath = _M()\n"
             "def sorted(xs):\n    return [1, 2, 3]\n"
             "def f(x):\n    return x\n")
    assert _one(pool, cheat, ["assert sorted(f([3, 1])) == [1, 2, 3]"]).status == "fail"
    assert _one(pool, cheat, ["assert math.isclose(f(1), 2.0)"]).status == "fail"
    # ...but the function under test may carry a builtin's name (MBPP 126 defines `sum`).
    assert _one(pool, "def sum(a, b):\n    return a + b\n", ["assert sum(10, 15) == 25"]).status == "pass"
    # A module the program imports is usable by tests, as the judge's own import of it.
    honest = "import math\ndef area(r):\n    return math.pi * r * r\n"
    assert _one(pool, honest, ["assert math.isclose(area(1), 3.14159, rel_tol=1e-4)"]).status == "pass"


def test_numpy_random_is_seeded_when_imported(pool):
    code = "import numpy as np\nX = float(np.random.rand())\ndef f():\n    return [X, float(np.random.rand())]\n"
    first = _one(pool, code, ["assert f() == 0"], details=True)
    second = _one(pool, code, ["assert f() == 0"], details=True)
    assert first.details[0]["got"] == second.details[0]["got"]


def test_children_are_forked_from_a_single_threaded_template(pool):
    """A zygote that imported ``threading`` (e.g. through ``logging``) would fork from a process whose fork
    handlers run Python in every child; the template must hold neither."""
    answer = pool.evaluate("import sys\n", ["sorted(m for m in ('threading', 'logging') if m in sys.modules)"])
    assert answer == [{"value": []}]
