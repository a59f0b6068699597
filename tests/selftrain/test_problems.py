"""The embedded default's problems: hash-split by reference program, deduplicated by buggy program, with
gold rationales; and the prompts the shipped configs render keep the failing test's trace."""

from __future__ import annotations

import gin
import pytest

from next_jax.data.mutation import normalized
from next_jax.data.parsing import parse_completion
from next_jax.data.prompts import format_target
from next_jax.data.rendering import PromptRenderer
from next_jax.data.synthetic import three_way_split
from next_jax.selftrain.problems import load, save, synthetic_problems


@pytest.fixture(scope="module")
def problem_set():
    return synthetic_problems(seed=3, num_seed=40, num_pool=120, num_dev=60, num_programs=50)


def test_splits_are_disjoint_by_reference_and_deduplicated(problem_set):
    splits = {"seed": problem_set.seed, "pool": problem_set.pool, "dev": problem_set.dev}
    assert {k: len(v) for k, v in splits.items()} == {"seed": 40, "pool": 120, "dev": 60}
    refs = {k: {normalized(ex.reference) for ex in v} for k, v in splits.items()}
    assert not (refs["seed"] & refs["pool"]) and not (refs["seed"] & refs["dev"]) and not (refs["pool"] & refs["dev"])
    for name, examples in splits.items():
        assert all(three_way_split(ex.reference, 20, 20) == name for ex in examples)
    buggy = [normalized(ex.buggy_code) for v in splits.values() for ex in v]
    assert len(buggy) == len(set(buggy))
    dev_refs = refs["dev"]
    assert not any(normalized(pair["target"].split("```python\n")[1].split("```")[0]) in dev_refs
                   for pair in problem_set.corpus)


def test_seed_demos_have_gold_rationales_whose_fix_passes(problem_set):
    for ex in problem_set.seed:
        # The failing test's outcome (not its call: see `gold_rationale`), then the fix.
        assert ex.rationale.startswith(("It returns ", "It raises ", "It does not finish")), ex.rationale
        parsed = parse_completion(format_target(ex.rationale, ex.reference), ex.entry_point)
        assert parsed.ok and parsed.rationale == ex.rationale
    named_lines = sum("Line " in ex.rationale for ex in problem_set.seed)
    assert named_lines >= 0.7 * len(problem_set.seed)  # most bugs are one-line edits the rationale names


def test_a_problem_set_round_trips_through_the_run_directory(problem_set, tmp_path):
    save(problem_set, tmp_path)
    assert load(tmp_path) == problem_set


def test_same_seed_same_problems_other_seed_other_problems():
    a = synthetic_problems(seed=5, num_seed=5, num_pool=5, num_dev=5, num_programs=5)
    b = synthetic_problems(seed=5, num_seed=5, num_pool=5, num_dev=5, num_programs=5)
    c = synthetic_problems(seed=6, num_seed=5, num_pool=5, num_dev=5, num_programs=5)
    assert a == b and a.pool != c.pool


@pytest.mark.parametrize("config", ["gin/experiments/tiny_cpu.gin", "gin/experiments/tiny_cpu_smoke.gin"])
def test_shipped_configs_keep_the_failing_tests_trace(problem_set, config):
    import tasks  # noqa: F401
    from tasks.sources import repair_data_config

    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([config], [])
        renderer = PromptRenderer(repair_data_config())
        prompts = [renderer.prompt(ex, "inline", trusted=True) for ex in problem_set.pool + problem_set.dev]
    finally:
        gin.clear_config()
    share = sum(bool(p.traced_tests) for p in prompts) / len(prompts)
    assert share >= 0.95, share
    assert all(p.fits for p in prompts)


def test_notrace_prompts_differ_only_by_the_trace(problem_set):
    from next_jax.data.rendering import RepairDataConfig

    config = RepairDataConfig(root="", trace_cache_dir=None, prompt_budget=4096, max_traced_tests=1, few_shot=False,
                              untrusted_tracer="in_process", budgets=(("max_events", 10_000),), pool_workers=1,
                              pool_timeout=5.0, synthetic_seed=0, synthetic_sizes=(), instruction=False)
    renderer = PromptRenderer(config)
    checked = 0
    for ex in problem_set.dev[:20]:
        if ex.failure_type == "timeout":
            continue
        traced, plain = renderer.prompt(ex, "inline", True).text, renderer.prompt(ex, "none", True).text
        failing = plain.split("### Failing tests\n")[1]
        assert failing == traced.split("### Failing tests\n")[1]
        assert "# got:" in failing or "# raised:" in failing
        assert "# (0)" in traced and "# (0)" not in plain
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("fmt", ["inline", "none"])
def test_reading_pairs_take_their_share_of_the_corpus_in_the_runs_trace_format(fmt):
    """`reading_share` of the corpus shows a program (traced in `reading_format`) and answers with it; the
    programs are those of the plain corpus, in the same order, and none is a dev reference."""
    plain = synthetic_problems(seed=4, num_seed=5, num_pool=5, num_dev=40, num_programs=200)
    mixed = synthetic_problems(seed=4, num_seed=5, num_pool=5, num_dev=40, num_programs=200,
                               reading_share=0.5, reading_format=fmt)
    assert [p["target"] for p in plain.corpus] == [p["target"] for p in mixed.corpus]
    plain_prompt = {p["target"]: p["prompt"] for p in plain.corpus}  # targets are unique enough to index by
    reading = [p for p in mixed.corpus if p["prompt"] != plain_prompt[p["target"]]]
    assert 60 <= len(reading) <= 140
    for pair in reading:
        code = pair["target"].split("```python\n")[1].split("```")[0]
        assert ("# (0)" in pair["prompt"]) == (fmt == "inline")
        if fmt == "none":
            assert code.strip() in pair["prompt"]
    dev_refs = {normalized(ex.reference) for ex in mixed.dev}
    assert not any(normalized(p["target"].split("```python\n")[1].split("```")[0]) in dev_refs for p in mixed.corpus)
