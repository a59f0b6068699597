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
    assert set(built.splits) == {"train", "validation"}
    train = {e.problem_id for e in built.splits["train"]}
    val = {e.problem_id for e in built.splits["validation"]}
    assert train and val and not train & val
    assert all(500 < int(p.split("/")[1]) <= 974 for p in train | val)
    assert "mbpp/20" not in train | val
    per_problem = {}
    for e in built.splits["train"] + built.splits["validation"]:
        per_problem[e.problem_id] = per_problem.get(e.problem_id, 0) + 1
    assert max(per_problem.values()) <= 4


def test_every_buggy_program_fails_its_tests(built, pool):
    examples = built.splits["train"] + built.splits["validation"]
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
    assert stats["train"]["examples"] == len(built.splits["train"])
    assert stats["train"]["paper_examples"] == 10_047 and stats["validation"]["paper_examples"] == 1_468
    assert sum(stats["train"]["bug_operators"].values()) == len(built.splits["train"])
    assert sum(stats["validation"]["failure_types"].values()) == len(built.splits["validation"])
    assert stats["train"]["dropped"] == built.dropped["train"]
    json.dumps(stats)


def test_every_candidate_is_kept_or_counted_as_dropped(problems, pool):
    source = mbpp_r.MutatedBugs(per_problem=8, seed=1)
    candidates = source(problems)
    built = mbpp_r.build_mbpp_r(problems, source, pool, cap_per_problem=4)
    for split, (lo, hi) in mbpp_r.DEFAULT_SPLITS.items():
        offered = sum(len(c) for t, c in candidates.items() if lo <= t <= hi)
        assert len(built.splits[split]) + sum(built.dropped[split].values()) == offered
    # a cap reached with mutants to spare leaves them unverified, and says so
    assert sum(d.get("unverified_cap_reached", 0) for d in built.dropped.values()) > 0


class FakeSampler:
    """Stands in for the model: returns canned completions per prompt (the `CompletionSampler` protocol)."""

    def __init__(self, completions):
        self.completions = completions
        self.prompts = []

    def generate(self, prompts, num_samples):
        self.prompts.extend(prompts)
        return [self.completions[:num_samples] for _ in prompts]


@pytest.fixture(scope="module")
def p602(data_dir):
    return next(p for p in readers.read_mbpp(data_dir / "mbpp" / "mbpp.jsonl").records if p.task_id == 602)


def test_sampled_bugs_keep_failing_samples_drop_correct_ones_and_dedupe(p602, pool, data_dir):
    ref = p602.code
    # same behaviour as the reference, different code: a correct sample, run and dropped as passing
    correct = ref.replace("str1", "text")
    wrong = ref.replace("> 1", ">= 1")  # every character counts as repeated: fails "abc" == "None"
    wrong2 = ref.replace('return "None"', "return None")
    completions = [
        ref + "\n```",  # the reference itself: never run
        correct + "\n```\nThat solves it.",
        wrong + "\n```",
        "# first try\n" + wrong.replace("  ", "    ") + "\n\n```",  # same bug up to comments/indent
        wrong2 + '\nassert first_repeated_char("abc") == None\n```',  # its own (wrong) self-test is stripped
        "I cannot solve this.",
        "def other(x):\n  return x\n```",  # defines the wrong function
        wrong + "\n```\n\nYou are an expert Python programmer, and here is your task: ...",
    ]
    sampler = FakeSampler(completions)
    shots = mbpp_r.mbpp_shots((2, 3), data_dir / "mbpp" / "mbpp.jsonl")
    source = mbpp_r.SampledBugs(sampler, num_samples=len(completions), shots=shots, detail="fake")
    built = mbpp_r.build_mbpp_r([p602], source, pool, cap_per_problem=10)
    prompt = sampler.prompts[0]
    assert prompt.startswith("You are an expert Python programmer") and prompt.endswith("```python\n")
    assert prompt.count("```python\n") == 3 and shots[0].code.strip() in prompt and p602.tests[0] in prompt
    kept = built.splits["train"]
    assert [e.buggy_code.strip() for e in kept] == [wrong.strip(), wrong2.strip()]
    assert all(e.provenance.origin == "sample" and e.provenance.detail == "fake" for e in kept)
    assert built.dropped["train"] == {
        "same_as_reference": 1,
        "pass": 1,
        "duplicate": 2,
        "unparsable:parse_missing_entry_point": 2,
    }
    assert mbpp_r.statistics(built)["train"]["dropped"]["pass"] == 1


def test_the_cap_counts_kept_bugs_not_candidates_run(p602, pool):
    correct = [p602.code.replace("str1", name) for name in ("s", "t", "u")]
    wrong = [p602.code.replace("> 1", ">= 1"), p602.code.replace('return "None"', "return None")]
    sampler = FakeSampler([c + "\n```" for c in correct + wrong])
    built = mbpp_r.build_mbpp_r([p602], mbpp_r.SampledBugs(sampler, num_samples=5), pool, cap_per_problem=2)
    # the first round runs 2 correct samples, the next ones fill the cap with the bugs
    assert [e.buggy_code for e in built.splits["train"]] == [w.strip("\n") + "\n" for w in wrong]
    assert built.dropped["train"] == {"pass": 3}
    built = mbpp_r.build_mbpp_r([p602], mbpp_r.SampledBugs(sampler, num_samples=5), pool, cap_per_problem=1)
    assert len(built.splits["train"]) == 1 and built.dropped["train"] == {
        "pass": 3,
        "unverified_cap_reached": 1,
    }


def test_strip_top_level_checks():
    code = (
        '"""doc"""\nimport math\nX = 2\ndef f(x):\n    assert x\n    return x\n'
        "assert f(1) == 2\nprint(f(3))\nif __name__ == '__main__':\n    f(4)\n"
    )
    assert (
        mbpp_r.strip_top_level_checks(code)
        == '"""doc"""\nimport math\nX = 2\ndef f(x):\n    assert x\n    return x\n'
    )


def test_overlapping_splits_are_rejected(problems, pool):
    with pytest.raises(ValueError, match="overlapping"):
        mbpp_r.build_mbpp_r(problems, mbpp_r.MutatedBugs(), pool, splits={"a": (1, 600), "b": (500, 974)})


def test_tfds_dataset_round_trip(built, tmp_path):
    tfds_mod = pytest.importorskip("next_jax.data.tfds_mbpp_r")
    for name, exs in built.splits.items():
        write_examples(tmp_path / "jsonl" / f"{name}.jsonl", exs)
    write_examples(tmp_path / "jsonl" / "test.jsonl", [])  # an empty split is left out, not an error
    builder = tfds_mod.build_tfds(tmp_path / "jsonl", tmp_path / "tfds")
    assert str(builder.info.version) == "1.1.0"
    assert set(builder.info.splits) == {"train", "validation"}
    assert builder.info.splits["train"].num_examples == len(built.splits["train"])
    rows = list(builder.as_dataset(split="validation").as_numpy_iterator())
    ids = sorted(r["id"].decode() for r in rows)
    val = built.splits["validation"]
    assert ids == sorted(e.id for e in val)
    row = next(r for r in rows if r["id"].decode() == val[0].id)
    assert [t.decode() for t in row["tests"]] == list(val[0].tests)
    assert list(row["failing_tests"]) == list(val[0].failing_tests)
    assert read_examples(tmp_path / "jsonl" / "validation.jsonl") == val
