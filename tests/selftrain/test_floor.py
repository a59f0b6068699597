"""The test-blind floor: random single edits of each buggy program, verified; the rate and its stderr."""

from __future__ import annotations

import dataclasses

from next_jax.data.mutation import normalized
from next_jax.data.rendering import verification_meta
from next_jax.data.synthetic import generate_synthetic
from next_jax.selftrain.floor import blind_edit_floor


@dataclasses.dataclass
class _Verdict:
    status: str


def test_floor_counts_the_random_edits_that_restore_a_passing_program():
    examples = generate_synthetic(12, seed=2)
    refs = {ex.id: normalized(ex.reference) for ex in examples}
    seen: list = []

    def verify(candidates):  # passes exactly the reference program, whatever its edit
        seen.extend(candidates)
        return [_Verdict("pass" if normalized(c.code) == refs[c.id.split("#")[0]] else "fail") for c in candidates]

    metas = {ex.id: verification_meta(ex) for ex in examples}
    out = blind_edit_floor(examples, metas, verify, seed=0, draws=6)
    per_problem = {}
    for c in seen:
        per_problem.setdefault(c.id.split("#")[0], []).append(normalized(c.code) == refs[c.id.split("#")[0]])
    assert out["problems"] == 12 and out["draws"] == 6
    assert all(len(v) <= 6 for v in per_problem.values())
    expected = sum(sum(v) / 6 for v in per_problem.values()) / 12
    assert abs(out["fix_rate"] - expected) < 1e-12
    assert out["any_of_draws"] == sum(any(v) for v in per_problem.values()) / 12
    assert 0 < out["fix_rate"] < 1 and out["fix_rate_stderr"] > 0  # single-edit bugs: some edits undo them
    # candidates carry the problem's tests for the pool, and edits are the same for the same seed
    assert all(c.tests == tuple(metas[c.id.split("#")[0]]["tests"]) for c in seen)
    again: list = []
    blind_edit_floor(examples, metas, lambda cs: again.extend(cs) or [_Verdict("fail")] * len(cs), seed=0, draws=6)
    assert [c.code for c in again] == [c.code for c in seen]
