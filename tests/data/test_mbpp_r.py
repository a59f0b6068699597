from __future__ import annotations

import json

import pytest

from next_jax.data import mbpp_r, readers
from next_jax.data.example import read_examples, write_examples
from next_jax.data.mutation import OPERATORS
from next_jax.execution.verdict import Candidate

# A few MBPP problems from each split (train 601-974, validation 511-600) and one outside both (test set).
IDS = {601, 602, 603, 604, 511, 512, 513, 20}


@pytest.fixture(scope="module")
def problems(data_dir):
    return [p for p in readers.read_mbpp(data_dir / "mbpp" / "mbpp.jsonl").records if p.task_id in IDS]


@pytest.fixture(scope="module")
def built(problems, pool):
    return mbpp_r.build_mbpp_r(problems, mbpp_r.MutatedBugs(per_problem=8, seed=1), pool, cap_per_problem=4)


def test_splits_are_by_problem_and_test_problems_are_excluded(built):
    assert set(built) == {"train", "validation"}
    train = {e.problem_id for e in built["train"]}
    val = {e.problem_id for e in built["validation"]}
    assert train and val and not train & val
    assert all(500 < int(p.split("/")[1]) <= 974 for p in train | val)
    assert "mbpp/20" not in train | val
    per_problem = {}
    for e in built["train"] + built["validation"]:
        per_problem[e.problem_id] = per_problem.get(e.problem_id, 0) + 1
    assert max(per_problem.values()) <= 4


def test_every_buggy_program_fails_its_tests(built, pool):
    examples = built["train"] + built["validation"]
    verdicts = pool.verify([Candidate(e.id, e.buggy_code, e.tests, e.setup) for e in examples], details=True)
    assert all(not v.ok for v in verdicts)
    for e, v in zip(examples, verdicts, strict=True):
        assert e.failing_tests and e.reference and e.buggy_code != e.reference
        assert e.provenance.origin == "mutation" and e.provenance.operator in OPERATORS
        if v.status == "fail":
            assert e.failure_type == "assertion"
    refs = pool.verify([Candidate(e.id, e.reference, e.hidden_tests, e.setup) for e in examples])
    assert all(v.ok for v in refs)


def test_statistics(built):
    stats = mbpp_r.statistics(built)
    assert stats["train"]["examples"] == len(built["train"])
    assert stats["train"]["paper_examples"] == 10_047 and stats["validation"]["paper_examples"] == 1_468
    assert sum(stats["train"]["bug_operators"].values()) == len(built["train"])
    assert sum(stats["validation"]["failure_types"].values()) == len(built["validation"])
    json.dumps(stats)


class FakeSampler:
    """Stands in for the decode issue's sampler: returns canned completions per prompt."""

    def __init__(self, completions):
        self.completions = completions
        self.prompts = []

    def generate(self, prompts, num_samples):
        self.prompts.extend(prompts)
        return [self.completions[:num_samples] for _ in prompts]


def test_sampled_bugs_keep_failing_samples_and_dedupe(problems, pool):
    p = next(x for x in problems if x.task_id == 601)
    wrong = p.code.replace("range(n)", "range(n - 1)", 1)
    assert wrong != p.code
    completions = [
        p.code + "\n```",  # the reference itself: passes, dropped
        wrong + "\n```",  # a real bug
        "# a comment\n" + wrong + "\n```\nDone",  # the same bug up to comments: deduplicated
        "I cannot solve this.",  # no code: dropped
    ]
    sampler = FakeSampler(completions)
    source = mbpp_r.SampledBugs(sampler, num_samples=4, detail="fake")
    built = mbpp_r.build_mbpp_r([p], source, pool, cap_per_problem=10)
    assert (
        sampler.prompts[0].startswith("You are an expert Python programmer")
        and p.tests[0] in sampler.prompts[0]
    )
    assert [e.buggy_code.strip() for e in built["train"]] == [wrong.strip()]
    assert built["train"][0].provenance.origin == "sample"


def test_overlapping_splits_are_rejected(problems, pool):
    with pytest.raises(ValueError, match="overlapping"):
        mbpp_r.build_mbpp_r(problems, mbpp_r.MutatedBugs(), pool, splits={"a": (1, 600), "b": (500, 974)})


def test_tfds_dataset_round_trip(built, tmp_path):
    tfds_mod = pytest.importorskip("next_jax.data.tfds_mbpp_r")
    for name, exs in built.items():
        write_examples(tmp_path / "jsonl" / f"{name}.jsonl", exs)
    builder = tfds_mod.build_tfds(tmp_path / "jsonl", tmp_path / "tfds")
    assert str(builder.info.version) == "1.0.0"
    assert builder.info.splits["train"].num_examples == len(built["train"])
    rows = list(builder.as_dataset(split="validation").as_numpy_iterator())
    ids = sorted(r["id"].decode() for r in rows)
    assert ids == sorted(e.id for e in built["validation"])
    row = next(r for r in rows if r["id"].decode() == built["validation"][0].id)
    assert [t.decode() for t in row["tests"]] == list(built["validation"][0].tests)
    assert list(row["failing_tests"]) == list(built["validation"][0].failing_tests)
    assert read_examples(tmp_path / "jsonl" / "validation.jsonl") == built["validation"]
