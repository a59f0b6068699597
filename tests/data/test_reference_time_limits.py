"""Reference-derived time limits for repair examples: one measurement per problem, gin-bound rule."""

from __future__ import annotations

import gin

from next_jax.data import time_limits
from next_jax.data.example import Provenance, RepairExample


def _example(ident, problem, reference, hidden=("assert f() == 1",)):
    return RepairExample(id=ident, problem_id=problem, description="", buggy_code="def f():\n    return 0\n",
                         entry_point="f", tests=("assert f() == 1",), hidden_tests=hidden, reference=reference,
                         provenance=Provenance("mbpp", "mutation"))


def test_one_reference_per_problem_on_the_deciding_tests():
    ref = "def f():\n    return 1\n"
    examples = [_example("a/1", "mbpp/1", ref, ("assert f() == 1", "assert f() != 2")),
                _example("a/2", "mbpp/1", ref), _example("b/1", "mbpp/2", None)]
    [candidate] = time_limits.reference_candidates(examples)
    assert (candidate.id, candidate.code, len(candidate.tests)) == ("mbpp/1", ref, 2)


def test_the_rule_is_bound_in_gin():
    with gin.unlock_config():
        gin.parse_config(["time_limits.policy.floor = 2.5", "time_limits.policy.factor = 3.0"])
    try:
        rule = time_limits.policy()
    finally:
        gin.clear_config()
    assert (rule.floor, rule.factor, rule.default) == (2.5, 3.0, 10.0)
    assert time_limits.policy().floor == 1.0


def test_limits_for_examples_use_the_cache(pool, tmp_path):
    examples = [_example("a/1", "mbpp/1", "def f():\n    return 1\n")]
    cache = tmp_path / time_limits.CACHE_NAME
    limits = time_limits.example_time_limits(pool, examples, cache)
    assert limits == {"mbpp/1": 1.0} and cache.exists()
