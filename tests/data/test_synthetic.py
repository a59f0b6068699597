from __future__ import annotations

import ast

import pytest

from next_jax.data.synthetic import generate_synthetic, make_example, split_of
from next_jax.data.synthetic_templates import TEMPLATES
from next_jax.execution.verdict import Candidate


@pytest.fixture(scope="module")
def train():
    return generate_synthetic(40, "train", seed=3)


def _run(code: str, test: str) -> bool:
    ns: dict = {}
    exec(code, ns)
    try:
        exec(test, ns)
    except Exception:  # noqa: BLE001
        return False
    return True


def test_deterministic_per_seed(train):
    again = generate_synthetic(40, "train", seed=3)
    assert [e.to_json() for e in again] == [e.to_json() for e in train]
    other = generate_synthetic(40, "train", seed=4)
    assert [e.buggy_code for e in other] != [e.buggy_code for e in train]


def test_reference_passes_and_bug_fails_the_marked_tests(train):
    for ex in train:
        assert all(_run(ex.reference, t) for t in ex.hidden_tests), ex.id
        assert ex.failing_tests, ex.id
        if ex.failure_type != "timeout":  # a hanging mutant is not re-run in the test process
            outcomes = [_run(ex.buggy_code, t) for t in ex.tests]
            assert [i for i, ok in enumerate(outcomes) if not ok] == list(ex.failing_tests), ex.id
        assert ex.tests == ex.hidden_tests[: len(ex.tests)]
        assert ex.provenance.dataset == "synthetic" and ex.provenance.origin == "mutation"


def test_programs_are_varied(train):
    assert len({e.reference for e in train}) >= 35
    assert len({e.provenance.detail.split(";")[0] for e in train}) >= 8  # templates
    assert len({e.provenance.operator for e in train}) >= 5
    for e in train:
        ast.parse(e.buggy_code)
        assert e.entry_point in e.description


def test_every_template_runs():
    for name in TEMPLATES:
        found = [make_example(0, i, templates=[name]) for i in range(3)]
        assert any(ex is not None for ex in found), name


def test_splits_are_disjoint_and_sized():
    val = generate_synthetic(10, "validation", seed=3)
    tr = generate_synthetic(60, "train", seed=3)
    assert {split_of(e.reference) for e in val} == {"validation"}
    assert not {e.reference for e in val} & {e.reference for e in tr}
    with pytest.raises(ValueError):
        generate_synthetic(1, "test")


def test_synthetic_bugs_fail_in_the_pool(train, pool):
    buggy = pool.verify([Candidate(e.id, e.buggy_code, e.tests) for e in train])
    fixed = pool.verify([Candidate(e.id, e.reference, e.hidden_tests) for e in train])
    assert [v.status for v in fixed] == ["pass"] * len(train)
    assert all(v.status != "pass" for v in buggy)


def test_micro_templates_make_short_sound_examples():
    """The micro family (the tiny default's programs): every template yields examples whose reference passes
    every test and whose bug fails the marked ones, and whose programs stay under six lines."""
    from next_jax.data.synthetic import FAMILIES

    micro = sorted(FAMILIES["micro"])
    assert not set(micro) & set(FAMILIES["standard"])
    for name in micro:
        found = [ex for i in range(6) if (ex := make_example(0, i, templates=[name])) is not None]
        assert found, name
        for ex in found:
            assert ex.provenance.detail.startswith(f"template={name}")
            assert len(ex.reference.splitlines()) <= 6 and ex.entry_point in ex.description
            assert all(_run(ex.reference, t) for t in ex.hidden_tests), ex.id
            if ex.failure_type != "timeout":
                # `==` in an assert lets 1 stand for True; the generator (like the pool) wants exact types,
                # so a test may fail there and pass here, never the other way round
                failing_here = [i for i, t in enumerate(ex.tests) if not _run(ex.buggy_code, t)]
                assert set(failing_here) <= set(ex.failing_tests) and ex.failing_tests, ex.id
